#!/usr/bin/env python3
"""Benchmark: CSV → ``fields`` mapper → JSONL through crmsync, against a hand-written loop doing the same work.

The baseline is a plain ``csv.DictReader`` loop that applies the very transforms of the spec (strip, lower,
upper, ``required`` with rejects written to an error file, a default, ``email_domain``, ``url_domain``,
``digits``, a template, a constant), and writes the same JSON lines (``ensure_ascii=False``). Its output must be
byte-for-byte crmsync's, which the script checks, so the two really do the same work.

Measures, in one run and on the same generated file:
- CPU time (user + system) of the raw loop and of ``crmsync run --no-state``, each in its own process, run in
  pairs ``--repeat`` times; the ratio is of the medians (wall time is reported too, but this shared machine
  makes it noisy),
- peak RSS of crmsync for the small and the large input (memory must not grow with input size),
- ``crmsync --help`` wall time (best of 5).

``--messy`` generates a lead list as people export them: stray whitespace, blank cells, rows without an email
(rejected by ``required``), odd and broken URLs, quoted notes holding commas, quotes and line breaks, and
non-ASCII names. ``--no-key`` drops ``key: Email`` so records are keyed by a hash of their content.
``--leads CSV`` measures a lead list of one's own instead of a generated one (a CSV with the columns above:
``First Name``, ``Last Name``, ``Email``, ``Company``, ``Website``, ``Title``, ``Phone``, ``City``, ``Notes``).

Usage: ``python bench/bench_files.py [--rows 300000 1000000] [--small-rows 10000] [--repeat 3] [--messy]
[--leads CSV] [--no-key] [--dlt PYTHON]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
CRMSYNC = [sys.executable, "-m", "connector_core"]
COLUMNS = ["First Name", "Last Name", "Email", "Company", "Website", "Title", "Phone", "City", "Notes"]

SPEC = """
version: 1
job: bench-files
sources:
  leads: {{type: csv, path: {csv}{key}}}
mappers:
  people:
    type: fields
    inputs: [leads]
    fields:
      first_name: {{from: First Name, strip: true}}
      last_name: {{from: Last Name, strip: true}}
      email: {{from: Email, transform: [strip, lower], required: true}}
      email_domain: {{from: Email, transform: email_domain}}
      company: {{from: Company, strip: true, default: Unknown}}
      domain: {{from: Website, transform: url_domain}}
      title: {{from: Title, strip: true, upper: true}}
      phone: {{from: Phone, transform: digits}}
      city: {{from: City}}
      name: {{template: "{{first_name}} {{last_name}}"}}
      list: {{value: bench}}
sinks:
  out: {{type: jsonl, inputs: [people], path: {out}}}
  rejects: {{type: jsonl, inputs: [errors], path: {errors}}}
"""

#: The transforms the job's rules name, by hand: ``url_domain`` is the definition crmsync documents (scheme, user
#: info, port, path and ``www.`` removed; bare hosts taken too), written the way its reference implementation is.
#: ``shape`` builds one output record (None: the row is rejected for its blank email). Shared by both baselines.
HAND_WRITTEN = r"""
import csv, json, re, sys

SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
PATH_START = re.compile(r"[/?#]")
NON_DIGITS = re.compile(r"[^0-9]")


def blank(value):
    return not value or value.isspace()


def url_domain(value):
    text = SCHEME.sub("", value.strip(), count=1).lstrip("/")
    host = PATH_START.split(text, maxsplit=1)[0].rpartition("@")[2]
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    else:
        host = host.partition(":")[0]
    return host.strip().rstrip(".").lower().removeprefix("www.") or None


def email_domain(value):
    _, at, domain = value.rpartition("@")
    return (domain.strip().rstrip(">").strip().rstrip(".").lower() or None) if at else None


def shape(row):
    email = row["Email"]
    if blank(email):
        return None
    first, last, company = row["First Name"], row["Last Name"], row["Company"]
    website, title, phone = row["Website"], row["Title"], row["Phone"]
    first = first if blank(first) else first.strip()
    last = last if blank(last) else last.strip()
    return {
        "first_name": first,
        "last_name": last,
        "email": email.strip().lower(),
        "email_domain": email_domain(email),
        "company": "Unknown" if blank(company) else company.strip(),
        "domain": website if blank(website) else url_domain(website),
        "title": title if blank(title) else title.strip().upper(),
        "phone": phone if blank(phone) else NON_DIGITS.sub("", phone),
        "city": row["City"],
        "name": f"{first} {last}",
        "list": "bench",
    }
"""

#: The same job by hand: a ``csv.DictReader`` loop, rejects written with their reason and line.
RAW_LOOP = (
    HAND_WRITTEN
    + r"""

def main(source, output, errors):
    with open(source, newline="", encoding="utf-8") as src, open(output, "w", encoding="utf-8") as dst, \
            open(errors, "w", encoding="utf-8") as bad:
        reader = csv.DictReader(src)
        end = reader.line_num if reader.fieldnames else 0  # the header's last line
        for row in reader:
            position, end = end + 1, reader.line_num
            out = shape(row)
            if out is None:
                reason = "field 'email' is required (from 'Email')"
                detail = {"component": "people", "reason": reason, "source": "leads", "position": position}
                bad.write(json.dumps({**row, "_error": detail}, ensure_ascii=False) + "\n")
                continue
            dst.write(json.dumps(out, ensure_ascii=False) + "\n")


main(*sys.argv[1:4])
"""
)

#: The same job in dlt (``--dlt PYTHON``: an interpreter with dlt installed, kept out of crmsync's own
#: environment). dlt's filesystem destination writes JSONL; the transforms run in a ``add_map`` step.
DLT_JOB = (
    HAND_WRITTEN
    + r"""
import os, tempfile
import dlt


@dlt.resource(name="leads", write_disposition="replace")
def leads(path):
    with open(path, newline="", encoding="utf-8") as src:
        yield from csv.DictReader(src)


os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = "file://" + sys.argv[2]
os.environ["DATA_WRITER__DISABLE_COMPRESSION"] = "true"
pipeline = dlt.pipeline(
    pipeline_name="bench_files", destination="filesystem", dataset_name="out", pipelines_dir=tempfile.mkdtemp()
)
pipeline.run(leads(sys.argv[1]).add_map(shape).add_filter(lambda row: row is not None), loader_file_format="jsonl")
"""
)

FIRSTS = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim", "José", "Zoë"]
LASTS = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Łukasiewicz", "Perlman", "O'Neil"]
TITLES = ["Engineer", "CTO", "VP Sales", "Head of Growth", "Développeur", ""]
CITIES = ["Paris", "Zürich", "São Paulo", "東京", "New York, NY", "Kraków", ""]
ODD_URLS = [
    "not a url",
    "http://",
    "www.{d}.com:8080/path",
    "HTTPS://User:pw@Sub.{d}.co.uk/?q=1",
    "http://[2001:db8::1]:8080/x",
    "{d}.com.",
    "ftp://files.{d}.org",
    "//{d}.io/a#b",
    "  https://WWW.{d}.com  ",
    "mailto:someone@{d}.com",
    "https://bücher.{d}.de/über",
]
NOTES = ['Met at "Expo", liked it', "line one\nline two", "a, b, and c", 'He said "hi"\r\nthen left', "ok"]


def messy_row(rng: random.Random, i: int) -> list[str]:
    """One row of a lead list as people export them."""
    first, last = rng.choice(FIRSTS), rng.choice(LASTS)
    domain = f"example{i % 5000}"
    email = f"{first}.{last}{i}@{domain.capitalize()}.com".replace(" ", "").replace("'", "")
    roll = rng.random()
    if roll < 0.03:
        email = ""  # rejected: required
    elif roll < 0.04:
        email = "   "  # blank too
    elif roll < 0.20:
        email = f"  {email.upper()} "
    website = rng.choice(ODD_URLS).format(d=domain) if rng.random() < 0.15 else f"https://www.{domain}.com/about"
    if rng.random() < 0.05:
        website = ""
    pad = " " if rng.random() < 0.3 else ""
    return [
        f"{pad}{first}{pad}",
        last if rng.random() < 0.95 else "",
        email,
        f"Company {i % 5000}" if rng.random() < 0.9 else rng.choice(["", "  ", " Acme, Inc. "]),
        website,
        rng.choice(TITLES),
        rng.choice(["+1 (555) 010-9999", "555.010.1234", "", "n/a", "+44 20 7946 0958"]),
        rng.choice(CITIES),
        rng.choice(NOTES) if rng.random() < 0.1 else "",
    ]


def clean_row(rng: random.Random, i: int) -> list[str]:
    """One row of a tidy lead list."""
    first, last = rng.choice(FIRSTS[:10]), rng.choice(LASTS[:7])
    domain = f"example{i % 5000}"
    return [
        f" {first} ",
        last,
        f"{first}.{last}{i}@{domain.capitalize()}.com",
        f"Company {i % 5000}",
        f"https://www.{domain}.com/about",
        "Engineer",
        "+1 (555) 010-9999",
        "Paris",
        "",
    ]


def generate(rows: int, messy: bool = False) -> Path:
    """A deterministic lead list of ``rows`` rows (cached between runs)."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"leads-{'messy' if messy else 'clean'}-{rows}.csv"
    if path.exists():
        return path
    rng = random.Random(rows)
    make = messy_row if messy else clean_row
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(rows):
            writer.writerow(make(rng, i))
    partial.replace(path)
    return path


def count_leads(path: Path) -> int:
    """The rows of a lead list of one's own, a CSV with :data:`COLUMNS` (stops naming the columns it lacks)."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        missing = set(COLUMNS) - set(next(reader, []))
        if missing:
            raise SystemExit(f"{path}: lacks the column(s) {', '.join(sorted(missing))}")
        return sum(1 for _ in reader)


def timed(command: list[str], code: Path | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of a child process; with ``code``, run by the crmsync code in
    that folder (``connector_core`` and a ``crmsync_plugins`` link) instead of this one.

    CPU time is what the goals are stated in: on a shared virtual machine wall time also measures the neighbours.
    """
    # `-m` puts the working folder first on the path: the other code's folder, so its connector_core is the one run.
    env = {**os.environ, "PYTHONPATH": str(code)} if code else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def best(command: list[str], repeat: int) -> tuple[float, float]:
    """The best wall time and the best CPU time over ``repeat`` runs."""
    runs = [timed(command) for _ in range(repeat)]
    return min(wall for wall, _ in runs), min(cpu for _, cpu in runs)


def peak_rss(command: list[str]) -> int:
    """Peak RSS (KiB) of one child process, measured in a fresh interpreter so earlier children don't count."""
    probe = textwrap.dedent(
        """
        import resource, subprocess, sys
        subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        """
    )
    out = subprocess.run([sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def crmsync_job(rows_csv: Path, tag: str, key: bool) -> Path:
    """A spec for ``rows_csv``, writing ``out-<tag>.jsonl`` and ``errors-<tag>.jsonl``."""
    spec = DATA / f"bench-{tag}.yaml"
    outputs = {"out": DATA / f"out-{tag}.jsonl", "errors": DATA / f"errors-{tag}.jsonl"}
    spec.write_text(SPEC.format(csv=rows_csv, key=", key: Email" if key else "", **outputs), encoding="utf-8")
    return spec


def compare(source: Path, rows: int, key: bool, repeat: int, dlt_python: str | None) -> dict[str, object]:
    """Paired CPU runs of the raw loop and crmsync (and dlt) over one lead list of ``rows`` rows; checks identical
    output."""
    spec = crmsync_job(source, "big", key)
    raw = [sys.executable, "-c", RAW_LOOP, str(source), str(DATA / "out-raw.jsonl"), str(DATA / "errors-raw.jsonl")]
    ours = [*CRMSYNC, "-q", "run", "--no-state", str(spec)]
    dlt = [dlt_python, "-c", DLT_JOB, str(source), str(DATA / "out-dlt")] if dlt_python else None
    if dlt:
        shutil.rmtree(DATA / "out-dlt", ignore_errors=True)
    raw_runs, our_runs, dlt_runs = [], [], []
    for _ in range(repeat):
        raw_runs.append(timed(raw))
        our_runs.append(timed(ours))
        if dlt:
            dlt_runs.append(timed(dlt))
    check_same_output(DATA / "out-raw.jsonl", DATA / "out-big.jsonl")
    errors = check_same_count(DATA / "errors-raw.jsonl", DATA / "errors-big.jsonl")
    raw_cpu = statistics.median(cpu for _, cpu in raw_runs)
    our_cpu = statistics.median(cpu for _, cpu in our_runs)
    result: dict[str, object] = {
        "rows": rows,
        "rejected": errors,
        "raw_cpu_s": round(raw_cpu, 3),
        "crmsync_cpu_s": round(our_cpu, 3),
        "cpu_ratio": round(raw_cpu / our_cpu, 3),
        "wall_ratio": round(statistics.median(w for w, _ in raw_runs) / statistics.median(w for w, _ in our_runs), 3),
        "crmsync_records_per_cpu_s": round(rows / our_cpu),
    }
    if dlt_runs:
        written = sum(1 for path in (DATA / "out-dlt").glob("out/leads/*.jsonl") for _ in path.open(encoding="utf-8"))
        delivered = sum(1 for _ in (DATA / "out-big.jsonl").open(encoding="utf-8"))
        if written != delivered:
            raise SystemExit(f"dlt wrote {written} records, crmsync {delivered}")
        dlt_cpu = statistics.median(cpu for _, cpu in dlt_runs)
        result |= {"dlt_cpu_s": round(dlt_cpu, 3), "crmsync_vs_dlt_cpu": round(dlt_cpu / our_cpu, 3)}
    return result


def check_same_output(expected: Path, actual: Path) -> None:
    """Stop when crmsync's output differs from the raw loop's: the comparison would be of different work."""
    if expected.read_bytes() != actual.read_bytes():
        with expected.open(encoding="utf-8") as want, actual.open(encoding="utf-8") as got:
            for number, (left, right) in enumerate(zip(want, got, strict=False), 1):
                if left != right:
                    raise SystemExit(f"outputs differ at line {number}:\n raw:     {left} crmsync: {right}")
        raise SystemExit("outputs differ in length")


def check_same_count(expected: Path, actual: Path) -> int:
    """The number of rejected rows, checked equal for both (positions and reasons are compared by the tests)."""
    want = sum(1 for _ in expected.open(encoding="utf-8"))
    got = sum(1 for _ in actual.open(encoding="utf-8"))
    if want != got:
        raise SystemExit(f"raw loop rejected {want} rows, crmsync {got}")
    return got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[300_000, 1_000_000])
    parser.add_argument("--small-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--messy", action="store_true", help="generate a messy lead list (see above)")
    parser.add_argument("--leads", type=Path, help="a lead list of your own (the columns above), instead of --rows")
    parser.add_argument("--no-key", action="store_true", help="no `key:`: records keyed by a content hash")
    parser.add_argument("--dlt", metavar="PYTHON", help="also run the job in dlt with this interpreter")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak RSS and --help measures")
    args = parser.parse_args()

    results: dict[str, object] = {"messy": args.messy, "key": not args.no_key, "repeat": args.repeat}
    if args.leads:
        args.leads = args.leads.resolve()  # the spec, written elsewhere, names it
        lists = {count_leads(args.leads): args.leads}
        results["leads"] = str(args.leads)
    else:
        lists = {rows: generate(rows, args.messy) for rows in args.rows}
    results["runs"] = [compare(path, rows, not args.no_key, args.repeat, args.dlt) for rows, path in lists.items()]
    if not args.no_memory:
        small_spec = crmsync_job(generate(args.small_rows, args.messy), "small", not args.no_key)
        big_spec = crmsync_job(lists[max(lists)], "big", not args.no_key)
        rss_small = peak_rss([*CRMSYNC, "-q", "run", "--no-state", str(small_spec)])
        rss_big = peak_rss([*CRMSYNC, "-q", "run", "--no-state", str(big_spec)])
        results |= {
            "peak_rss_small_mib": round(rss_small / 1024, 1),
            "peak_rss_big_mib": round(rss_big / 1024, 1),
            "rss_ratio": round(rss_big / rss_small, 3),
            "help_s": round(best([*CRMSYNC, "--help"], 5)[0], 3),
        }
    results["python"] = sys.version.split()[0]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
