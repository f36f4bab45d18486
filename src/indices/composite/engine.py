"""The composite engine: spec → inputs → indicators → impute → treat → normalise → weight →
aggregate → score, rank, decile; then area summaries and rank uncertainty. Every step's values
are kept, so each can be inspected and compared.

The inputs are read by DuckDB: every declared input is loaded first, then the connection's
external access is turned off and its configuration locked (`lock_down`), and only then does any
text from the spec (filters, renames, columns) run, so nothing a spec says can read or write a
file or change a setting."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from indices.composite import methods
from indices.composite.filters import FilterRefused, render_filter
from indices.composite.spec import (
    MAX_RUN_DRAWS,
    IndexSpec,
    Indicator,
    Node,
    SpecError,
    input_location,
)
from indices.core import storage
from indices.core.duck import connect, ident, sql_str
from indices.core.published import latest_data
from indices.core.reference import reference_dir

STEPS = ("raw", "imputed", "treated", "normalised", "aggregated")
SUMMARY_MEASURES = (
    "average_score",
    "average_rank",
    "proportion_most_deprived_10pct",
    "extent",
    "local_concentration",
)


@dataclass
class Result:
    """An index computed: per-unit outputs, every step's values and what the methods decided."""

    spec: IndexSpec
    units: pd.DataFrame
    steps: dict[str, pd.DataFrame]
    imputed: dict[str, int]
    weights: dict[str, dict[str, float]]
    treatment: dict[str, dict]
    summaries: pd.DataFrame | None = None
    uncertainty: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


# -- inputs --------------------------------------------------------------------------------------


def _within(spec: IndexSpec, path: str, folder: Path, relative: str, name: str) -> Path:
    """`folder / relative` with every symlink followed, refused unless it stays in `folder`."""
    folder = folder.resolve()
    candidate = (folder / relative).resolve()
    if not candidate.is_relative_to(folder):
        raise SpecError(f"{spec.name}: input {path} leads outside {name} (through a symlink)")
    return candidate


def resolve_path(
    spec: IndexSpec,
    path: str,
    warehouse_dir: storage.Location | None,
    publish_dir: storage.Location | None = None,
) -> storage.Location:
    """A file in the spec's folder, `reference:<file>`, `published:<dataset>` (its latest
    release) or `warehouse:<file>` (an area-level aggregate, `spec.WAREHOUSE_INPUTS`)."""
    try:
        kind, rest = input_location(path)
    except ValueError as error:
        raise SpecError(f"{spec.name}: input {error}") from None
    if kind == "reference":
        return _within(spec, path, reference_dir(), rest, "the reference folder")
    if kind == "warehouse":
        if warehouse_dir is None:
            raise SpecError(f"{spec.name}: input {path} needs the warehouse folder")
        return storage.join(warehouse_dir, rest)
    if kind == "published":
        if publish_dir is None:
            raise SpecError(f"{spec.name}: input {path} needs the publish folder")
        latest = latest_data(publish_dir, rest)
        if latest is None:
            raise SpecError(f"{spec.name}: input {path}: no release of {rest} in {publish_dir}")
        return latest
    if spec.source is None:
        raise SpecError(
            f"{spec.name}: input {path}: a spec not read from a file has no folder to read it from"
        )
    return _within(spec, path, spec.source.parent, rest, "the spec's folder")


def _reader(path: storage.Location) -> str:
    if not storage.exists(path):
        raise SpecError(f"input {path} does not exist")
    if str(path).endswith(".parquet"):
        return f"read_parquet({sql_str(path)})"
    return f"read_csv({sql_str(path)}, header = true)"


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """No file, network or extension access from here on, and no setting can change back."""
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def load_inputs(
    spec: IndexSpec,
    warehouse_dir: storage.Location | None = None,
    override: Path | None = None,
    publish_dir: storage.Location | None = None,
) -> pd.DataFrame:
    """The spec's input tables joined on the unit key (the first table defines the units).
    `override` replaces the first table, for `indices composite SPEC --input FILE`; `publish_dir`
    is where `published:` inputs are read from."""
    con = connect()
    try:
        for number, source in enumerate(spec.inputs):
            path = (
                override
                if (number == 0 and override)
                else resolve_path(spec, source.path, warehouse_dir, publish_dir)
            )
            _run(spec, source.path, con, f"CREATE TEMP TABLE raw{number} AS FROM {_reader(path)}")
        lock_down(con)  # before any text from the spec runs
        tables = []
        for number, source in enumerate(spec.inputs):
            renames = ", ".join(f"{ident(a)} AS {ident(b)}" for a, b in source.rename.items())
            select = f"* RENAME ({renames})" if renames else "*"
            rows = f"raw{number}"
            if source.where:
                try:  # checked again: the spec may have changed since it was loaded
                    rows = f"({render_filter(source.where, rows)})"  # DuckDB's rendering
                except FilterRefused as error:
                    raise SpecError(f"{spec.name}: input {source.path}: where {error}") from None
            query = f"SELECT {select} FROM {rows}"
            if source.columns:
                query = f"SELECT {', '.join(ident(c) for c in source.columns)} FROM ({query})"
            _run(spec, source.path, con, f"CREATE TEMP TABLE t{number} AS {query}")
            con.execute(f"DROP TABLE raw{number}")
            columns = [r[0] for r in con.execute(f"DESCRIBE t{number}").fetchall()]
            if spec.unit not in columns:
                raise SpecError(f"{spec.name}: input {source.path} has no unit column {spec.unit}")
            tables.append(columns)
        duplicates = con.execute(
            f"SELECT {ident(spec.unit)} FROM t0 GROUP BY 1 HAVING count(*) > 1 LIMIT 3"
        ).fetchall()
        if duplicates:
            raise SpecError(
                f"{spec.name}: unit {spec.unit} is not unique in {spec.inputs[0].path}, "
                f"e.g. {duplicates[0][0]}"
            )
        seen = set(tables[0])
        selects, joins = ["t0.*"], []
        for number in range(1, len(tables)):
            new = [c for c in tables[number] if c not in seen]
            seen.update(new)
            selects += [f"t{number}.{ident(c)}" for c in new]
            joins.append(f"LEFT JOIN t{number} USING ({ident(spec.unit)})")
        frame = con.execute(
            f"SELECT {', '.join(selects)} FROM t0 {' '.join(joins)} ORDER BY {ident(spec.unit)}"
        ).df()
    finally:
        con.close()
    needed = {c for i in spec.indicators() for c in (i.numerator or []) + (i.denominator or [])}
    needed |= {i.column for i in spec.indicators() if i.column}
    needed |= {c for c in (spec.group, spec.summaries and spec.summaries.population) if c}
    missing = sorted(needed - set(frame.columns))
    if missing:
        raise SpecError(f"{spec.name}: the inputs have no column(s) {', '.join(missing)}")
    return frame.set_index(spec.unit)


def _run(spec: IndexSpec, path: str, con: duckdb.DuckDBPyConnection, statement: str) -> None:
    try:
        con.execute(statement)
    except duckdb.Error as error:
        first_line = str(error).strip().splitlines()[0]
        raise SpecError(f"{spec.name}: input {path}: {first_line}") from None


# -- the steps -----------------------------------------------------------------------------------


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns as numbers; text that is not a number (NA, n/a, blank) is missing."""
    return frame.apply(pd.to_numeric, errors="coerce").astype(float)


def raw_indicators(spec: IndexSpec, data: pd.DataFrame) -> pd.DataFrame:
    """Each indicator's raw value: a column, or a rate (shrunk towards its group if asked)."""
    values = {}
    for indicator in spec.indicators():
        if indicator.column:
            values[indicator.name] = _numbers(data[[indicator.column]]).iloc[:, 0]
            continue
        numerator = _numbers(data[indicator.numerator]).sum(axis=1, min_count=1)
        denominator = _numbers(data[indicator.denominator]).sum(axis=1, min_count=1)
        if indicator.shrink == "ebayes":
            values[indicator.name] = methods.shrink_rates(
                numerator, denominator, data[spec.group] if spec.group else None
            )
        else:
            values[indicator.name] = numerator / denominator.where(denominator > 0)
    return pd.DataFrame(values, index=data.index)


def _normalised(spec: IndexSpec, treated: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    result = {}
    for indicator in spec.indicators():
        step = indicator.normalise or spec.normalise
        name, params = (method, {}) if method else (step.method, step.params)
        result[indicator.name] = methods.normalise(
            treated[indicator.name], name, direction=indicator.sign, **params
        )
    return pd.DataFrame(result, index=treated.index)


def _child_weights(node: Node, children: pd.DataFrame, spec: IndexSpec) -> pd.Series:
    if node.weights == "equal":
        return pd.Series(1 / len(node.children), index=children.columns)
    if node.weights == "pca":
        return methods.pca_weights(children.dropna())
    if node.weights == "factor":
        return methods.factor_weights(children.dropna(), seed=spec.uncertainty.seed)
    return pd.Series({c.name: float(c.weight) for c in node.children})


def _aggregate_tree(
    spec: IndexSpec,
    normalised: pd.DataFrame,
    weights_out: dict[str, dict[str, float]] | None = None,
    scale: dict[str, float] | None = None,
    method: str | None = None,
) -> pd.DataFrame:
    """Every node's score, bottom up. `scale` multiplies explicit weights (uncertainty runs);
    `method` replaces every node's aggregation."""
    scores: dict[str, pd.Series] = {}

    def score(node: Node | Indicator) -> pd.Series:
        if isinstance(node, Indicator):
            return normalised[node.name]
        children = pd.DataFrame({c.name: score(c) for c in node.children})
        weights = _child_weights(node, children, spec)
        if scale:
            weights = weights * pd.Series({c: scale.get(c, 1.0) for c in weights.index})
        if weights_out is not None:
            weights_out[node.name] = {k: float(v) for k, v in weights.items()}
        step = node.aggregate or spec.aggregate
        name, params = (method, {}) if method else (step.method, step.params)
        if name == "geometric" and (children <= 0).any().any():
            # A geometric mean needs positive values: shift each child to 1..100 first.
            children = children.apply(lambda s: methods.normalise(s, "minmax", low=1, high=100))
        scores[node.name] = methods.aggregate(children, weights, name, **params)
        return scores[node.name]

    score(spec.index)
    return pd.DataFrame(scores, index=normalised.index)


def ranked(score: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Rank (1 = highest score, most in need), decile and quintile (ceil(n * rank / N))."""
    rank = methods.rank_desc(score)
    return rank.astype("Int64"), methods.ntile(rank, 10), methods.ntile(rank, 5)


def compute(spec: IndexSpec, data: pd.DataFrame) -> Result:
    """Compute an index on its joined input table (indexed by the unit key)."""
    draws = spec.uncertainty.runs * len(data)
    if draws > MAX_RUN_DRAWS:
        raise SpecError(
            f"{spec.name}: uncertainty.runs {spec.uncertainty.runs} × {len(data)} units = "
            f"{draws:,} ranks to draw, more than {MAX_RUN_DRAWS:,}; lower uncertainty.runs"
        )
    raw = raw_indicators(spec, data)
    groups = data[spec.group] if spec.group else None
    imputed, counts = methods.impute(raw, spec.impute.method, groups=groups, **spec.impute.params)
    treated, treatment = {}, {}
    for indicator in spec.indicators():
        step = indicator.treat or spec.treat
        treated[indicator.name], treatment[indicator.name] = methods.treat(
            imputed[indicator.name], step.method, **step.params
        )
    treated = pd.DataFrame(treated, index=raw.index)
    normalised = _normalised(spec, treated)
    weights: dict[str, dict[str, float]] = {}
    aggregated = _aggregate_tree(spec, normalised, weights)

    units = pd.DataFrame(index=raw.index)
    if spec.group:
        units[spec.group] = data[spec.group]
    units["score"] = aggregated[spec.index.name]
    units["rank"], units["decile"], units["quintile"] = ranked(units["score"])
    for domain in spec.domains:
        source = normalised if isinstance(domain, Indicator) else aggregated
        units[f"{domain.name}_score"] = source[domain.name]
        units[f"{domain.name}_rank"] = methods.rank_desc(source[domain.name]).astype("Int64")
    result = Result(
        spec=spec,
        units=units.reset_index(),
        steps={
            "raw": raw,
            "imputed": imputed,
            "treated": treated,
            "normalised": normalised,
            "aggregated": aggregated,
        },
        imputed=counts,
        weights=weights,
        treatment=treatment,
    )
    if spec.summaries:
        population = pd.to_numeric(data[spec.summaries.population], errors="coerce")
        result.summaries = area_summaries(
            units.reset_index(),
            spec.group,
            population.to_numpy(),
            spec.summaries.most_deprived_share,
        )
    if spec.uncertainty.runs:
        result.uncertainty = rank_uncertainty(spec, treated)
    return result


# -- summaries for larger areas ------------------------------------------------------------------


def extent_weight(percentile: int) -> float:
    """IoD extent: weight 1 for national percentiles 1-10, tapering to 0.05 at 30, 0 beyond."""
    if percentile <= 10:
        return 1.0
    if percentile <= 30:
        return 0.95 - (percentile - 11) * 0.9 / 19
    return 0.0


def _local_concentration(scores: np.ndarray, population: np.ndarray, share: float) -> float:
    """Population-weighted mean of `scores` over the group's most deprived small areas (highest
    scores first) that hold exactly `share` of its population, the last one only in part."""
    order = np.argsort(-scores, kind="stable")
    needed = share * population.sum()
    taken, total, weighted = 0.0, 0.0, 0.0
    for i in order:
        part = min(population[i], needed - taken)
        if part <= 0:
            break
        weighted += part * scores[i]
        total += part
        taken += part
    return weighted / total if total else math.nan


def area_summaries(
    units: pd.DataFrame, group: str, population: np.ndarray, share: float = 0.10
) -> pd.DataFrame:
    """Per larger area, the summaries the IoD publish for local authorities (File 10): the
    population-weighted average score and average rank, the share of its small areas in the most
    deprived 10% nationally, extent, local concentration, and the rank of each, 1 = most in need.
    As the IoD do, average rank and local concentration use ranks reversed so that the most
    deprived small area has the highest (N), making a higher figure mean more deprived."""
    n = units["rank"].notna().sum()
    frame = units[[group, "score", "rank"]].assign(population=population)
    frame["reversed_rank"] = n + 1 - frame["rank"]
    frame["percentile"] = np.ceil(100 * frame["rank"] / n)
    frame["extent_weight"] = frame["percentile"].map(extent_weight)
    rows = []
    for code, part in frame.dropna(subset=["rank"]).groupby(group, sort=True):
        pop = part["population"].to_numpy(float)
        rows.append(
            {
                group: code,
                "average_score": np.average(part["score"], weights=pop),
                "average_rank": np.average(part["reversed_rank"], weights=pop),
                "proportion_most_deprived_10pct": float((part["rank"] <= share * n).mean()),
                "extent": float((part["extent_weight"] * pop).sum() / pop.sum()),
                "local_concentration": _local_concentration(
                    part["reversed_rank"].to_numpy(float), pop, share
                ),
            }
        )
    result = pd.DataFrame(rows)
    for measure in SUMMARY_MEASURES:
        result[f"rank_of_{measure}"] = (
            result[measure].rank(method="min", ascending=False).astype("Int64")
        )
    return result


# -- uncertainty ---------------------------------------------------------------------------------


def rank_uncertainty(spec: IndexSpec, treated: pd.DataFrame) -> pd.DataFrame:
    """Monte Carlo: per run, every explicit weight scaled by a uniform factor in 1 ± noise and a
    normaliser and aggregator drawn from the alternatives; per unit, the median rank and the
    90% interval (5th and 95th percentiles). Seeded, so reproducible."""
    settings = spec.uncertainty
    rng = np.random.default_rng(settings.seed)
    normalisers = settings.normalise or [None]
    aggregators = settings.aggregate or [None]
    names = [n.name for n in _all_children(spec.index)]
    runs = np.empty((len(treated), settings.runs))
    for run in range(settings.runs):
        scale = dict(
            zip(
                names,
                rng.uniform(1 - settings.weight_noise, 1 + settings.weight_noise, len(names)),
                strict=True,
            )
        )
        normaliser = normalisers[rng.integers(len(normalisers))]
        aggregator = aggregators[rng.integers(len(aggregators))]
        normalised = _normalised(spec, treated, normaliser)
        score = _aggregate_tree(spec, normalised, scale=scale, method=aggregator)[spec.index.name]
        runs[:, run] = methods.rank_desc(score).to_numpy(float)
    return pd.DataFrame(
        {
            spec.unit: treated.index,
            "median_rank": np.median(runs, axis=1),
            "rank_p05": np.percentile(runs, 5, axis=1),
            "rank_p95": np.percentile(runs, 95, axis=1),
        }
    )


def _all_children(node: Node) -> list[Node | Indicator]:
    result = []
    for child in node.children:
        result.append(child)
        if isinstance(child, Node):
            result += _all_children(child)
    return result
