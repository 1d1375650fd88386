"""The run report: what ``--report`` writes and what the summary table shows."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

#: How many error reasons the report keeps verbatim.
FIRST_ERRORS = 20


@attrs.define
class RunStats:
    """Counters the engine and plugins update during a run."""

    started_at: str = attrs.field(factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    started: float = attrs.field(factory=time.monotonic)
    input_records: int = 0
    streams: Counter[str] = attrs.field(factory=Counter)
    delivered: Counter[str] = attrs.field(factory=Counter)
    error_count: int = 0
    first_errors: list[dict[str, Any]] = attrs.field(factory=list)
    #: Records set aside after a transient failure (in the error stream, marked ``transient``; not rejects).
    set_aside: int = 0
    #: Extra report sections contributed by plugins (``api`` for the Apollo connection), computed at the end.
    sections: dict[str, Callable[[], dict[str, Any]]] = attrs.field(factory=dict)

    def record_error(self, detail: dict[str, Any], key: str) -> None:
        """Count one rejected record; keep the first few in full (``detail`` with the record's ``key``, when it has
        one: a job that reads no keys leaves the records of a source without ``key`` unkeyed)."""
        self.error_count += 1
        if len(self.first_errors) < FIRST_ERRORS:
            self.first_errors.append({**detail, "key": key} if key else dict(detail))


@attrs.frozen
class RunReport:
    """The outcome of a run."""

    status: str
    job: str
    started_at: str
    duration_s: float
    input_records: int
    streams: dict[str, int]
    delivered: dict[str, int]
    errors: dict[str, Any]
    failure: str | None = None
    extra: dict[str, Any] = attrs.Factory(dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the report."""
        body = attrs.asdict(self, filter=lambda field, _: field.name != "extra")
        body.update(self.extra)
        return body

    def write(self, path: Path) -> None:
        """Write the report as JSON (atomically, so a reader never sees half a report)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        partial.replace(path)

    def summary(self, headline: str | None = None, delivered: str = "delivered") -> str:
        """A short human table for the end of a run, under ``headline`` (default: job, status and duration);
        ``delivered`` labels the records each sink took (a plan's sinks write nothing)."""
        default = f"{self.job}: {self.status} in {self.duration_s:.2f}s ({self.input_records} input records)"
        rows = [("stream", "records", "")]
        rows += [(name, str(count), "") for name, count in self.streams.items()]
        rows += [(f"{name} ({delivered})", str(count), "") for name, count in self.delivered.items()]
        # The error stream's row (above) counts set-aside records too: these say which is which.
        rows.append(("rejected", str(self.errors["count"]), f"  ({self.errors['rate']:.2%} of the input)"))
        if self.errors.get("set_aside"):
            rows.append(("set aside", str(self.errors["set_aside"]), "  (transient: a run with state retries them)"))
        width = max(len(name) for name, _, _ in rows)
        lines = [headline or default]
        lines += [f"  {name:<{width}}  {count:>9}{note}" for name, count, note in rows]
        for key, section in self.extra.items():
            if not isinstance(section, dict):
                lines.append(f"  {key}: {section}")
                continue
            flat = ", ".join(f"{k}={v}" for k, v in section.items() if not isinstance(v, dict))
            lines.append(f"  {key}: {flat}")
            for name, counts in section.items():
                if isinstance(counts, dict) and counts:
                    lines.append(f"  {key} {name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
        if self.failure:
            lines.append(f"  failed: {self.failure}")
        return "\n".join(lines)
