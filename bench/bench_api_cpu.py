#!/usr/bin/env python3
"""Benchmark: CPU per person on the Apollo API path, crmsync against a minimal asyncio + httpx loop.

The sandbox runs as its own process (no latency, no rate limit) with a generated seed; the leads are its people
with an email. Three processes take turns against it, each after a sandbox reset (so every run creates the
same contacts), paired per repetition:

- **loop**: the least a program can do for the same result: ``asyncio`` + one ``httpx.AsyncClient``, the same
  request bodies (``bulk_match`` 10 people a call, ``bulk_create`` 100 contacts a call with dedupe and a label),
  the same concurrency, parses every answer and writes the created, existing and missing people to JSONL files;
- **crmsync, no state**: ``crmsync run --no-state`` of the equivalent job (leads.jsonl → ``apollo.bulk_match`` →
  ``apollo.contacts`` → the same JSONL files);
- **crmsync, state**: the same job with durable state in a new SQLite file; its size after the run (the file and
  its -wal) divided by the people enriched is the state's cost per person;
- **crmsync before** (with ``--before FOLDER``): the no-state job once more, run by the code in ``FOLDER``
  (``connector_core`` and a ``crmsync_plugins`` link, on ``PYTHONPATH``): a change measured against the code
  before it, interleaved in one run, since whole runs far apart vary more than most changes.

CPU is the user + system time of that process alone (``RUSAGE_CHILDREN`` around it; the sandbox is not
counted), start-up included. Prints JSON: the median and the least of ``--repeat`` runs of each, and the ratios:
the median of the paired ratios (each repetition's crmsync run over its loop run), the ratio of the medians and
of the least; with ``--before``, also this code over the code before, paired per repetition.

Usage: ``python bench/bench_api_cpu.py [--people 10000] [--repeat 3] [--before FOLDER]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_apollo import CRMSYNC, Sandbox, prepare

#: Calls in flight: the job's ``concurrency`` and the loop's workers.
MATCH_CONCURRENCY, CREATE_CONCURRENCY, CONNECTIONS = 8, 4, 16
LABELS = ["bench"]

SPEC = """
version: 1
job: bench-api-cpu
public_env: [APOLLO_BASE_URL]
{state}
connections:
  apollo:
    type: apollo
    base_url: ${{APOLLO_BASE_URL}}
    api_key: bench-key
    max_connections: {connections}
    rate_limits:
      people/bulk_match: {{per_minute: 1000000, per_hour: null, per_day: null}}
      contacts/bulk_create: {{per_minute: 1000000, per_hour: null, per_day: null}}
sources:
  leads: {{type: jsonl, path: {leads}, key: email}}
mappers:
  enrich: {{type: apollo.bulk_match, connection: apollo, inputs: [leads], concurrency: {match}}}
sinks:
  contacts:
    type: apollo.contacts
    connection: apollo
    inputs: [enrich.matched]
    concurrency: {create}
    append_label_names: {labels}
  created: {{type: jsonl, inputs: [contacts.created], path: {out}/created.jsonl}}
  existing: {{type: jsonl, inputs: [contacts.existing], path: {out}/existing.jsonl}}
  missing: {{type: jsonl, inputs: [enrich.missing], path: {out}/missing.jsonl}}
  rejected: {{type: jsonl, inputs: [errors], path: {out}/errors.jsonl}}
"""

#: What crmsync's ``apollo.bulk_match`` copies from a matched person by default (its ``select``).
SELECT = {
    "apollo_id": ("id",),
    "apollo_title": ("title",),
    "apollo_email": ("email",),
    "apollo_email_status": ("email_status",),
    "apollo_linkedin_url": ("linkedin_url",),
    "apollo_organization_name": ("organization", "name"),
    "apollo_organization_domain": ("organization", "primary_domain"),
    "apollo_phone_numbers": ("phone_numbers",),
}
DETAIL_FIELDS = ("first_name", "last_name", "name", "email", "organization_name", "domain", "linkedin_url")
CONTACT_FIELDS = ("first_name", "last_name", "email", "title", "organization_name", "linkedin_url")


def _path(person: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = person
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


async def minimal_loop(url: str, leads_path: Path, out: Path) -> None:
    """The same calls and outputs as the job, with nothing else: no retries, no state, no checks."""
    leads = [json.loads(line) for line in leads_path.read_text().splitlines()]
    out.mkdir(parents=True, exist_ok=True)
    files = {name: (out / f"{name}.jsonl").open("w") for name in ("created", "existing", "missing")}
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    headers = {"X-Api-Key": "bench-key", "Content-Type": "application/json", "Cache-Control": "no-cache"}
    batches: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue()
    matched: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=1000)
    contacts: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(maxsize=2 * CREATE_CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:

        async def match() -> None:
            while (batch := await batches.get()) is not None:
                details = [
                    {k: str(lead[k]).strip() for k in DETAIL_FIELDS if lead.get(k) not in (None, "")} for lead in batch
                ]
                response = await client.post("/api/v1/people/bulk_match", json={"details": details})
                for lead, person in zip(batch, response.json()["matches"], strict=True):
                    if person is None:
                        files["missing"].write(json.dumps({**lead, "_missing_reason": "Apollo found no match"}) + "\n")
                    else:
                        await matched.put({**lead, **{name: _path(person, p) for name, p in SELECT.items()}})

        async def batch_contacts() -> None:
            batch: list[dict[str, Any]] = []
            while (record := await matched.get()) is not None:
                batch.append(record)
                if len(batch) == 100:
                    await contacts.put(batch)
                    batch = []
            if batch:
                await contacts.put(batch)
            for _ in range(CREATE_CONCURRENCY):
                await contacts.put(None)

        async def create() -> None:
            while (batch := await contacts.get()) is not None:
                body = {
                    "contacts": [{k: r[k] for k in CONTACT_FIELDS if r.get(k) not in (None, "")} for r in batch],
                    "run_dedupe": True,
                    "append_label_names": LABELS,
                }
                answer = (await client.post("/api/v1/contacts/bulk_create", json=body)).json()
                # Joined back by email, else by name (Apollo's dedupe also matches a contact by name + company).
                joined: dict[str, tuple[str, dict[str, Any]]] = {}
                for output in ("created", "existing"):
                    for contact in answer.get(f"{output}_contacts") or []:
                        joined.setdefault(str(contact.get("email") or "").lower(), (output, contact))
                        joined.setdefault(
                            f"{contact.get('first_name')} {contact.get('last_name')}".lower(), (output, contact)
                        )
                for record in batch:
                    name = f"{record.get('first_name')} {record.get('last_name')}".lower()
                    output, contact = joined.get(record["email"].lower()) or joined[name]
                    line = {**record, "apollo_contact_id": contact.get("id"), "apollo_contact": contact}
                    files[output].write(json.dumps(line) + "\n")

        for start in range(0, len(leads), 10):
            batches.put_nowait(leads[start : start + 10])
        for _ in range(MATCH_CONCURRENCY):
            batches.put_nowait(None)
        batcher = asyncio.create_task(batch_contacts())
        creators = [asyncio.create_task(create()) for _ in range(CREATE_CONCURRENCY)]
        await asyncio.gather(*(match() for _ in range(MATCH_CONCURRENCY)))
        await matched.put(None)
        await batcher
        await asyncio.gather(*creators)
    for file in files.values():
        file.close()


def cpu_of(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """User + system CPU seconds of one child process run to its end (in ``cwd``: not a checkout, whose
    ``connector_core`` folder ``-m`` would pick up instead of the interpreter's installed crmsync)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def lines(folder: Path) -> int:
    return sum(sum(1 for _ in (folder / f"{name}.jsonl").open()) for name in ("created", "existing", "missing"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=10_000, help="people in the sandbox's seed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--crmsync-python", default=sys.executable, help="interpreter whose crmsync is measured")
    parser.add_argument("--before", type=Path, help="a folder of crmsync code to run interleaved, without state")
    parser.add_argument("--loop", nargs=3, metavar=("URL", "LEADS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop:  # the baseline's own process
        url, leads, out = args.loop
        asyncio.run(minimal_loop(url, Path(leads), Path(out)))
        return 0

    names = ["loop", *(["crmsync_before_no_state"] if args.before else []), "crmsync_no_state", "crmsync_state"]
    runs: dict[str, list[float]] = {name: [] for name in names}
    state_sizes: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed, leads = prepare(folder, args.people)
        people = sum(1 for _ in leads.open())
        sandbox = Sandbox(seed)
        env = {**os.environ, "APOLLO_BASE_URL": sandbox.url, "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            for repetition in range(args.repeat):
                for name in runs:
                    sandbox.reset()
                    out = folder / f"out-{name}-{repetition}"
                    run_env = env
                    if name == "loop":
                        argv = [
                            sys.executable,
                            str(Path(__file__).resolve()),
                            "--loop",
                            sandbox.url,
                            str(leads),
                            str(out),
                        ]
                    else:
                        state_db = folder / f"state-{repetition}.db"
                        spec = folder / f"{name}.yaml"
                        state = f"state: {{path: {state_db}}}" if name == "crmsync_state" else "state: false"
                        if name == "crmsync_before_no_state":  # its code first on the path
                            run_env = {**env, "PYTHONPATH": str(args.before.resolve())}
                        spec.write_text(
                            SPEC.format(
                                state=state,
                                connections=CONNECTIONS,
                                leads=leads,
                                match=MATCH_CONCURRENCY,
                                create=CREATE_CONCURRENCY,
                                labels=json.dumps(LABELS),
                                out=out,
                            )
                        )
                        argv = [args.crmsync_python, *CRMSYNC[1:], "-q", "run", str(spec)]
                    runs[name].append(cpu_of(argv, run_env, folder))
                    assert lines(out) == people, f"{name}: {lines(out)} output lines for {people} people"
                    if name == "crmsync_state":
                        wal = state_db.with_name(state_db.name + "-wal")
                        state_sizes.append(state_db.stat().st_size + (wal.stat().st_size if wal.exists() else 0))
        finally:
            sandbox.stop()
    median = {name: statistics.median(values) for name, values in runs.items()}

    lowest = {name: min(values) for name, values in runs.items()}

    def paired(name: str, baseline: str = "loop") -> float:
        """The median over repetitions of ``name``'s CPU divided by ``baseline``'s in the same repetition."""
        return statistics.median(ours / base for ours, base in zip(runs[name], runs[baseline], strict=True))

    print(
        json.dumps(
            {
                "people": people,
                "repeat": args.repeat,
                "cpu_s": {name: [round(v, 3) for v in values] for name, values in runs.items()},
                "median_cpu_s": {name: round(value, 3) for name, value in median.items()},
                # The least each took: what a quiet moment of the box allows.
                "min_cpu_s": {name: round(value, 3) for name, value in lowest.items()},
                "cpu_us_per_person": {name: round(value / people * 1e6, 1) for name, value in median.items()},
                # Paired: each repetition's runs are back to back, so a busy moment weighs on all three.
                "ratio_no_state": round(paired("crmsync_no_state"), 3),
                "ratio_state": round(paired("crmsync_state"), 3),
                "ratio_of_medians_no_state": round(median["crmsync_no_state"] / median["loop"], 3),
                "ratio_of_medians_state": round(median["crmsync_state"] / median["loop"], 3),
                "ratio_of_mins_no_state": round(lowest["crmsync_no_state"] / lowest["loop"], 3),
                **(
                    {
                        "ratio_before_no_state": round(paired("crmsync_before_no_state"), 3),
                        "ratio_of_medians_before_no_state": round(
                            median["crmsync_before_no_state"] / median["loop"], 3
                        ),
                        "ratio_of_mins_before_no_state": round(lowest["crmsync_before_no_state"] / lowest["loop"], 3),
                        # The change itself, paired without the loop: this code over the code in FOLDER.
                        "ratio_now_over_before": round(paired("crmsync_no_state", "crmsync_before_no_state"), 3),
                    }
                    if args.before
                    else {}
                ),
                "state_bytes": statistics.median(state_sizes),
                "state_bytes_per_person": round(statistics.median(state_sizes) / people),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
