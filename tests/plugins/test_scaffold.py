"""``crmsync new plugin``: the scaffold installs into a fresh virtualenv, its own tests pass, crmsync finds it."""

from __future__ import annotations

import os
import site
import subprocess
import venv
from pathlib import Path

import pytest

import connector_core
from connector_core.cli import main


def run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CRMSYNC_", "PYTEST_"))}
    return subprocess.run(list(map(str, command)), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A scaffold ``crmsync-acme`` pip-installed into a fresh virtualenv that sees this crmsync."""
    folder = tmp_path_factory.mktemp("scaffold")
    assert main(["new", "plugin", "acme", "--dir", str(folder)]) == 0
    env_dir = folder / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    # crmsync and pytest come from the environment running this test (crmsync is not on an index offline).
    lines = "".join(f"import site; site.addsitedir({path!r})\n" for path in site.getsitepackages())
    Path(purelib, "crmsync-under-test.pth").write_text(lines, encoding="utf-8")
    result = run(python, "-m", "pip", "install", "-q", "--no-deps", folder / "crmsync-acme")
    assert result.returncode == 0, result.stderr
    return folder / "crmsync-acme", python


def test_the_scaffold_has_a_distribution_tests_and_a_readme(installed: tuple[Path, Path]) -> None:
    project, _ = installed
    assert '[project.entry-points.crmsync]\nacme = "crmsync_acme"' in (project / "pyproject.toml").read_text()
    for path in ("README.md", "src/crmsync_acme/__init__.py", "src/crmsync_acme/components.py"):
        assert (project / path).is_file(), path
    assert "MapperConformance" in (project / "tests" / "test_crmsync_acme.py").read_text()


def test_its_own_tests_pass_once_installed(installed: tuple[Path, Path]) -> None:
    project, python = installed
    result = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_it_type_checks_strictly(installed: tuple[Path, Path], tmp_path: Path) -> None:
    """Its components are typed as a plugin author's should be (``Mapper[TagOptions]`` types ``self.options``),
    so ``mypy --strict`` on the fresh scaffold reports nothing."""
    pytest.importorskip("mypy")
    project, python = installed
    # connector_core as this checkout has it: an editable install is a path hook mypy does not follow.
    env = {"MYPYPATH": str(Path(connector_core.__file__).parents[1])}
    command = [python, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "mypy"), "src"]
    result = subprocess.run(
        list(map(str, command)), cwd=project, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_crmsync_lists_and_describes_it(installed: tuple[Path, Path]) -> None:
    project, python = installed
    plugins = run(python, "-m", "connector_core", "plugins", cwd=project)
    assert "acme  (crmsync-acme 0.1.0)\n    mapper:acme.tag\n    sink:acme.jsonl\n" in plugins.stdout
    described = run(python, "-m", "connector_core", "describe", "acme.jsonl", cwd=project)
    assert described.returncode == 0, described.stderr
    assert described.stdout.startswith("sink acme.jsonl  (plugin acme, crmsync-acme 0.1.0)")
    assert "the JSON Lines file to append to" in described.stdout
    schema = run(python, "-m", "connector_core", "schema", cwd=project)
    assert '"sink.acme.jsonl"' in schema.stdout


@pytest.mark.parametrize("name", ["Acme", "1acme", "acme!", "acme-", ""])
def test_a_bad_name_is_a_usage_error(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "plugin", name, "--dir", str(tmp_path)]) == 2
    assert "use lower-case letters" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["files", "transforms", "apollo"])
def test_a_built_in_plugins_name_is_a_usage_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An installed plugin of a built-in's name would be skipped: the scaffold refuses the name up front."""
    assert main(["new", "plugin", name, "--dir", str(tmp_path)]) == 2
    assert f"plugin name {name!r} is a built-in plugin's (apollo, files, transforms)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_name_whose_package_is_installed_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``plugins`` would make ``crmsync_plugins``, the package of crmsync's own built-ins: installing it would
    overwrite them."""
    assert main(["new", "plugin", "plugins", "--dir", str(tmp_path)]) == 2
    assert "plugin name 'plugins': a package crmsync_plugins is already installed (" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "crmsync-acme").mkdir()
    assert main(["new", "plugin", "acme", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_names_with_dashes_make_importable_packages(tmp_path: Path) -> None:
    assert main(["new", "plugin", "big-crm", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "crmsync-big-crm" / "src" / "crmsync_big_crm" / "components.py").is_file()
    assert 'big-crm = "crmsync_big_crm"' in (tmp_path / "crmsync-big-crm" / "pyproject.toml").read_text()
    compile((tmp_path / "crmsync-big-crm" / "tests" / "test_crmsync_big_crm.py").read_text(), "t", "exec")
