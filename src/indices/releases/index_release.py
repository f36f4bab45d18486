"""Publishing an index: its small-area, larger-area and uncertainty datasets as releases."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa

from indices.areas.tables import current_area_counts
from indices.composite.engine import (
    PERIOD,
    SUMMARY_MEASURES,
    Result,
    compute,
    load_inputs,
    resolve_path,
)
from indices.composite.report import render_report
from indices.composite.spec import IndexSpec, Indicator, load_spec, walk
from indices.core import storage, warehouse
from indices.core.published import DATA_FILE, list_versions
from indices.core.reference import file_sha256, input_record
from indices.core.settings import Settings
from indices.releases.audit import area_code_problems
from indices.releases.publish import Release, publish_release
from indices.sources.conformed import lineage_inputs
from indices.sources.inputs import reference_date
from indices.sources.registry import PERSON_SOURCES

LEVEL_NAMES = {"lsoa11_code": "lsoa", "lad19_code": "lad"}
REPORT = "report.html"  # beside the small-area data of every index release


def dataset_names(spec: IndexSpec) -> dict[str, str]:
    """The datasets an index publishes: `<index>_lsoa`, `<index>_lad`, `<index>_uncertainty`."""
    names = {"units": f"{spec.name}_{LEVEL_NAMES.get(spec.unit, spec.unit)}"}
    if spec.summaries:
        names["summaries"] = f"{spec.name}_{LEVEL_NAMES.get(spec.group, spec.group)}"
    if spec.uncertainty.runs:
        names["uncertainty"] = f"{spec.name}_uncertainty"
    return names


def _ntile_formula(n: int, rule: str) -> str:
    if rule == "equal_count":
        return f"floor((rank − 1) × {n} / number of areas) + 1"
    return f"ceil({n} × rank / number of areas)"


def column_descriptions(spec: IndexSpec) -> dict[str, str]:
    ties = {
        "min": "",
        "average": "; tied scores share their average rank",
        "max": "; tied scores share the highest of their ranks",
        "first": "; tied scores are ranked in the order of the areas",
    }[spec.ranks.ties]
    described = {
        spec.unit: "the small area",
        "score": f"{spec.title}: score, higher = more in need",
        "rank": f"rank of the score, 1 = highest score (most in need){ties}",
        "average_score": "population-weighted mean of the small areas' scores",
        "average_rank": "population-weighted mean of the small areas' ranks counted from the "
        "least in need (the most in need has the highest), as the IoD publish it",
        "proportion_most_deprived_10pct": "share of the small areas in the most deprived 10% "
        "nationally (of those ranked)",
        "extent": "population share in the most deprived 30% of small areas, weighted 1 for "
        "percentiles 1-10 tapering to 0.05 at 30",
        "local_concentration": "population-weighted mean rank (counted from the least in need) "
        "of the most deprived small areas that hold 10% of the area's population",
        "median_rank": "median rank over the Monte Carlo runs",
        "rank_p05": "5th percentile of the rank over the runs (lower end of the 90% interval)",
        "rank_p95": "95th percentile of the rank over the runs (upper end of the 90% interval)",
    }
    for name, n in spec.ranks.ntiles().items():
        top = f"{100 / n:.3g}%"
        described[name] = f"{_ntile_formula(n, spec.ranks.quantiles)}: 1 = the {top} most in need"
    if spec.periods:
        described[PERIOD] = f"the period ({spec.periods.column} of the inputs)"
    if spec.group:
        described[spec.group] = "the larger area"
    for measure in SUMMARY_MEASURES:
        described[f"rank_of_{measure}"] = f"rank of {measure}, 1 = most in need"
    for node in spec.domains:
        kind = "indicator" if isinstance(node, Indicator) else "domain"
        described[f"{node.name}_score"] = f"{kind} {node.name}: score, higher = more in need"
        described[f"{node.name}_rank"] = f"{kind} {node.name}: rank, 1 = most in need"
    return described


def one_row_per_area(spec: IndexSpec):
    """The audit an index adds to every release's: its unit and group are areas (ONS codes),
    whatever they are called, so an index is never one row per person."""

    def audit(table: pa.Table) -> list[str]:
        keys = [c for c in (spec.unit, spec.group) if c and c in table.column_names]
        return area_code_problems(table, keys)

    return audit


def _table(frame) -> pa.Table:
    return pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)


def publish_index(
    result: Result,
    publish_dir: Path,
    inputs: list[dict],
    reference_date: date | None,
    run_id: str | None = None,
) -> dict[str, Release]:
    """Publish every dataset of a computed index; the releases by role."""
    spec = result.spec
    described = column_descriptions(spec)
    spec_input = [{"role": "spec", "path": str(spec.source), "sha256": file_sha256(spec.source)}]
    by_period = [PERIOD] if result.periods else []
    frames = {
        "units": (result.units, by_period + [spec.unit]),
        "summaries": (result.summaries, by_period + ([spec.group] if spec.group else [])),
        "uncertainty": (result.uncertainty, by_period + [spec.unit]),
    }
    if result.base is not None:
        spec_input.append(base_period_record(result))
    names = dataset_names(spec)
    previous = previous_units(publish_dir, names["units"])
    report = render_report(result, previous, release=names["units"]).encode()
    releases = {}
    for role, dataset in names.items():
        frame, sort_by = frames[role]
        upstream = (
            [{"dataset": releases["units"].dataset, "version": releases["units"].version}]
            if role != "units"
            else []
        )
        releases[role] = publish_release(
            publish_dir,
            dataset,
            _table(frame),
            description=f"{spec.title}: {role.replace('units', 'small areas')}{_over(result)}",
            column_descriptions=described,
            sort_by=sort_by,
            reference_date=reference_date,
            inputs=spec_input + inputs,
            upstream=upstream,
            extra_audit=one_row_per_area(spec),
            extra_files={REPORT: report} if role == "units" else None,
            run_id=run_id,
        )
    return releases


def _over(result: Result) -> str:
    if not result.periods:
        return ""
    text = f", periods {result.periods[0]} to {result.periods[-1]}"
    if result.base is not None:
        text += f" on the scale of the base period {result.base['base_period']}"
    return text


def base_period_record(result: Result) -> dict:
    """The base period and its parameters, recorded among a release's inputs (what fixes the
    scale of every period is an input of the release, and a changed base a changed input)."""
    spec = result.spec
    canonical = json.dumps(result.base, sort_keys=True).encode()
    return {
        "role": "base period",
        "path": spec.periods.parameters or f"{spec.name} base period {result.base['base_period']}",
        "sha256": hashlib.sha256(canonical).hexdigest(),
        "base_period": result.base["base_period"],
        "periods": result.periods,
        "parameters": result.base,
    }


def previous_units(publish_dir: Path, dataset: str) -> pd.DataFrame | None:
    """The small-area results of the latest release so far (its latest period), to report rank
    moves against."""
    versions = list_versions(publish_dir, dataset)
    if not versions:
        return None
    units = storage.read_table(
        storage.join(publish_dir, dataset, versions[-1], DATA_FILE)
    ).to_pandas()
    if PERIOD in units:
        units = units[units[PERIOD] == units[PERIOD].max()].reset_index(drop=True)
    return units


def nodes_table(spec: IndexSpec, result: Result) -> list[dict]:
    """The tree with each node's weight as used (derived weights included), for reports."""
    rows = []
    for node in walk(spec.index):
        for parent, children in result.weights.items():
            if node.name in children:
                rows.append({"node": node.name, "parent": parent, "weight": children[node.name]})
    return rows


def index_spec_paths() -> list[Path]:
    """Every index spec in `data/reference/indices/`: a new index is a new file there."""
    from indices.core.reference import reference_dir

    return sorted((reference_dir() / "indices").glob("*.yaml"))


def index_warehouse_inputs(spec: IndexSpec) -> list[warehouse.Table]:
    """The warehouse tables an index reads (area-level aggregates, `warehouse.READABLE_BY_SPECS`)."""
    return [
        warehouse.READABLE_BY_SPECS[i.path.removeprefix("warehouse:")]
        for i in spec.inputs
        if i.path.startswith("warehouse:")
    ]


def build_and_publish_index(settings: Settings, spec_path: Path, run_id: str | None = None):
    """Compute an index from its spec and publish its datasets; the result and releases. An
    index over periods that reads the area counts (one reference date, no period column) is
    built for the run's reference date as its period."""
    spec = load_spec(spec_path)
    uses_warehouse = bool(index_warehouse_inputs(spec))
    if uses_warehouse:  # the area counts, the one warehouse table an index may read
        current_area_counts(settings)
    data = load_inputs(spec, settings.warehouse_dir, publish_dir=settings.publish_dir)
    period = reference_date(settings) if spec.periods and uses_warehouse else None
    result = compute(spec, data, period=period)
    inputs = [
        input_record(
            resolve_path(spec, i.path, settings.warehouse_dir, settings.publish_dir),
            f"index input/{i.path}",
        )
        for i in spec.inputs
        if not i.path.startswith("warehouse:")
    ]
    if uses_warehouse:
        inputs += lineage_inputs(settings, PERSON_SOURCES)
    releases = publish_index(
        result,
        settings.publish_dir,
        inputs,
        reference_date(settings) if uses_warehouse else None,
        run_id,
    )
    return result, releases
