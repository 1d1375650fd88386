"""docs/plugin-authors.md is executed: its files are written into a project and its own test is run with pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugin-authors.md"
BLOCK = re.compile(r"```python\n# ((?:src|tests)/\S+\.py)\n(.*?)```", re.DOTALL)


def test_the_guides_plugin_and_its_test_work(tmp_path: Path) -> None:
    files = BLOCK.findall(GUIDE.read_text(encoding="utf-8"))
    assert {name for name, _ in files} >= {
        "src/crmsync_hubspot/contacts.py",
        "src/crmsync_hubspot/connection.py",
        "src/crmsync_hubspot/owners.py",
        "src/crmsync_hubspot/__init__.py",
        "tests/test_contacts.py",
    }
    for name, code in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
