"""The installed wheel, not the editable checkout: the way users get crmsync."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.wheel
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("git") is None, reason="needs bash and git")
def test_wheel_install_runs_the_demo_and_a_stateful_run_from_an_empty_folder() -> None:
    # .ci/wheel-smoke builds the wheel from this tree, installs it into a new virtualenv and checks every step.
    smoke = subprocess.run(["bash", str(ROOT / ".ci" / "wheel-smoke")], capture_output=True, text=True, timeout=600)
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    assert smoke.stderr.rstrip().endswith("wheel-smoke: ok")
