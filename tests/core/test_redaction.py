"""A secret from the environment never shows in reports, logs, the error stream or error messages."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from connector_core import hookimpl
from connector_core.cli import main
from connector_core.redact import MASK, RedactingFilter, Redactor

from . import kit
from .conftest import CANARY, Jobs

LEAKY = """\
version: 1
job: leaky
sources:
  nums: {type: t.numbers, count: 6}
mappers:
  split:
    type: t.split
    inputs: [nums]
    reject: [1, 2]
    reason: "token ${API_TOKEN} was refused"
sinks:
  even:
    type: t.collect
    inputs: [split]
    log: "connecting with ${API_TOKEN}"
  odd:
    type: t.collect
    inputs: [split.odd]
    close_error: "cannot flush to https://crm.example/?key=${API_TOKEN}"
  errs:
    type: t.collect
    inputs: [errors]
"""


class LeakyObserver:
    """An observer whose hooks fail with the secret in the message."""

    @hookimpl
    def after_batch(context, component):
        raise RuntimeError(f"observer saw {CANARY} in {component}")

    @hookimpl
    def before_sync(context):
        context.mark_failed(f"credits ran out for {CANARY}")


def test_redactor_masks_text_and_nested_data() -> None:
    redactor = Redactor([CANARY, "abc"])
    assert redactor.text(f"key={CANARY}!") == f"key={MASK}!"
    assert redactor.data({"a": [CANARY, {CANARY: (1, f"x{CANARY}")}], "n": 3}) == {
        "a": [MASK, {MASK: [1, f"x{MASK}"]}],
        "n": 3,
    }
    assert redactor.text("abc") == "abc", "values shorter than 4 characters are not masked"


def test_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    redactor = Redactor(["secret", "secret-and-more"])
    assert redactor.text("x secret-and-more y") == f"x {MASK} y"
    redactor = Redactor()
    redactor.add(CANARY)
    assert redactor.text(CANARY) == MASK


def test_a_text_masked_before_a_secret_was_added_is_masked_again_after() -> None:
    redactor = Redactor(["first-secret"])
    reason = "refused first-secret and second-secret"
    assert redactor.text(reason) == f"refused {MASK} and second-secret"
    assert redactor.text(reason) == f"refused {MASK} and second-secret"  # from the memo
    redactor.add("second-secret")
    assert redactor.text(reason) == f"refused {MASK} and {MASK}"


def test_redacting_filter_masks_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(Redactor([CANARY])))
    logger = logging.getLogger("crmsync.tests.redaction")
    logger.addHandler(handler)
    try:
        logger.warning("token %s in use", CANARY)
        try:
            raise PermissionError(f"401 for {CANARY}")
        except PermissionError:
            logger.exception("call failed")
        logger.warning("stack", stack_info=True, extra={"note": CANARY})
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert f"token {MASK} in use" in text
    assert f"PermissionError: 401 for {MASK}" in text
    assert CANARY not in text


def test_cli_report_logs_and_summary_never_show_the_secret(
    jobs: Jobs, kit_cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    kit_cli(("leaky", LeakyObserver))
    monkeypatch.setenv("API_TOKEN", CANARY)
    report_path = tmp_path / "report.json"
    assert main(["-v", "run", str(jobs.write(LEAKY)), "--report", str(report_path)]) == 1
    captured = capsys.readouterr()
    report_text = report_path.read_text()
    for where, text in (("report", report_text), ("stderr", captured.err), ("stdout", captured.out)):
        assert CANARY not in text, f"the secret leaked into {where}:\n{text}"
    # The things that would have shown the secret did happen, masked.
    assert f"connecting with {MASK}" in captured.err
    assert "observer saw" in captured.err
    report = json.loads(report_text)
    assert report["errors"]["count"] == 2
    assert report["errors"]["first"][0]["reason"] == f"token {MASK} was refused"
    assert "failed to close" in report["failure"] or "credits ran out" in report["failure"]
    assert MASK in report["failure"]
    assert [row["_error"]["reason"] for row in kit.STORE["errs"]] == [f"token {MASK} was refused"] * 2


def test_fatal_error_with_traceback_in_debug_log_is_masked(
    jobs: Jobs, kit_cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("API_TOKEN", CANARY)
    text = LEAKY.replace("count: 6}", 'count: 6, fail_at: 3, message: "401 for ${API_TOKEN}"}')
    report_path = tmp_path / "report.json"
    assert main(["-vv", "run", str(jobs.write(text)), "--report", str(report_path)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" in captured.err, "the debug log shows the traceback of a fatal error"
    assert CANARY not in captured.err
    report = json.loads(report_path.read_text())
    assert report["failure"] == f"ValueError: 401 for {MASK}"
    assert CANARY not in report_path.read_text()


def test_library_run_logs_never_show_the_secret(jobs: Jobs, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    text = """\
    version: 1
    job: leaky
    sources:
      nums: {type: t.numbers, count: 6}
    mappers:
      boom:
        type: t.explode
        inputs: [nums]
        batch_size: 1
        fail_on: [5]
        message: "explode ${API_TOKEN}"
    sinks:
      out:
        type: t.collect
        inputs: [boom]
        reject: [4]
        reason: "no ${API_TOKEN}"
      errs: {type: t.collect, inputs: [errors]}
    """
    report = jobs.run(text, {"API_TOKEN": CANARY}, plugins=[("leaky", LeakyObserver)])
    assert report.status == "failed"
    assert report.errors["count"] == 2
    assert "explode" in caplog.text and "observer saw" in caplog.text
    assert CANARY not in caplog.text
    assert CANARY not in json.dumps(report.to_dict())
    assert CANARY not in report.summary()


def test_library_run_fatal_error_logs_never_show_the_secret(jobs: Jobs, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    text = """\
    version: 1
    job: leaky
    connections:
      crm: {type: t.token, token: "${API_TOKEN}", close_error: "logout failed for ${API_TOKEN}"}
    sources:
      nums: {type: t.numbers, count: 6, fail_at: 2, message: "401 for ${API_TOKEN}"}
    sinks:
      out: {type: t.collect, inputs: [nums], connection: crm}
    """
    report = jobs.run(text, {"API_TOKEN": CANARY})
    assert report.status == "failed"
    assert kit.STORE["out.token"] == [CANARY], "the connection got the real token"
    assert "logout failed" in caplog.text and "401 for" in caplog.text
    assert CANARY not in caplog.text
    assert report.failure == f"ValueError: 401 for {MASK}"


def test_error_reasons_seen_by_observers_are_masked(jobs: Jobs) -> None:
    reasons: list[str] = []

    class Observer:
        @hookimpl
        def on_record_error(reason):
            reasons.append(reason)

    report = jobs.run(LEAKY, {"API_TOKEN": CANARY}, plugins=[("observer", Observer)])
    assert report.errors["count"] == 2
    assert reasons == [f"token {MASK} was refused"] * 2


def test_a_secret_added_while_rejects_are_routed_masks_the_rest_of_the_batch(jobs: Jobs) -> None:
    # Reasons are masked once per batch and reused: a secret an observer adds half-way must still apply.
    late_secret = "late-secret-4711"

    class Observer:
        @hookimpl
        def on_record_error(context):
            context.redactor.add(late_secret)

    spec = LEAKY.replace("token ${API_TOKEN} was refused", f"token {late_secret} was refused")
    jobs.run(spec, {"API_TOKEN": CANARY}, plugins=[("observer", Observer)])
    reasons = [row["_error"]["reason"] for row in kit.STORE["errs"]]
    # The first reject went out before the secret was known; every one after it is masked.
    assert len(reasons) == 2 and reasons[1] == f"token {MASK} was refused"
