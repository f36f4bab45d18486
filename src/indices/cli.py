"""The `indices` command."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import date

from indices.core.settings import Settings, parse_iso_date


def _date(text: str) -> date:
    try:
        return parse_iso_date(text, "date")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _folders(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--raw-dir", help="raw extracts (default $INDICES_RAW_DIR or data/raw)")
    parser.add_argument(
        "--publish-dir", help="published datasets (default $INDICES_PUBLISH_DIR or data/published)"
    )
    parser.add_argument(
        "--warehouse-dir",
        help="private warehouse (default $INDICES_WAREHOUSE_DIR or data/warehouse)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="indices", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the whole pipeline (the Dagster job) in-process")
    _folders(run)
    run.add_argument(
        "--reference-date",
        type=_date,
        help="as-at date YYYY-MM-DD (default: the newest gp_patients extract date)",
    )

    synth = commands.add_parser("synth", help="write synthetic raw extracts of all six sources")
    synth.add_argument("--persons", type=int, required=True)
    where = synth.add_mutually_exclusive_group()
    where.add_argument("--lads", help="comma-separated LAD 2019 codes to cover")
    where.add_argument("--all-lads", action="store_true", help="cover all 317 LADs (default)")
    synth.add_argument("--date", type=_date, required=True, help="extract date YYYY-MM-DD")
    synth.add_argument("--seed", type=int, default=1)
    synth.add_argument("--format", choices=("csv", "csv.gz", "parquet"), default="csv")
    synth.add_argument(
        "--faults", type=float, default=0.0, help="rate of each quirk per row, 0 to 1/14"
    )
    synth.add_argument("--out", required=True, help="raw folder to write")

    composite = commands.add_parser(
        "composite", help="compute an index spec on any table, outside Dagster"
    )
    composite.add_argument("spec", help="the index spec (YAML)")
    composite.add_argument("--input", help="CSV or Parquet table replacing the spec's first input")
    composite.add_argument("--output", required=True, help="the small-area results (.parquet)")
    composite.add_argument(
        "--steps-dir", help="also write every step's values (raw ... aggregated) here"
    )
    composite.add_argument("--warehouse-dir", help="for specs that read `warehouse:` inputs")
    composite.add_argument("--publish-dir", help="for specs that read `published:` inputs")
    composite.add_argument(
        "--period", help="the period of inputs with no period column (a spec with periods)"
    )

    commands.add_parser("dictionary", help="print the data dictionary (Markdown)")

    releases = commands.add_parser("releases", help="list published releases")
    releases.add_argument("dataset", nargs="?")
    releases.add_argument("--publish-dir")

    lineage = commands.add_parser("lineage", help="print the tree of what a release came from")
    lineage.add_argument("dataset")
    lineage.add_argument("version", nargs="?", help="default: the latest")
    lineage.add_argument("--publish-dir")
    lineage.add_argument(
        "--openlineage", metavar="FILE", help="also append OpenLineage events (JSON lines) to FILE"
    )

    diff = commands.add_parser("diff", help="what changed between two releases of a dataset")
    diff.add_argument("dataset")
    diff.add_argument("old")
    diff.add_argument("new")
    diff.add_argument("--publish-dir")

    prune = commands.add_parser(
        "prune", help="remove old releases of a dataset, keeping the newest N (at least 1)"
    )
    prune.add_argument("dataset")
    prune.add_argument("--keep", type=int, required=True)
    prune.add_argument("--publish-dir")

    catalog = commands.add_parser(
        "catalog", help="check catalog.duckdb against the releases; rebuild it if it disagrees"
    )
    catalog.add_argument("--rebuild", action="store_true", help="rebuild it even if it agrees")
    catalog.add_argument("--publish-dir")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = {
            "run": _run,
            "synth": _synth,
            "releases": _releases,
            "dictionary": _dictionary,
            "composite": _composite,
            "lineage": _lineage,
            "diff": _diff,
            "prune": _prune,
            "catalog": _catalog,
        }
        return commands[args.command](args)
    except Exception as error:
        if not isinstance(error, _told_in_one_line()):
            raise
        # SpecError is a ValueError: each of its lines names a field and the allowed values.
        for line in str(error).splitlines() or [type(error).__name__]:
            print(f"indices: error: {line}", file=sys.stderr)
        return 2


def _told_in_one_line() -> tuple[type[Exception], ...]:
    """The errors that are the operator's to fix (bad input, a folder that cannot be written, a
    catalog that cannot be rebuilt), imported only when one happens: the command starts fast."""
    from indices.core.storage import CannotWrite
    from indices.releases.catalog import CatalogError

    return (ValueError, FileNotFoundError, CannotWrite, CatalogError)


def _run(args: argparse.Namespace) -> int:
    from indices.areas.tables import AREA_DATASETS
    from indices.core import storage
    from indices.sources.inputs import start_run

    settings = Settings.resolve(
        args.raw_dir, args.warehouse_dir, args.publish_dir, args.reference_date
    )
    for folder in (settings.warehouse_dir, settings.publish_dir):
        storage.check_writable(folder)  # a full or read-only folder: one line, before the run
    settings = start_run(settings)  # what the run reads, decided once, now
    register = settings.inputs.of("gp_patients")[-1].path.name
    print(
        f"indices: running the main job as at {settings.reference_date} on {settings.raw_dir} "
        f"(register {register})"
    )

    from pipelines.run import run_main_job  # the Dagster code location, loaded only to run

    result = run_main_job(settings, quiet=True)
    if not result.success:
        for event in (e for e in result.all_events if e.is_step_failure):
            print(f"indices: error: {event.step_key} failed: {_cause(event)}", file=sys.stderr)
        return 1
    print(f"indices: run {result.run_id} succeeded")
    print(f"published datasets in {settings.publish_dir}:")
    from indices.core.published import list_versions

    for dataset in AREA_DATASETS:
        versions = list_versions(settings.publish_dir, dataset.name)
        folder = storage.join(settings.publish_dir, dataset.name)
        print(f"  {dataset.name:<18} {versions[-1]}  {folder}")
    catalog = storage.join(settings.publish_dir, "catalog.duckdb")
    print(f"catalog: {catalog}")
    if storage.is_url(catalog):
        print("on an object store: see README, 'For analysts', to query it with DuckDB")
        return 0
    query = (
        "SELECT lad19_code, pop_65plus, efi_moderate, efi_severe, efi_moderate_severe_rate "
        "FROM frailty_lad ORDER BY lad19_code"
    )
    print("query it with DuckDB from anywhere, for example:")
    print(
        f'  {sys.executable} -c "import duckdb; '
        f"print(duckdb.connect('{catalog}', read_only=True).sql('{query}'))\""
    )
    return 0


def _cause(step_failure) -> str:
    """The first line of what made a step fail: the innermost error, without its class name."""
    error = step_failure.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    line = (error.message.strip().splitlines() or [""])[0]
    return re.sub(rf"^([\w.]+\.)?{re.escape(error.cls_name)}: ", "", line) or error.cls_name


def _synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from indices.synth import generate

    lads = [code.strip() for code in args.lads.split(",")] if args.lads else None
    summary = generate(
        Path(args.out),
        persons=args.persons,
        extract_date=args.date,
        seed=args.seed,
        lads=lads,
        fmt=args.format,
        faults=args.faults,
        progress=sys.stderr.isatty(),
    )
    files = summary.get("files", {})
    print(f"indices: wrote {len(files)} files to {args.out}")
    return 0


def _composite(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from indices.composite.engine import base_parameters_text, compute, load_inputs
    from indices.composite.spec import load_spec

    spec = load_spec(args.spec)
    folders = Settings.resolve(warehouse_dir=args.warehouse_dir, publish_dir=args.publish_dir)
    override = Path(args.input) if args.input else None
    data = load_inputs(spec, folders.warehouse_dir, override, folders.publish_dir)
    result = compute(spec, data, period=args.period)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(result.units, preserve_index=False), output)
    written = [output]
    extra = {"summaries": result.summaries, "uncertainty": result.uncertainty}
    for name, frame in extra.items():
        if frame is not None:
            path = output.with_name(f"{output.stem}_{name}.parquet")
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
            written.append(path)
    if args.steps_dir:
        folder = Path(args.steps_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for step, frame in result.steps.items():
            path = folder / f"{step}.parquet"
            pq.write_table(pa.Table.from_pandas(frame.reset_index()), path)
            written.append(path)
    if result.base is not None:  # name it in periods.parameters to keep later runs on its scale
        path = output.with_name(f"{output.stem}_base.json")
        path.write_text(base_parameters_text(result))
        written.append(path)
    if result.periods:
        base = spec.periods.base
        print(f"periods: {', '.join(result.periods)}" + (f" (base {base})" if base else ""))
    for name, weights in result.weights.items():
        print(f"weights of {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in weights.items()))
    imputed = {k: v for k, v in result.imputed.items() if v}
    print(f"imputed: {imputed or 'none'}")
    for note in result.notes:
        print(note)
    for warning in result.warnings:  # part of the summary: the run succeeded
        print(f"indices: warning: {spec.name}: {warning}")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _publish_dir(args: argparse.Namespace):
    return Settings.resolve(publish_dir=args.publish_dir).publish_dir


def _lineage(args: argparse.Namespace) -> int:
    from indices.releases.lineage import export_openlineage, lineage_tree

    print("\n".join(lineage_tree(_publish_dir(args), args.dataset, args.version)))
    if args.openlineage:
        count = export_openlineage(_publish_dir(args), args.dataset, args.version, args.openlineage)
        print(f"wrote {count} OpenLineage events to {args.openlineage}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from indices.releases.lineage import diff_releases

    print(diff_releases(_publish_dir(args), args.dataset, args.old, args.new))
    return 0


def _prune(args: argparse.Namespace) -> int:
    from indices.releases.lineage import prune_releases

    removed = prune_releases(_publish_dir(args), args.dataset, args.keep)
    print(f"removed {len(removed)} release(s) of {args.dataset}: {', '.join(removed) or 'none'}")
    return 0


def _catalog(args: argparse.Namespace) -> int:
    from indices.core import storage
    from indices.core.published import CATALOG, list_datasets
    from indices.releases.catalog import refresh_catalog

    publish_dir = _publish_dir(args)
    rebuilt = refresh_catalog(publish_dir, force=args.rebuild)
    catalog = storage.join(publish_dir, CATALOG)
    state = "rebuilt" if rebuilt else "agrees with the releases, kept"
    print(f"{catalog}: {state} ({len(list_datasets(publish_dir))} datasets)")
    return 0


def _dictionary(args: argparse.Namespace) -> int:
    from indices.dictionary import data_dictionary

    print(data_dictionary(), end="")
    return 0


def _releases(args: argparse.Namespace) -> int:
    from indices.core.published import list_datasets, list_versions, read_manifest

    publish_dir = _publish_dir(args)
    datasets = [args.dataset] if args.dataset else list_datasets(publish_dir)
    for dataset in datasets:
        versions = list_versions(publish_dir, dataset)
        if not versions:
            raise ValueError(f"no releases of {dataset!r} in {publish_dir}")
        for version in versions:
            manifest = read_manifest(publish_dir, dataset, version)
            print(
                f"{dataset:<20} {version}  reference {manifest['reference_date']}  "
                f"created {manifest['created']}  rows {manifest['row_count']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
