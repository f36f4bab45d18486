"""The composite engine: spec → inputs → indicators → impute → transform and treat → normalise
(and rescale) → weight → aggregate (each node then normalised and rescaled if its spec says so) →
score, rank, deciles; then area summaries and rank uncertainty. Every step's values are kept, so
each can be inspected and compared.

With a period dimension (`periods` in the spec) every period is built on its own rows, in order;
the steps marked `base: true` take their parameters (min and max, mean and sd, derived weights)
from the base period, or from the parameters file a run that had the base period wrote, so that
every period is on the base period's scale.

The inputs are read by DuckDB: every declared input is loaded first, then the connection's
external access is turned off and its configuration locked (`lock_down`), and only then does any
text from the spec (filters, renames, columns) run, so nothing a spec says can read or write a
file or change a setting."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

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
    Ranks,
    SpecError,
    input_location,
    node_paths,
    period_label,
    weight_warnings,
)
from indices.core import storage
from indices.core.duck import connect, ident, sql_str
from indices.core.published import latest_data
from indices.core.reference import reference_dir

STEPS = ("raw", "imputed", "treated", "normalised", "aggregated")
# Kept too when a node is normalised or rescaled: each node's weighted combination of its
# children, before its own normalisation (`aggregated` holds the node's final score).
COMBINED = "combined"
PERIOD = "period"  # the column every output of an index with periods carries
SUMMARY_MEASURES = (
    "average_score",
    "average_rank",
    "proportion_most_deprived_10pct",
    "extent",
    "local_concentration",
)


@dataclass
class Result:
    """An index computed: per-unit outputs, every step's values and what the methods decided.

    `notes` say what the run did that a reader should know (units imputed, re-weighted or
    excluded); `warnings` what may not be what the spec's author meant (weights of 0 or not
    adding up to 1, a rule for missing values the spec did not state, a constant indicator).
    `missing` counts the units each rule for missing values touched. With periods, `periods`
    lists them in order (as text), every table carries a `period` column (the steps are indexed
    by period and unit), `imputed` and `missing` add up the periods, `weights` and `treatment`
    are the latest period's, and `base` holds the base period's parameters (`periods.base`)."""

    spec: IndexSpec
    units: pd.DataFrame
    steps: dict[str, pd.DataFrame]
    imputed: dict[str, int]
    weights: dict[str, dict[str, float]]
    treatment: dict[str, dict]
    summaries: pd.DataFrame | None = None
    uncertainty: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)
    periods: list[str] = field(default_factory=list)
    base: dict | None = None

    def period(self, label: str) -> Result:
        """The result of one period (all of it without periods): its rows of every table."""
        if not self.periods:
            return self

        def rows(frame: pd.DataFrame | None) -> pd.DataFrame | None:
            if frame is None:
                return None
            return frame[frame[PERIOD].map(period_label) == label].reset_index(drop=True)

        return replace(
            self,
            units=rows(self.units),
            steps={k: v.xs(label, level=PERIOD) for k, v in self.steps.items()},
            summaries=rows(self.summaries),
            uncertainty=rows(self.uncertainty),
        )

    def latest(self) -> Result:
        """The latest period's result (the whole result without periods)."""
        return self.period(self.periods[-1]) if self.periods else self


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
    is where `published:` inputs are read from. With periods, a table holding the period column
    is keyed by unit and period (the first defines both), one without it by unit alone (data that
    does not change, such as a lookup of areas); every table must be unique on its key."""
    period = spec.periods.column if spec.periods else None
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
            keys = [spec.unit] + ([period] if period in columns else [])
            if period in columns and number and period not in tables[0][0]:
                raise SpecError(
                    f"{spec.name}: input {source.path} has the period column {period}, the "
                    f"first input {spec.inputs[0].path} has not: the first defines the periods"
                )
            _unique(spec, con, f"t{number}", keys, source.path)
            tables.append((columns, keys))
        seen = set(tables[0][0])
        selects, joins = ["t0.*"], []
        for number in range(1, len(tables)):
            columns, keys = tables[number]
            new = [c for c in columns if c not in seen]
            seen.update(new)
            selects += [f"t{number}.{ident(c)}" for c in new]
            joins.append(f"LEFT JOIN t{number} USING ({', '.join(map(ident, keys))})")
        order = ", ".join(ident(k) for k in tables[0][1])
        frame = con.execute(
            f"SELECT {', '.join(selects)} FROM t0 {' '.join(joins)} ORDER BY {order}"
        ).df()
    finally:
        con.close()
    needed = {c for i in spec.indicators() for c in (i.numerator or []) + (i.denominator or [])}
    needed |= {i.column for i in spec.indicators() if i.column}
    needed |= {c for c in (spec.group, spec.summaries and spec.summaries.population) if c}
    needed |= {step.weights for step in _scalings(spec) if step.weights}
    missing = sorted(needed - set(frame.columns))
    if missing:
        raise SpecError(f"{spec.name}: the inputs have no column(s) {', '.join(missing)}")
    return frame.set_index(spec.unit)


def _unique(
    spec: IndexSpec, con: duckdb.DuckDBPyConnection, table: str, keys: list[str], path: str
) -> None:
    """A table must have one row per key: a second row for a unit would be joined twice."""
    duplicates = con.execute(
        f"SELECT {', '.join(map(ident, keys))} FROM {table} GROUP BY ALL "
        "HAVING count(*) > 1 LIMIT 3"
    ).fetchall()
    if duplicates:
        within = f" within a period ({keys[1]})" if len(keys) > 1 else ""
        example = " in ".join(str(v) for v in duplicates[0])
        raise SpecError(
            f"{spec.name}: unit {spec.unit} is not unique{within} in {path}, e.g. {example}"
        )


def _scalings(spec: IndexSpec) -> list:
    """Every normalise and rescale step of the spec: its default and each node's own."""
    steps = [spec.normalise]
    for node in node_paths(spec).values():
        steps += [s for s in (node.normalise, node.rescale) if s is not None]
    return steps


def _run(spec: IndexSpec, path: str, con: duckdb.DuckDBPyConnection, statement: str) -> None:
    try:
        con.execute(statement)
    except duckdb.Error as error:
        first_line = str(error).strip().splitlines()[0]
        raise SpecError(f"{spec.name}: input {path}: {first_line}") from None


# -- failing and warning in one line --------------------------------------------------------------


@dataclass
class _Run:
    """What one build of one period needs besides its data: the spec, the field path of every
    node, the base period's parameters (`scales`) and what the build has to say."""

    spec: IndexSpec
    paths: dict[str, str]  # node or indicator name → field path
    scales: _Scales | None = None
    period: str | None = None
    warnings: list[str] = field(default_factory=list)
    reweighted: set = field(default_factory=set)

    def field(self, node: Node | Indicator, step: str | None = None, detail: str = "") -> str:
        """Where in the spec a problem is: `index.children.0.normalise` for a node's own step,
        `normalise, for index.children.0 (name)` for the spec's default; `detail` names a field
        of the step (`weights`)."""
        path = self.paths[node.name]
        if step is None:
            return f"{path} ({node.name})"
        step += f".{detail}" if detail else ""
        if getattr(node, step.split(".")[0], None) is not None:
            return f"{path}.{step}"
        return f"{step}, for {path} ({node.name})"

    def fail(self, where: str, message: str) -> NoReturn:
        raise SpecError(f"{self.spec.name}: {where}: {message}{self.in_period}")

    def warn(self, where: str, message: str) -> None:
        line = f"{where}: {message}{self.in_period}"
        if line not in self.warnings:  # a constant indicator stays constant when rescaled
            self.warnings.append(line)

    @property
    def in_period(self) -> str:
        return f" (period {self.period})" if self.period is not None else ""

    @contextmanager
    def step(self, where: str) -> Iterator[None]:
        """A method that fails on this spec's data or parameters fails in one line naming the
        field, never with a traceback."""
        try:
            yield
        except SpecError:
            raise
        except (ValueError, TypeError, KeyError, ZeroDivisionError, np.linalg.LinAlgError) as e:
            text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
            self.fail(where, (text.strip().splitlines() or [type(e).__name__])[0])


@dataclass
class _Scales:
    """The parameters of the steps fixed to the base period: recorded while the base period is
    built (`recording`), then used for every period. Keys: `normalise` and `rescale` (by node
    or indicator: the method and its fitted numbers) and `weights` (derived weights by node)."""

    params: dict
    recording: bool = False

    def entry(self, run: _Run, kind: str, name: str, where: str) -> dict:
        entry = self.params.get(kind, {}).get(name)
        if entry is None:
            run.fail(where, f"the base period's parameters have no {kind} of {name}")
        return entry


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns as numbers; text that is not a number (NA, n/a, blank) is missing."""
    return frame.apply(pd.to_numeric, errors="coerce").astype(float)


def _column(data: pd.DataFrame, column: str) -> pd.Series:
    return _numbers(data[[column]]).iloc[:, 0]


# -- the steps -----------------------------------------------------------------------------------


def raw_indicators(spec: IndexSpec, data: pd.DataFrame) -> pd.DataFrame:
    """Each indicator's raw value: a column, or a rate (shrunk towards its group if asked)."""
    values = {}
    for indicator in spec.indicators():
        if indicator.column:
            values[indicator.name] = _column(data, indicator.column)
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


def _weights_column(run: _Run, data: pd.DataFrame, column: str, where: str) -> pd.Series:
    """A column of weights (e.g. a population): every unit needs one, none negative."""
    weights = _column(data, column)
    if weights.isna().any():
        unit = weights[weights.isna()].index[0]
        run.fail(where, f"{column} has no value for {weights.isna().sum()} unit(s), e.g. {unit}")
    if (weights < 0).any():
        unit = weights[weights < 0].index[0]
        run.fail(where, f"{column} is negative for {(weights < 0).sum()} unit(s), e.g. {unit}")
    if not (weights > 0).any():
        run.fail(where, f"{column} is 0 for every unit: nothing to weight by")
    return weights


# The normalisations whose parameters are values of the indicator (the others' are scores).
_BOUNDS = {"goalposts": ("lower", "upper"), "scaled": ("low", "high")}


def _posts(params: dict, method: str, transform: str) -> dict:
    """Goalposts and fixed bounds are given in the indicator's original units: transformed with
    it (and kept in order, as a reciprocal reverses them)."""
    if transform == "none" or method not in _BOUNDS:
        return params
    low, high = _BOUNDS[method]
    if low in params and high in params:
        ends = sorted(methods.transform_value(params[k], transform) for k in (low, high))
        params = {**params, low: ends[0], high: ends[1]}
    return params


def _scaled(
    run: _Run,
    values: pd.Series,
    node: Node | Indicator,
    kind: str,
    data: pd.DataFrame,
    direction: int = 1,
    method: str | None = None,
) -> pd.Series:
    """`values` normalised (kind "normalise") or rescaled ("rescale") by the node's step (the
    spec's default normalisation for an indicator without one), or by `method` alone (an
    uncertainty run's draw). A step fixed to the base period takes its parameters from
    `run.scales`; a weighted zscore fits its mean and sd with the weights."""
    spec = run.spec
    step = getattr(node, kind) or (spec.normalise if kind == "normalise" else None)
    where = run.field(node, kind) if method is None else "uncertainty.normalise"
    name, params = (method, {}) if method else (step.method, step.params)
    if isinstance(node, Indicator) and kind == "normalise":
        with run.step(where):
            params = _posts(params, name, node.transform)
    weights = None
    if method is None and step.weights:
        weights = _weights_column(run, data, step.weights, run.field(node, kind, "weights"))
    fitted = None
    with run.step(where):
        if method is None and step.base and run.scales is not None:
            if run.scales.recording:
                fitted = methods.fit(values, name, direction, weights)
                run.scales.params.setdefault(kind, {})[node.name] = {"method": name, **fitted}
            else:
                entry = run.scales.entry(run, kind, node.name, where)
                if entry.get("method") != name:
                    run.fail(where, f"the base period's {node.name} was {entry.get('method')}")
                fitted = {k: v for k, v in entry.items() if k != "method"}
        elif weights is not None:
            fitted = methods.fit(values, name, direction, weights)
        if kind == "normalise":
            result = methods.normalise(values, name, direction=direction, fitted=fitted, **params)
        else:
            result = methods.rescale(values, name, fitted=fitted, **params)
    _check_finite(run, values, result, name, where, node)
    return result


def _check_finite(
    run: _Run,
    before: pd.Series,
    after: pd.Series,
    method: str,
    where: str,
    node: Node | Indicator,
) -> None:
    """A normalisation that gives no number for a unit that had one is an error (a constant
    indicator under minmax or zscore: max = min, sd = 0); a constant one that still works (by
    rank) is a warning: it cannot tell the units apart."""
    lost = before.notna() & ~np.isfinite(after.to_numpy(float))
    present = before.dropna()
    constant = len(present) > 1 and present.nunique() == 1
    if lost.any():
        if constant:
            run.fail(
                where,
                f"{method} cannot scale {node.name}: every unit has the same value "
                f"({present.iloc[0]:g})",
            )
        if len(present) == 1:
            run.fail(where, f"{method} cannot scale {node.name}: only one unit has a value")
        unit = lost[lost].index[0]
        run.fail(
            where,
            f"{method} gives {node.name} no finite value for {lost.sum()} unit(s), e.g. {unit}",
        )
    if constant and where != "uncertainty.normalise":
        run.warn(
            run.field(node),
            f"every unit has the same value ({present.iloc[0]:g}): it does not tell them apart",
        )


def _indicator_scores(
    run: _Run,
    treated: pd.DataFrame,
    orders: dict[str, int],
    data: pd.DataFrame,
    method: str | None = None,
) -> pd.DataFrame:
    """Every indicator normalised (its direction honoured, through any transform) and
    rescaled; `method` replaces each normalisation (an uncertainty run)."""
    result = {}
    for indicator in run.spec.indicators():
        direction = indicator.sign * orders.get(indicator.name, 1)
        values = _scaled(
            run, treated[indicator.name], indicator, "normalise", data, direction, method
        )
        if indicator.rescale is not None:
            values = _scaled(run, values, indicator, "rescale", data)
        result[indicator.name] = values
    return pd.DataFrame(result, index=treated.index)


def _child_weights(run: _Run, node: Node, children: pd.DataFrame) -> pd.Series:
    """A node's weights: explicit, equal, or derived (pca, factor; from the base period when
    the index has one)."""
    if node.weights == "equal":
        return pd.Series(1 / len(node.children), index=children.columns)
    if node.weights == "explicit":
        return pd.Series({c.name: float(c.weight) for c in node.children})
    where = f"{run.paths[node.name]}.weights"
    scales = run.scales
    if scales is not None and not scales.recording:
        return pd.Series(scales.entry(run, "weights", node.name, where), dtype=float)
    complete = children.dropna()
    if len(complete) < 2:
        run.fail(where, f"{node.weights} needs at least two units with every child's value")
    with run.step(where):
        if node.weights == "pca":
            weights = methods.pca_weights(complete)
        else:
            weights = methods.factor_weights(complete, seed=run.spec.uncertainty.seed)
    if not np.isfinite(weights.to_numpy(float)).all():
        run.fail(where, f"{node.weights} cannot derive weights (a child does not vary)")
    if scales is not None:
        scales.params.setdefault("weights", {})[node.name] = {
            k: float(v) for k, v in weights.items()
        }
    for child, weight in weights.items():
        if weight <= 0:
            run.warn(
                where,
                f"the {node.weights} weight of {child} in {node.name} is {weight:.3g}: it "
                + ("does not count" if weight == 0 else "counts against the node"),
            )
    return weights


def _missing_rule(spec: IndexSpec, method: str) -> str:
    """What a node does with a child value still missing: the spec's rule (`impute` leaves
    only what imputation could not fill, which excludes the unit), else the aggregation's own
    (weighted_sum excludes, the means and copeland re-weight)."""
    if spec.missing in ("exclude", "reweight"):
        return spec.missing
    if spec.missing == "impute" or method == "weighted_sum":
        return "exclude"
    return "reweight"


def _combine(
    run: _Run, node: Node, children: pd.DataFrame, weights: pd.Series, method: str, params: dict
) -> pd.Series:
    """The node's children aggregated, a missing value handled by the rule for missing values:
    excluded units are left out (also of copeland's comparisons) and get no score; re-weighted
    ones are aggregated over their available children (a weighted sum scaled up by the share of
    the weights they have)."""
    where = run.field(node, "aggregate")
    missing = children.isna()
    partial = missing.any(axis=1) & ~missing.all(axis=1)
    rule = _missing_rule(run.spec, method)
    with run.step(where):
        if not partial.any():
            return methods.aggregate(children, weights, method, **params)
        if rule == "exclude":
            complete = ~missing.any(axis=1)
            part = methods.aggregate(children[complete], weights, method, **params)
            return part.reindex(children.index)
        run.reweighted.update(children.index[partial])
        score = methods.aggregate(children, weights, method, **params)
        if method == "weighted_sum":
            share = methods.a_arithmetic(children[partial], weights) * weights.sum()
            score[partial] = share
        return score


def _aggregate_tree(
    run: _Run,
    normalised: pd.DataFrame,
    data: pd.DataFrame,
    weights_out: dict[str, dict[str, float]] | None = None,
    scale: dict[str, float] | None = None,
    method: str | None = None,
    combined_out: dict[str, pd.Series] | None = None,
) -> pd.DataFrame:
    """Every node's score, bottom up: its children combined, then its own normalise and
    rescale if any. `scale` multiplies explicit weights (uncertainty runs); `method` replaces
    every node's aggregation; `combined_out` collects each node's combination before its own
    normalisation."""
    spec = run.spec
    scores: dict[str, pd.Series] = {}

    def score(node: Node | Indicator) -> pd.Series:
        if isinstance(node, Indicator):
            return normalised[node.name]
        children = pd.DataFrame({c.name: score(c) for c in node.children})
        weights = _child_weights(run, node, children)
        if scale:
            weights = weights * pd.Series({c: scale.get(c, 1.0) for c in weights.index})
        if weights_out is not None:
            weights_out[node.name] = {k: float(v) for k, v in weights.items()}
        step = node.aggregate or spec.aggregate
        name, params = (method, {}) if method else (step.method, step.params)
        if name == "geometric" and (children <= 0).any().any():
            # A geometric mean needs positive values: shift each child to 1..100 first.
            children = children.apply(lambda s: methods.normalise(s, "minmax", low=1, high=100))
        value = _combine(run, node, children, weights, name, params)
        if combined_out is not None:
            combined_out[node.name] = value
        if node.normalise is not None:
            value = _scaled(run, value, node, "normalise", data)
        if node.rescale is not None:
            value = _scaled(run, value, node, "rescale", data)
        scores[node.name] = value
        return value

    score(spec.index)
    return pd.DataFrame(scores, index=normalised.index)


def _rank_column(values: pd.Series, ties: str) -> pd.Series:
    """Ranks, 1 = the highest value: whole numbers (nullable) unless ties share their average."""
    rank = methods.rank_desc(values, ties)
    return rank if ties == "average" else rank.astype("Int64")


def ranked(score: pd.Series, ranks: Ranks | None = None) -> dict[str, pd.Series]:
    """The rank (1 = highest score, most in need; ties by `ranks.ties`) and every n-tile of it
    (decile, quintile and the spec's own groups, by `ranks.quantiles`)."""
    ranks = ranks or Ranks()
    rank = methods.rank_desc(score, ranks.ties)
    columns = {"rank": rank if ranks.ties == "average" else rank.astype("Int64")}
    for name, n in ranks.ntiles().items():
        columns[name] = methods.ntile(rank, n, rule=ranks.quantiles)
    return columns


def _check_runs(spec: IndexSpec, rows: int) -> None:
    draws = spec.uncertainty.runs * rows
    if draws > MAX_RUN_DRAWS:
        raise SpecError(
            f"{spec.name}: uncertainty.runs {spec.uncertainty.runs} × {rows} units = "
            f"{draws:,} ranks to draw, more than {MAX_RUN_DRAWS:,}; lower uncertainty.runs"
        )


def compute(spec: IndexSpec, data: pd.DataFrame, period: Any = None) -> Result:
    """Compute an index on its joined input table (indexed by the unit key). With periods,
    every period in `data` (its `periods.column`) is built; `period` names the one period of
    inputs that carry no period column (a single snapshot, e.g. a nightly run's reference
    date)."""
    _check_runs(spec, len(data))
    if data.empty:
        raise SpecError(f"{spec.name}: no units: the first input has no rows (after its filter)")
    paths = {node.name: path for path, node in node_paths(spec).items()}
    if spec.periods is None:
        if period is not None:
            raise SpecError(f"{spec.name}: a period was given, but the spec has no periods")
        result = _build(_Run(spec, paths), data)
    else:
        result = _build_periods(spec, paths, data, period)
    result.warnings = weight_warnings(spec) + result.warnings
    return result


def _build(run: _Run, data: pd.DataFrame) -> Result:
    """One period's index (or the whole index without periods)."""
    spec = run.spec
    if not data.index.is_unique:
        unit = data.index[data.index.duplicated()][0]
        run.fail(spec.unit, f"not unique, e.g. {unit} (declare periods for a time series)")
    raw = raw_indicators(spec, data)
    groups = data[spec.group] if spec.group else None
    with run.step("impute"):
        imputed, counts = methods.impute(
            raw, spec.impute.method, groups=groups, **spec.impute.params
        )
    for indicator in spec.indicators():
        if imputed[indicator.name].isna().all():
            imputes = spec.impute.method != "none"
            what = "no unit has a value" + (" (even after imputation)" if imputes else "")
            run.fail(run.field(indicator), what)
    treated, treatment, orders = {}, {}, {}
    for indicator in spec.indicators():
        values = imputed[indicator.name]
        with run.step(f"{run.paths[indicator.name]}.transform"):
            values, orders[indicator.name] = methods.transform(values, indicator.transform)
        step = indicator.treat or spec.treat
        with run.step(run.field(indicator, "treat")):
            treated[indicator.name], treatment[indicator.name] = methods.treat(
                values, step.method, **step.params
            )
    treated = pd.DataFrame(treated, index=raw.index)
    normalised = _indicator_scores(run, treated, orders, data)
    weights: dict[str, dict[str, float]] = {}
    combined: dict[str, pd.Series] = {}
    aggregated = _aggregate_tree(run, normalised, data, weights, combined_out=combined)

    units = pd.DataFrame(index=raw.index)
    if spec.group:
        units[spec.group] = data[spec.group]
    units["score"] = aggregated[spec.index.name]
    if units["score"].isna().all():
        run.fail(run.field(spec.index), "no unit has a score (every unit misses a value)")
    for column, values in ranked(units["score"], spec.ranks).items():
        units[column] = values
    for domain in spec.domains:
        source = normalised if isinstance(domain, Indicator) else aggregated
        units[f"{domain.name}_score"] = source[domain.name]
        units[f"{domain.name}_rank"] = _rank_column(source[domain.name], spec.ranks.ties)
    steps = {"raw": raw, "imputed": imputed, "treated": treated, "normalised": normalised}
    if any(n.normalise or n.rescale for n in node_paths(spec).values() if isinstance(n, Node)):
        steps[COMBINED] = pd.DataFrame(combined, index=raw.index)
    steps["aggregated"] = aggregated
    result = Result(
        spec=spec,
        units=units.reset_index(),
        steps=steps,
        imputed=counts,
        weights=weights,
        treatment=treatment,
        warnings=run.warnings,
    )
    _count_missing(run, result, units["score"].notna(), raw, imputed)
    if spec.summaries:
        result.summaries = _summaries(run, units, data)
    if spec.uncertainty.runs:
        if run.scales is not None:  # the runs use the base period's parameters, now known
            run = replace(run, scales=_Scales(run.scales.params))
        result.uncertainty = rank_uncertainty(run, treated, orders, data)
    return result


def _count_missing(
    run: _Run, result: Result, scored: pd.Series, raw: pd.DataFrame, imputed: pd.DataFrame
) -> None:
    """How many units each rule for missing values touched, as notes (and as a warning when
    the spec did not state its rule and units were re-weighted or excluded)."""
    spec = run.spec
    imputed_units = int((raw.isna() & imputed.notna()).any(axis=1).sum())
    reweighted = int(scored.reindex(list(run.reweighted)).sum())
    excluded = int((~scored).sum())
    result.missing = {"imputed": imputed_units, "reweighted": reweighted, "excluded": excluded}
    lines = []
    if imputed_units:
        lines.append(f"{imputed_units} unit(s) had values imputed ({spec.impute.method})")
    if reweighted:
        lines.append(
            f"{reweighted} unit(s) missing a value were re-weighted over their available values"
        )
    if excluded:
        lines.append(
            f"{excluded} unit(s) were excluded for missing values (no score, rank or decile)"
        )
    result.notes += [f"missing values: {line}{run.in_period}" for line in lines]
    if spec.missing is None and (reweighted or excluded):
        acted = ", ".join(lines[1:] if imputed_units else lines)
        run.warn(
            "missing",
            f"not stated, so the aggregation's own rule acted: {acted}; state missing: "
            "exclude, reweight or impute",
        )


def _summaries(run: _Run, units: pd.DataFrame, data: pd.DataFrame) -> pd.DataFrame:
    spec = run.spec
    settings = spec.summaries
    if settings.population:
        population = _weights_column(run, data, settings.population, "summaries.population")
        population = population.reindex(units.index)
        totals = population.groupby(units[spec.group]).sum()
        for code in totals.index[totals == 0]:
            run.warn(
                "summaries.population",
                f"{settings.population} is 0 in every small area of {code}: its "
                "population-weighted summaries are empty",
            )
    else:
        population = pd.Series(1.0, index=units.index)
    return area_summaries(
        units.reset_index(),
        spec.group,
        population.to_numpy(float),
        settings.most_deprived_share,
        ties=spec.ranks.ties,
        rule=spec.ranks.quantiles,
    )


# -- periods -------------------------------------------------------------------------------------


def _period_values(column: pd.Series) -> pd.Series:
    """The period as published: a date for a date or timestamp column, else as it is."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.dt.date
    return column


def _build_periods(
    spec: IndexSpec, paths: dict[str, str], data: pd.DataFrame, period: Any
) -> Result:
    """Every period built on its own rows, in order; the steps fixed to the base period take
    its parameters (from its build, or from `periods.parameters`)."""
    settings = spec.periods
    column = settings.column
    if column not in data.columns:
        if period is None:
            raise SpecError(
                f"{spec.name}: periods.column: the inputs have no column {column}; add it, or "
                "give the period of a single snapshot (indices composite --period)"
            )
        data = data.assign(**{column: period})
    elif period is not None:
        raise SpecError(
            f"{spec.name}: a period was given, but the inputs have their own ({column})"
        )
    if data[column].isna().any():
        raise SpecError(
            f"{spec.name}: periods.column: {data[column].isna().sum()} row(s) have no {column}"
        )
    values = _period_values(data[column])
    labels = values.map(period_label)
    order = list(dict.fromkeys(labels.iloc[np.argsort(values.to_numpy(), kind="stable")]))
    base, scales, built = settings.base, None, {}
    if base is not None:
        if settings.parameters:
            scales = _Scales(load_parameters(spec))
        elif base in order:
            recording = _Scales({}, recording=True)
            rows = (labels == base).to_numpy()
            built[base] = _build(_Run(spec, paths, recording, base), data[rows])
            scales = _Scales(recording.params)
        else:
            raise SpecError(
                f"{spec.name}: periods.base: {base} is not among the inputs' periods "
                f"({', '.join(order)}); include it, or name its parameters (periods.parameters)"
            )
    for label in order:
        if label not in built:
            rows = (labels == label).to_numpy()
            built[label] = _build(_Run(spec, paths, scales, label), data[rows])
    published = dict(zip(labels, values, strict=True))
    result = _stack(spec, [(label, published[label], built[label]) for label in order])
    if base is not None:
        result.base = {
            "index": spec.name,
            "base_period": base,
            **{k: v for k, v in scales.params.items() if k in ("normalise", "rescale", "weights")},
        }
    return result


def _stack(spec: IndexSpec, parts: list[tuple[str, Any, Result]]) -> Result:
    """The periods' results as one: every table with a `period` column after its key, the steps
    indexed by period and unit."""

    def tables(get, key: str) -> pd.DataFrame | None:
        frames = [get(r).assign(**{PERIOD: value}) for _, value, r in parts if get(r) is not None]
        if not frames:
            return None
        frame = pd.concat(frames, ignore_index=True)
        columns = [c for c in frame.columns if c != PERIOD]
        at = columns.index(key) + 1
        return frame[columns[:at] + [PERIOD] + columns[at:]]

    steps = {
        name: pd.concat({label: r.steps[name] for label, _, r in parts}, names=[PERIOD, spec.unit])
        for name in parts[-1][2].steps
    }
    latest = parts[-1][2]
    imputed = {k: sum(r.imputed.get(k, 0) for _, _, r in parts) for k in latest.imputed}
    missing = {k: sum(r.missing.get(k, 0) for _, _, r in parts) for k in latest.missing}
    return Result(
        spec=spec,
        units=tables(lambda r: r.units, spec.unit),
        steps=steps,
        imputed=imputed,
        weights=latest.weights,
        treatment=latest.treatment,
        summaries=tables(lambda r: r.summaries, spec.group),
        uncertainty=tables(lambda r: r.uncertainty, spec.unit),
        notes=[n for _, _, r in parts for n in r.notes],
        warnings=list(dict.fromkeys(w for _, _, r in parts for w in r.warnings)),
        missing=missing,
        periods=[label for label, _, _ in parts],
    )


def load_parameters(spec: IndexSpec) -> dict:
    """The base period's parameters from `periods.parameters` (a JSON file beside the spec, or
    `reference:<file>`), as `base_parameters` wrote them."""
    settings = spec.periods
    where = f"{spec.name}: periods.parameters"
    path = resolve_path(spec, settings.parameters, None)
    try:
        with open(path, encoding="utf-8") as handle:
            params = json.loads(handle.read(1 << 20))
    except OSError as error:
        raise SpecError(
            f"{where}: {settings.parameters} cannot be read ({error.strerror})"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpecError(f"{where}: {settings.parameters} is not JSON ({error})") from None
    if not isinstance(params, dict) or not all(
        isinstance(params.get(k, {}), dict) for k in ("normalise", "rescale", "weights")
    ):
        raise SpecError(f"{where}: {settings.parameters} is not a file of base parameters")
    if str(params.get("base_period")) != settings.base:
        raise SpecError(
            f"{where}: {settings.parameters} holds the parameters of period "
            f"{params.get('base_period')}, not of the base period {settings.base}"
        )
    return params


def base_parameters_text(result: Result) -> str:
    """The base period's parameters as the JSON file `periods.parameters` reads (floats
    written exactly, so a later run reproduces the base scale to the last digit)."""
    return json.dumps(result.base, indent=2, sort_keys=True) + "\n"


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
    units: pd.DataFrame,
    group: str,
    population: np.ndarray,
    share: float = 0.10,
    ties: str = "min",
    rule: str = "ceil",
) -> pd.DataFrame:
    """Per larger area, the summaries the IoD publish for local authorities (File 10): the
    population-weighted average score and average rank, the share of its small areas in the most
    deprived 10% nationally, extent, local concentration, and the rank of each, 1 = most in need
    (ties by `ties`). As the IoD do, average rank and local concentration use ranks reversed so
    that the most deprived small area has the highest (N), making a higher figure mean more
    deprived. Percentiles (for extent) follow the quantile `rule`. A group whose population is 0
    has no population-weighted figures."""
    n = units["rank"].notna().sum()
    frame = units[[group, "score", "rank"]].assign(population=population)
    frame["rank"] = frame["rank"].astype(float)
    frame["reversed_rank"] = n + 1 - frame["rank"]
    frame["percentile"] = methods.ntile(frame["rank"], 100, rule=rule).astype(float)
    frame["extent_weight"] = frame["percentile"].map(extent_weight)
    rows = []
    for code, part in frame.dropna(subset=["rank"]).groupby(group, sort=True):
        pop = part["population"].to_numpy(float)
        total = pop.sum()
        rows.append(
            {
                group: code,
                "average_score": np.average(part["score"], weights=pop) if total else math.nan,
                "average_rank": (
                    np.average(part["reversed_rank"], weights=pop) if total else math.nan
                ),
                "proportion_most_deprived_10pct": float((part["rank"] <= share * n).mean()),
                "extent": float((part["extent_weight"] * pop).sum() / total) if total else math.nan,
                "local_concentration": _local_concentration(
                    part["reversed_rank"].to_numpy(float), pop, share
                ),
            }
        )
    result = pd.DataFrame(rows, columns=[group, *SUMMARY_MEASURES])
    for measure in SUMMARY_MEASURES:
        rank = result[measure].rank(method=ties, ascending=False)
        result[f"rank_of_{measure}"] = rank if ties == "average" else rank.astype("Int64")
    return result


# -- uncertainty ---------------------------------------------------------------------------------


def rank_uncertainty(
    run: _Run, treated: pd.DataFrame, orders: dict[str, int], data: pd.DataFrame
) -> pd.DataFrame:
    """Monte Carlo: per run, every explicit weight scaled by a uniform factor in 1 ± noise and a
    normaliser and aggregator drawn from the alternatives; per unit, the median rank and the
    90% interval (5th and 95th percentiles). Seeded, so reproducible. A drawn normaliser works
    within the period; every other step is as in the build (on the base period's scale where
    the spec fixes it)."""
    spec = run.spec
    settings = spec.uncertainty
    rng = np.random.default_rng(settings.seed)
    normalisers = settings.normalise or [None]
    aggregators = settings.aggregate or [None]
    names = [n.name for n in _all_children(spec.index)]
    runs = np.empty((len(treated), settings.runs))
    quiet = replace(run, warnings=[], reweighted=set())  # the build has said it all
    for number in range(settings.runs):
        scale = dict(
            zip(
                names,
                rng.uniform(1 - settings.weight_noise, 1 + settings.weight_noise, len(names)),
                strict=True,
            )
        )
        normaliser = normalisers[rng.integers(len(normalisers))]
        aggregator = aggregators[rng.integers(len(aggregators))]
        normalised = _indicator_scores(quiet, treated, orders, data, normaliser)
        tree = _aggregate_tree(quiet, normalised, data, scale=scale, method=aggregator)
        runs[:, number] = methods.rank_desc(tree[spec.index.name], spec.ranks.ties).to_numpy(float)
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
