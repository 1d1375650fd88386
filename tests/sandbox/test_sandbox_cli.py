"""``crmsync sandbox apollo``: the CLI in a real subprocess, and its option parsing."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from crmsync_plugins.apollo.sandbox import main
from crmsync_plugins.apollo.sandbox.cli import add_arguments, config_from_args


def _env() -> dict[str, str]:
    # The child must import crmsync_plugins exactly as this process does (installed or via PYTHONPATH).
    paths = [p for p in sys.path if p and Path(p).is_dir()]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def test_cli_serves_until_sigterm() -> None:
    code = "from crmsync_plugins.apollo.sandbox import main; main(['--port', '0', '--api-key', 'sk-very-secret'])"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.fullmatch(r"Apollo sandbox listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert found, line
        url = found.group(1)
        ok = httpx.post(
            f"{url}/api/v1/people/bulk_match",
            headers={"X-Api-Key": "sk-very-secret"},
            json={"details": [{"email": "tim@apollo.io"}]},
        )
        assert ok.json()["matches"][0]["name"] == "Tim Zheng"
        assert httpx.post(f"{url}/api/v1/people/bulk_match", headers={"X-Api-Key": "nope"}, json={}).status_code == 401
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "sk-very-secret" not in line + stdout + stderr


def test_bad_seed_exits_2(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "missing.json"
    assert main(["--port", "0", "--seed", str(missing)]) == 2
    assert "cannot load seed" in capsys.readouterr().err


def test_options_map_to_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--rate-limit-per-minute=20",
            "--rate-limit-per-hour=100",
            "--rate-limit-per-day=6000",
            "--fail-rate=0.1",
            "--throttle-rate=0.2",
            "--reset-rate=0.05",
            "--latency-ms=15",
            "--latency-jitter-ms=5",
            "--no-retry-after",
            "--omit-missing-matches",
            "--random-seed=9",
        ]
    )
    config = config_from_args(args)
    assert (config.rate_limit_per_minute, config.rate_limit_per_hour, config.rate_limit_per_day) == (
        20,
        100,
        6000,
    )
    assert (config.fail_rate, config.throttle_rate, config.reset_rate) == (0.1, 0.2, 0.05)
    assert (config.latency_ms, config.latency_jitter_ms, config.random_seed) == (15, 5, 9)
    assert config.retry_after_header is False and config.omit_missing_matches is True
    assert config.api_key is None and config.seed_path is None


def test_published_api_knobs_map_to_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--fail-statuses=502,503,504",
            "--spike-rate=0.1",
            "--spike-ms=2000",
            "--credit-balance=50",
            "--owner-ids=u1, u2",
        ]
    )
    config = config_from_args(args)
    assert config.fail_statuses == (502, 503, 504)
    assert (config.spike_rate, config.spike_ms, config.credit_balance) == (0.1, 2000, 50)
    assert config.owner_ids == frozenset({"u1", "u2"})
    assert config_from_args(parser.parse_args([])).owner_ids is None


def test_fail_statuses_must_be_5xx(capsys) -> None:  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--fail-statuses=404"])
    assert "expected 5xx statuses" in capsys.readouterr().err
