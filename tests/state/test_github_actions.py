"""Two consecutive ephemeral runners, state carried exactly the way examples/github-actions/crmsync-sync.yml
carries it: restore the newest cache by prefix, run, save the whole state folder under the run's own key."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import yaml

from crmsync_plugins.apollo.sandbox import ApolloSandbox, SandboxConfig, SandboxServer

from ..apollo.conftest import people
from .ci_kit import check_exactly_once, command, job_folder, start, wait_for

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "github-actions" / "crmsync-sync.yml"


class ActionsCache:
    """actions/cache/restore + actions/cache/save: immutable entries by key, restored by exact key or the newest
    entry whose key starts with a restore-key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saved: list[str] = []

    def restore(self, workspace: Path, path: str, key: str, restore_keys: list[str]) -> str | None:
        hit = key if key in self.saved else None
        for prefix in restore_keys:
            hit = hit or next((k for k in reversed(self.saved) if k.startswith(prefix)), None)
        if hit is not None:
            shutil.copytree(self.folder / hit, workspace / path)
        return hit

    def save(self, workspace: Path, path: str, key: str) -> None:
        if key not in self.saved and (workspace / path).exists():
            shutil.copytree(workspace / path, self.folder / key)
            self.saved.append(key)


def cache_steps() -> tuple[dict, dict]:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["sync"]["steps"]
    restore = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache/restore"))
    save = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache/save"))
    assert save.get("if") == "always()", "state must be saved after failed and cancelled runs too"
    return restore["with"], save["with"]


def expand(text: str, run_id: int) -> str:
    return text.replace("${{ github.run_id }}", str(run_id)).replace("${{ github.run_attempt }}", "1")


def test_the_second_ephemeral_runner_resumes_what_the_first_committed(tmp_path: Path) -> None:
    restore, save = cache_steps()
    cache = ActionsCache(tmp_path / "cache")
    rows = people(150)
    finished = {}
    with SandboxServer(ApolloSandbox(SandboxConfig(latency_ms=100))) as server:
        for run_id, kill in ((1001, True), (1002, False)):
            workspace = tmp_path / f"runner-{run_id}"  # a fresh checkout on a fresh machine
            spec = job_folder(workspace, rows, "{}")
            restored = cache.restore(
                workspace, restore["path"], expand(restore["key"], run_id), restore["restore-keys"].split()
            )
            assert (restored is None) == (run_id == 1001)
            began = time.monotonic()
            run = start(command(spec, "--report", str(workspace / "report.json")), server)
            if kill:  # the runner dies mid-run; the save step still runs (`if: always()`)
                state = workspace / ".crmsync" / "state.db"
                wait_for(lambda s=state: s.exists() and _delivered(s) > 0, what="the first runner to deliver")
                run.send_signal(signal.SIGKILL)
                run.wait()
            else:
                _, stderr = run.communicate(timeout=120)
                assert run.returncode == 0, stderr
                finished = json.loads((workspace / "report.json").read_text())
                print(f"second runner resumed and finished in {time.monotonic() - began:.2f}s")
            cache.save(workspace, save["path"], expand(save["key"], run_id))
        assert finished["status"] == "success" and finished["state"]["run_id"] == 2  # it saw the first run
        first, second = tmp_path / "runner-1001", tmp_path / "runner-1002"
        check_exactly_once([first, second], second, [r["email"] for r in rows], server)
        assert server.sandbox.state()["credits"] <= len(rows) + 10  # the cache travelled with the state


def _delivered(path: Path) -> int:
    from connector_core.state.sqlite import SqliteStateStore

    store = SqliteStateStore(path)
    try:
        return sum(store.summary("apollo-test")["deliveries"].values())
    finally:
        store.close()
