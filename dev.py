#!/usr/bin/env python3
"""Set up a local virtualenv and run crmsync's demo or its tests: ``python3 dev.py demo|test``.

Needs nothing but Python 3.11+. The first call creates ``.venv`` and installs the project with its test
tools; later calls reuse it (reinstalling when pyproject.toml changed).
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
#: The tests also install a real third-party plugin distribution, the way a user would.
INSTALL = ["-e", f"{ROOT}[test]", "-e", str(ROOT / "tests" / "thirdparty" / "crmsync-hello")]


def ensure_venv() -> None:
    """Create the virtualenv and install the project, unless it is already up to date."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older python3
        sys.exit(f"crmsync needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    stamp = VENV / ".crmsync-installed"
    wanted = hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted(ROOT.glob("**/pyproject.toml")) if ".venv" not in p.parts)
    ).hexdigest()
    if stamp.is_file() and stamp.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    print("installing crmsync and its test tools", file=sys.stderr)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", *INSTALL], check=True)
    stamp.write_text(wanted)


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command not in ("demo", "test"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ensure_venv()
    if command == "demo":
        return subprocess.run([str(BIN / "crmsync"), "demo", *rest], cwd=ROOT).returncode
    for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        if subprocess.run([str(BIN / check[0]), *check[1:]], cwd=ROOT).returncode:
            return 1
    return subprocess.run([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
