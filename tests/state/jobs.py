"""Helpers for state tests built on the standard Apollo test job."""

from __future__ import annotations

from pathlib import Path

OUTPUT_FILES = ("created", "existing", "missing", "skipped", "errors")


def write_as_it_goes(spec: Path, batch_size: int = 5) -> None:
    """Give the job's file sinks small batches, so that they write while the run goes on, as they do with a
    large input (with the default batch size a small test input reaches them only at the end)."""
    text = spec.read_text()
    for name in OUTPUT_FILES:
        text = text.replace(f"path: out/{name}.jsonl,", f"path: out/{name}.jsonl, batch_size: {batch_size},")
    spec.write_text(text)


def without_state_unless(spec: Path, state: bool) -> Path:
    """``crmsync run`` keeps state by default: a test job meant to run without it says ``state: false``."""
    if not state:
        spec.write_text(spec.read_text() + "state: false\n")
    return spec
