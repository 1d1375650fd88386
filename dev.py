#!/usr/bin/env python3
"""Set up a local virtualenv and run crmsync's demo or its tests: ``python3 dev.py demo|test``.

Needs nothing but Python 3.11+. The first call creates ``.venv``: ``demo`` installs the project, ``test`` the
project with its test tools and the test-only example plugin. Later calls reuse it (reinstalling when the
packaging files changed or the other command set it up). ``test`` runs ruff, then mypy, then pytest.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if sys.platform == "win32" else "bin")
PYTHON = BIN / ("python.exe" if sys.platform == "win32" else "python")
#: A real third-party plugin distribution the tests install the way a user would; the demo must not see it.
TEST_PLUGIN = "crmsync-hello"
#: What each command installs (editable, so changes to the code need no reinstall).
INSTALLS = {
    "demo": ["-e", str(ROOT)],
    "test": ["-e", f"{ROOT}[test]", "-e", str(ROOT / "tests" / "thirdparty" / TEST_PLUGIN)],
}
#: Where mypy finds ``crmsync_plugins`` (a link to ``plugins/``, the folder it installs from); see ``[tool.mypy]``.
MYPY_PATH = VENV / "mypy"


def ensure_venv(command: str) -> None:
    """Create the virtualenv and install what ``command`` needs, unless that is already done."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older python3
        sys.exit(f"crmsync needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    stamp = VENV / ".crmsync-installed"
    packaging = [p for p in sorted([*ROOT.glob("**/pyproject.toml"), ROOT / "setup.py"]) if ".venv" not in p.parts]
    wanted = command + " " + hashlib.sha256(b"".join(p.read_bytes() for p in packaging)).hexdigest()
    if stamp.is_file() and stamp.read_text() == wanted and PYTHON.exists():
        return
    pip = [str(PYTHON), "-m", "pip"]
    if not PYTHON.exists():
        print(f"creating {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
        subprocess.run([*pip, "install", "-q", "--upgrade", "pip"], check=True)
    if command == "demo" and subprocess.run([*pip, "show", "-q", TEST_PLUGIN], capture_output=True).returncode == 0:
        subprocess.run([*pip, "uninstall", "-q", "-y", TEST_PLUGIN], check=True)
    print(f"installing what `dev.py {command}` needs", file=sys.stderr)
    subprocess.run([*pip, "install", "-q", *INSTALLS[command]], check=True)
    stamp.write_text(wanted)


def compile_sources(root: Path = ROOT, python: Path = PYTHON) -> None:
    """Byte-compile the checkout's packages, as pip does for an installed wheel: an editable install runs them from
    here, and where ``PYTHONDONTWRITEBYTECODE`` is set nothing else writes their cache, so every ``crmsync``
    process would compile them again (a third of ``crmsync --help``). Up-to-date files are skipped."""
    folders = [str(root / name) for name in ("connector_core", "plugins", "tests/thirdparty") if (root / name).is_dir()]
    subprocess.run([str(python), "-m", "compileall", "-q", *folders], check=True, stdout=subprocess.DEVNULL)


def typecheck() -> int:
    """Run mypy, strict, over ``connector_core`` and the built-in plugins (the packages ``[tool.mypy]`` names)."""
    link = MYPY_PATH / "crmsync_plugins"
    if not link.is_symlink():
        MYPY_PATH.mkdir(exist_ok=True)
        link.symlink_to(ROOT / "plugins", target_is_directory=True)
    return subprocess.run([str(BIN / "mypy")], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command not in ("demo", "test"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ensure_venv(command)
    compile_sources()
    if command == "demo":
        return subprocess.run([str(BIN / "crmsync"), "demo", *rest], cwd=ROOT).returncode
    for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        if subprocess.run([str(BIN / check[0]), *check[1:]], cwd=ROOT).returncode:
            return 1
    if typecheck():
        return 1
    return subprocess.run([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
