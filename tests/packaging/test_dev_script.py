"""``dev.py`` byte-compiles the checkout's packages, so an editable install starts like an installed wheel even
where ``PYTHONDONTWRITEBYTECODE`` keeps Python from writing the cache itself."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compile_sources_writes_the_bytecode_of_every_package(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("crmsync_dev_script", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    for package in ("connector_core", "plugins/apollo"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("VALUE = 1\n")
    dev.compile_sources(tmp_path, Path(sys.executable))
    for package in ("connector_core", "plugins/apollo"):
        cached = importlib.util.cache_from_source(str(tmp_path / package / "__init__.py"))
        assert Path(cached).is_file(), cached
