"""Benchmark of ingest and conformance at scale: wall time, throughput and peak memory per step.

For each population size N given on the command line (default 100,000 and 1,000,000 persons):

1. Synthetic raw extracts of all six sources are generated with `indices.synth.generate`
   (`extract_date=2025-03-31`, `seed=1`, every local authority, gzipped CSV, 1% row faults) into a
   scratch folder. Generation is timed and reported on its own row; it is not part of the pipeline.
2. Every source is conformed with `indices.sources.conformed.conform`, gp_patients first, in the order of
   `registry.SOURCES`, each in a FRESH child process, as Dagster's multiprocess executor would run
   it, so a step's peak memory is its own. Per source: data rows read, rows per second, wall
   seconds of the step call, the child's peak resident set size, and whether every file's ledger
   balanced (rows read = conformed + quarantined).
3. The downstream person-level steps, `parts.persons` for every authority's residents (and the
   unlocated), `parts.long_term_support` for every authority sending social care data, then
   `tables.area_counts`, run together in one more fresh child; their wall times are reported
   separately (with the time of one authority's persons part made alone, as a backfill run
   makes it), their peak memory jointly.

Wall time is measured inside the child around the step call only (interpreter start and imports
excluded); "process s" is the whole child process. Peak memory is the child's maximum RSS: the
largest of `/usr/bin/time -v` (when installed), the child's own `getrusage(RUSAGE_SELF)` and the
VmHWM sampled from /proc every second (so a step that times out still has a figure). DuckDB's
buffers are inside that process, so they are included. DuckDB keeps its per-connection default
limit (`INDICES_DUCKDB_MEMORY`, "2GB" unless set).

The script prints a Markdown table (one row per N and step) and a line giving the largest peak
RSS of the pipeline steps and whether it is under 3 GiB, the requirement for 1M persons.

Run from the project root:

    .venv/bin/python benchmarks/ingest.py 100000 1000000

Options: `--work DIR` (scratch folder; default a new folder under /tmp), `--reuse` (keep extracts
already generated for an N in the scratch folder instead of generating them again; combine with
`--keep` on the run that makes them), `--keep` (do not delete the scratch folder at the end),
`--timeout SECONDS` (per child process), `--snapshot` (run on the committed HEAD's `src/` and
`data/reference/`, exported to the scratch folder, so edits to the working tree during a long run
do not affect it). The exit status is 1 when any step failed or a pipeline step's peak RSS
reached 3 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TIME_BIN = Path("/usr/bin/time")
LIMIT_BYTES = 3 * 1024**3
MIB = 1024**2
SOURCES_FALLBACK = (
    "gp_patients",
    "gp_events",
    "gp_medications",
    "hes_apc",
    "asc_cld",
    "fingertips",
)

# Each child reads its arguments as one JSON document, runs one step, and writes one JSON result
# (including its own peak RSS) to the file named in the arguments.
CHILD_CODE = r"""
import json, resource, sys, time
from pathlib import Path

args = json.loads(sys.argv[1])
out = {}
kind = args["kind"]
if kind == "generate":
    from datetime import date
    from indices.synth import generate

    start = time.perf_counter()
    description = generate(Path(args["raw"]), persons=args["persons"],
                           extract_date=date(2025, 3, 31), seed=1, lads=None, fmt="csv.gz",
                           faults=0.01)
    out["seconds"] = time.perf_counter() - start
    files = description.get("files", {}) if isinstance(description, dict) else {}
    rows = 0
    for info in files.values():
        if isinstance(info, dict):
            rows += int(info.get("rows", info.get("data_rows", 0)) or 0)
    out["rows"] = rows
    out["files"] = len(files)
else:
    from indices.areas import tables
    from indices.measures import parts
    from indices.sources import conformed
    from indices.sources import registry
    from indices.core.settings import Settings

    s = Settings.resolve(args["raw"], args["warehouse"], args["publish"])
    if kind == "conform":
        # A source sent by each authority is conformed in one part per authority, all at once,
        # as a run over every partition does.
        start = time.perf_counter()
        if args["source"] in registry.AUTHORITY_SOURCES:
            results = conformed.conform_by_authority(
                s, args["source"], conformed.social_care_authorities(s)
            )
        else:
            results = [conformed.conform(s, args["source"])]
        ledger = [f for result in results for f in result.ledger]
        out["seconds"] = time.perf_counter() - start
        out["rows"] = sum(f.rows_read for f in ledger)
        out["conformed"] = sum(f.conformed for f in ledger)
        out["quarantined"] = sum(sum(f.quarantined.values()) for f in ledger)
        out["files"] = len(ledger)
        out["balanced"] = all(f.balanced for f in ledger)
        out["unbalanced"] = [f.file for f in ledger if not f.balanced]
        out["rejected"] = {f.file: f.rejected for f in ledger if f.rejected}
    else:
        from indices.measures.persons import UNLOCATED

        # Every authority's part at once, as one run over every partition makes them; then
        # one authority alone, as one run of a backfill does.
        start = time.perf_counter()
        person_rows = sum(rows for _, rows in parts.persons(s, conformed.authorities_in_raw(s)))
        person_rows += sum(rows for _, rows in parts.persons(s, [UNLOCATED]))
        began = time.perf_counter()
        parts.persons(s, conformed.authorities_in_raw(s)[:1])
        one = time.perf_counter() - began
        parts.long_term_support(s, conformed.social_care_authorities(s))
        middle = time.perf_counter()
        count_rows = tables.area_counts(s)[1]
        end = time.perf_counter()
        out["seconds"] = end - start
        out["persons_seconds"] = middle - start
        out["one_authority_seconds"] = one
        out["area_counts_seconds"] = end - middle
        out["rows"] = person_rows
        out["area_rows"] = count_rows
out["self_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
Path(args["result"]).write_text(json.dumps(out))
"""


@dataclass
class Figure:
    """One row of the table: a step at one population size."""

    persons: int
    step: str
    ok: bool = False
    rows: int | None = None
    seconds: float | None = None
    process_seconds: float | None = None
    peak_bytes: int | None = None
    balanced: bool | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def rows_per_second(self) -> float | None:
        if self.rows is None or not self.seconds:
            return None
        return self.rows / self.seconds


def group_high_water(group: int) -> int:
    """The largest RSS high-water mark (VmHWM) among the live processes of a process group."""
    peak = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the command name, which is in parentheses: state ppid pgrp ...
            if int(stat.rsplit(")", 1)[1].split()[2]) != group:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (OSError, ValueError, IndexError):
            continue
    return peak


def run_child(
    args: dict, scratch: Path, timeout: float | None, code: Path | None = None
) -> tuple[dict | None, dict]:
    """Run one step in a fresh interpreter; its JSON result (None if it failed) and process facts:
    wall seconds of the whole process, peak RSS in bytes, and an error text.

    The child runs in a new session, so that on a timeout the whole group it started (the
    `time` wrapper and the interpreter) is ended, not only the wrapper. Its peak RSS is also
    sampled from /proc every second, so a step that times out still has a figure."""
    result_file = scratch / f".result.{os.getpid()}.{time.monotonic_ns()}.json"
    stats_file = scratch / f".time.{os.getpid()}.{time.monotonic_ns()}.txt"
    args = {**args, "result": str(result_file)}
    command = [sys.executable, "-c", CHILD_CODE, json.dumps(args)]
    if TIME_BIN.exists():
        command = [str(TIME_BIN), "-v", "-o", str(stats_file), *command]
    facts: dict = {"error": None}
    peaks = [0]
    env = dict(os.environ)
    if code is not None:  # import `indices` from a snapshot before the editable install
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(code / "src"), env.get("PYTHONPATH")) if p
        )
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            command,
            cwd=code or PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
        timed_out = False
        while True:
            try:
                process.wait(timeout=1)
                break
            except subprocess.TimeoutExpired:
                peaks.append(group_high_water(process.pid))
                if timeout is not None and time.perf_counter() - start > timeout:
                    timed_out = True
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    break
        facts["process_seconds"] = time.perf_counter() - start
        stderr.seek(0)
        error_text = stderr.read()
    if stats_file.exists():
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stats_file.read_text())
        if match:
            peaks.append(int(match.group(1)) * 1024)
        stats_file.unlink()
    output = None
    if result_file.exists():
        output = json.loads(result_file.read_text())
        result_file.unlink()
        peaks.append(int(output["self_maxrss_kib"]) * 1024)  # Linux reports KiB
    facts["peak_bytes"] = max(peaks) or None
    if timed_out:
        facts["error"] = f"timed out after {timeout:.0f} s (peak RSS sampled until then)"
        return None, facts
    if process.returncode != 0 or output is None:
        tail = [line for line in error_text.strip().splitlines() if line.strip()]
        tail = [line for line in tail if not line.startswith("Command ")]  # `time` notes
        raised = [line for line in tail if re.match(r"[\w.]+(Error|Exception|Exit)\b", line)]
        message = (raised or tail or ["(no error output)"])[-1]
        facts["error"] = f"exit {process.returncode}: {message}"
        facts["stderr"] = "\n".join(tail[-15:])
        return None, facts
    return output, facts


def figure_from(persons: int, step: str, output: dict | None, facts: dict) -> Figure:
    figure = Figure(persons, step)
    figure.process_seconds = facts.get("process_seconds")
    figure.peak_bytes = facts.get("peak_bytes")
    if output is None:
        figure.error = facts["error"]
        if facts.get("stderr"):
            print(f"--- {step} at N={persons} failed; stderr tail:\n{facts['stderr']}", flush=True)
        return figure
    figure.ok = True
    figure.rows = output.get("rows")
    figure.seconds = output.get("seconds")
    return figure


def raw_size(raw_dir: Path) -> int:
    return sum(p.stat().st_size for p in raw_dir.rglob("*") if p.is_file())


def bench_size(
    persons: int,
    scratch: Path,
    sources: tuple[str, ...],
    reuse: bool,
    timeout: float | None,
    code: Path | None,
) -> list[Figure]:
    """Generate, conform every source and build the person-level tables for one N."""
    base = scratch / f"n{persons}"
    raw, warehouse, publish = base / "raw", base / "warehouse", base / "publish"
    figures = []
    if reuse and (raw / "_synth.json").exists():
        figure = Figure(persons, "generate (reused)", ok=True)
        figure.notes.append("existing extracts reused, not timed")
        print(f"N={persons}: reusing extracts in {raw}", flush=True)
    else:
        shutil.rmtree(raw, ignore_errors=True)
        raw.mkdir(parents=True)
        print(f"N={persons}: generating extracts in {raw} ...", flush=True)
        output, facts = run_child({"kind": "generate", "raw": str(raw), "persons": persons},
                                  scratch, timeout, code)  # fmt: skip
        figure = figure_from(persons, "generate", output, facts)
        if output is not None:
            figure.notes.append(f"{output.get('files')} files")
    if raw.exists():
        figure.notes.append(f"{raw_size(raw) / MIB:,.0f} MiB gzipped CSV")
    figures.append(figure)
    print(f"  {describe(figure)}", flush=True)
    if not figure.ok:
        return figures

    # A fresh warehouse for every run, so conformance does not depend on an earlier one.
    shutil.rmtree(warehouse, ignore_errors=True)
    shutil.rmtree(publish, ignore_errors=True)
    common = {"raw": str(raw), "warehouse": str(warehouse), "publish": str(publish)}
    for source in sources:
        print(f"N={persons}: conform {source} ...", flush=True)
        output, facts = run_child(
            {**common, "kind": "conform", "source": source}, scratch, timeout, code
        )
        figure = figure_from(persons, f"conform {source}", output, facts)
        if output is not None:
            figure.balanced = output["balanced"]
            figure.notes.append(
                f"{output['files']} file(s), {output['conformed']:,} conformed, "
                f"{output['quarantined']:,} quarantined"
            )
            if output["unbalanced"]:
                figure.notes.append("unbalanced: " + ", ".join(output["unbalanced"]))
            reasons = Counter(
                reason.removeprefix(f"{name}: ") for name, reason in output["rejected"].items()
            )
            figure.notes += [f"{n} file(s) rejected: {reason}" for reason, n in reasons.items()]
        figures.append(figure)
        print(f"  {describe(figure)}", flush=True)

    print(f"N={persons}: persons + area_counts ...", flush=True)
    output, facts = run_child({**common, "kind": "downstream"}, scratch, timeout, code)
    figure = figure_from(persons, "persons + area_counts", output, facts)
    if output is not None:
        figure.notes.append(
            f"persons and long-term support, every authority's part, "
            f"{output['persons_seconds']:.1f} s ({output['rows']:,} rows; one authority alone "
            f"{output['one_authority_seconds']:.1f} s), "
            f"area_counts {output['area_counts_seconds']:.1f} s ({output['area_rows']:,} rows); "
            "rows/s over persons written"
        )
    figures.append(figure)
    print(f"  {describe(figure)}", flush=True)
    return figures


def fmt_number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def describe(figure: Figure) -> str:
    status = "ok" if figure.ok else f"FAILED ({figure.error})"
    return (
        f"{figure.step}: {status}, {fmt_number(figure.seconds, '.1f')} s, "
        f"peak {fmt_number(figure.peak_bytes and figure.peak_bytes / MIB, ',.0f')} MiB"
    )


def markdown_table(figures: list[Figure]) -> str:
    header = (
        "| N persons | step | rows read | rows/s | wall s | process s | peak RSS MiB "
        "| balanced | status | notes |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for f in figures:
        balanced = "" if f.balanced is None else ("yes" if f.balanced else "**NO**")
        over = f.peak_bytes is not None and f.peak_bytes >= LIMIT_BYTES
        peak = fmt_number(f.peak_bytes and f.peak_bytes / MIB, ",.0f")
        lines.append(
            f"| {f.persons:,} | {f.step} | {fmt_number(f.rows, ',')} "
            f"| {fmt_number(f.rows_per_second, ',.0f')} | {fmt_number(f.seconds, '.1f')} "
            f"| {fmt_number(f.process_seconds, '.1f')} | {'**' + peak + '**' if over else peak} "
            f"| {balanced} | {'ok' if f.ok else 'FAILED: ' + (f.error or '')} "
            f"| {'; '.join(f.notes)} |"
        )
    return "\n".join(lines)


def step_sources(code: Path | None) -> tuple[str, ...]:
    """The sources in pipeline order, gp_patients first."""
    sys.path.insert(0, str((code or PROJECT_ROOT) / "src"))
    try:
        from indices.sources import registry
    except ImportError:
        return SOURCES_FALLBACK
    ordered = list(registry.SOURCES)
    if "gp_patients" in ordered:
        ordered.remove("gp_patients")
        ordered.insert(0, "gp_patients")
    return tuple(ordered)


def code_version() -> str:
    """The commit the project is at, and whether its code differs from it: other engineers may
    be editing the working tree while a benchmark runs."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "pipelines"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head}{' with uncommitted changes to src/ or pipelines/' if dirty else ''}"


def export_snapshot(scratch: Path) -> Path:
    """The committed HEAD's `src/` and `data/reference/`, exported under the scratch folder, so
    that a long run is not broken by edits to the working tree."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    target = scratch / f"code-{head[:12]}"
    if not target.exists():
        archive = scratch / f".code-{head[:12]}.tar"
        subprocess.run(
            ["git", "archive", "-o", str(archive), head, "src", "data/reference"],
            cwd=PROJECT_ROOT,
            check=True,
        )
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        archive.unlink()
    return target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure synthetic extract generation, conformance of every source and the "
        "person-level steps, each step in a fresh process; print a Markdown table."
    )
    parser.add_argument(
        "persons",
        nargs="*",
        type=int,
        default=[100_000, 1_000_000],
        help="population sizes to run (default: 100000 1000000)",
    )
    parser.add_argument(
        "--work", type=Path, help="scratch folder (default: a new folder under /tmp)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="reuse extracts already generated in --work"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder afterwards")
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="run the steps on the committed HEAD exported to the scratch folder, not on the "
        "working tree (which others may be editing)",
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds allowed per child process"
    )
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.persons):
        parser.error("population sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    created = args.work is None
    scratch = Path(tempfile.mkdtemp(prefix="indices-bench-")) if created else args.work.resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    code = export_snapshot(scratch) if args.snapshot else None
    sources = step_sources(code)
    memory = os.environ.get("INDICES_DUCKDB_MEMORY", "2GB (default)")
    print(
        f"code {code.name if code else code_version()}; scratch {scratch}; {os.cpu_count()} CPUs; DuckDB memory limit {memory}; "
        f"peak RSS from {'/usr/bin/time -v and ' if TIME_BIN.exists() else ''}getrusage",
        flush=True,
    )
    figures: list[Figure] = []
    try:
        for persons in args.persons:
            figures += bench_size(persons, scratch, sources, args.reuse, args.timeout, code)
    finally:
        if args.keep:
            print(f"kept {scratch}", flush=True)
        elif created:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            for persons in args.persons:
                shutil.rmtree(scratch / f"n{persons}", ignore_errors=True)
            if code is not None:
                shutil.rmtree(code, ignore_errors=True)

    print()
    print(markdown_table(figures))
    print()
    pipeline = [f for f in figures if not f.step.startswith("generate") and f.peak_bytes]
    failed = [f for f in figures if not f.ok]
    if pipeline:
        top = max(pipeline, key=lambda f: f.peak_bytes or 0)
        under = (top.peak_bytes or 0) < LIMIT_BYTES
        print(
            f"Maximum peak RSS of the pipeline steps: {top.peak_bytes / MIB:,.0f} MiB "
            f"({top.step}, N={top.persons:,}); under 3 GiB: {'yes' if under else 'NO'}."
        )
    else:
        under = False
        print("Maximum peak RSS of the pipeline steps: not measured (no pipeline step ran).")
    generation = [f for f in figures if f.step == "generate" and f.peak_bytes]
    if generation:
        top_gen = max(generation, key=lambda f: f.peak_bytes or 0)
        print(
            f"Maximum peak RSS of generation (not a pipeline step): "
            f"{top_gen.peak_bytes / MIB:,.0f} MiB (N={top_gen.persons:,})."
        )
    if failed:
        print("Failed: " + "; ".join(f"{f.step} at N={f.persons:,}: {f.error}" for f in failed))
    return 0 if under and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
