"""COINr's whole ASEM example index (JRC, COINr 1.1.14) rebuilt THROUGH AN INDEX SPEC.

The spec is generated from COINr's own structure table (`input_ASEM_iMeta.csv`): indicators →
8 pillars → 2 sub-indices → the index, each with its weight; each indicator's direction; each
denominated indicator as a rate (numerator = the indicator, denominator = its Denominator
column). The build is COINr's: denominate; impute by the mean of the unit's EurAsia group; screen
(nothing removed); treat outliers (COINr default, log_CT); min-max 0-100 after the directions;
weighted arithmetic mean at each level. Every step must equal COINr's pipeline file.

Directions: this engine's score means "higher = more in need", so `higher_is_worse` keeps the
sign and `higher_is_better` flips it. COINr's direction 1 keeps the sign and -1 flips it, so
1 → higher_is_worse and -1 → higher_is_better (the names are the engine's, not ASEM's meaning).

Tolerance: |ours - COINr| <= 1e-9 * max(1, |COINr|) (the CSVs carry 15 significant digits).

The input: COINr's `input_ASEM_iData.csv` writes missing values as R's `NA`. The main build reads
a copy with those cells left empty (CSV's ordinary missing value); `test_the_data_as_coinr_ships_it`
reads the file as it is, which must give the same build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from indices.cli import main
from indices.composite.engine import Result, compute, load_inputs
from indices.composite.spec import IndexSpec, Indicator, Node, load_spec, walk
from tests.conftest import REPO

COINR = REPO / "tests" / "data" / "coinr"
assert (COINR / "README.md").exists(), f"COINr reference outputs not found at {COINR}"

TOL = 1e-9
GROUP = "EurAsia_group"  # the iData column of COINr's EurAsia group
STEP_FILES = {
    "raw": "Denominated",
    "imputed": "Imputed",
    "treated": "Treated",
    "normalised": "Normalised",
    "aggregated": "Aggregated",
}


def asem_spec(meta_path: Path, data_path: Path) -> dict:
    """The ASEM index as a spec dict, from COINr's iMeta table: Level 1 rows are indicators,
    higher levels aggregates; `Parent` links each row to its aggregate; `Weight` is the weight
    in its parent; `Direction` 1 / -1; `Denominator` (if any) makes the indicator a rate."""
    meta = pd.read_csv(meta_path)
    meta = meta[meta["Type"].isin(["Indicator", "Aggregate"])]

    def child(row: pd.Series) -> dict:
        if row["Type"] == "Aggregate":
            return {**node(row["iCode"]), "weight": float(row["Weight"])}
        indicator: dict = {
            "name": row["iCode"],
            "weight": float(row["Weight"]),
            "direction": {1: "higher_is_worse", -1: "higher_is_better"}[int(row["Direction"])],
        }
        if pd.notna(row["Denominator"]):
            indicator |= {"numerator": [row["iCode"]], "denominator": [row["Denominator"]]}
        else:
            indicator["column"] = row["iCode"]
        return indicator

    def node(code: str) -> dict:
        rows = meta[meta["Parent"] == code]
        return {"name": code, "children": [child(row) for _, row in rows.iterrows()]}

    top = meta[meta["Parent"].isna()]
    assert len(top) == 1, "one index at the top of the tree"
    return {
        "name": "asem",
        "title": "ASEM Sustainable Connectivity (COINr's example)",
        "unit": "uCode",
        "group": GROUP,
        "inputs": [{"path": Path(data_path).name}],  # beside the spec
        "impute": {"method": "group_mean"},
        "treat": {"method": "coinr", "log_method": "log_ct"},
        "normalise": {"method": "minmax", "low": 0, "high": 100},
        "aggregate": {"method": "arithmetic"},
        "index": node(top["iCode"].iloc[0]),
    }


def read(name: str, index: str | None = "uCode") -> pd.DataFrame:
    return pd.read_csv(COINR / name, index_col=index)


def mismatch(actual: pd.Series, expected: pd.Series, tol: float = TOL) -> str | None:
    """None if equal to `tol` (absolute up to 1, relative above; NaN must match NaN)."""
    a = actual.reindex(expected.index).to_numpy(float)
    e = expected.to_numpy(float)
    both_nan = np.isnan(a) & np.isnan(e)
    with np.errstate(invalid="ignore"):
        close = np.abs(a - e) <= tol * np.maximum(1.0, np.abs(e))
    bad = ~(both_nan | close)
    if not bad.any():
        return None
    pairs = [(u, a[i], e[i]) for i, u in enumerate(expected.index) if bad[i]][:3]
    return f"{expected.name}: {bad.sum()} value(s) differ, e.g. (unit, ours, COINr) {pairs}"


def clean_copy(folder: Path) -> Path:
    """COINr's iData with R's `NA` written as empty cells (every other cell byte for byte)."""
    data = pd.read_csv(COINR / "input_ASEM_iData.csv", dtype=str, keep_default_na=False)
    path = folder / "input_ASEM_iData.csv"
    data.replace("NA", "").to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clean_copy(tmp_path_factory.mktemp("asem"))


@pytest.fixture(scope="module")
def spec_dict(data_path: Path) -> dict:
    return asem_spec(COINR / "input_ASEM_iMeta.csv", data_path)


@pytest.fixture(scope="module")
def spec(spec_dict: dict, data_path: Path) -> IndexSpec:
    """The spec as a file beside its data, as a spec reads its inputs."""
    path = data_path.parent / "asem.yaml"
    path.write_text(yaml.safe_dump(spec_dict, sort_keys=False))
    return load_spec(path)


@pytest.fixture(scope="module")
def result(spec: IndexSpec) -> Result:
    return compute(spec, load_inputs(spec))


def test_the_spec_has_coinrs_tree(spec: IndexSpec):
    indicators = spec.indicators()
    nodes = [n for n in walk(spec.index) if isinstance(n, Node)]
    assert len(indicators) == 49 and len(nodes) == 8 + 2 + 1
    assert [d.name for d in spec.domains] == ["Conn", "Sust"]
    rates = {i.name: i.denominator for i in indicators if i.numerator}
    assert len(rates) == 17 and rates["Flights"] == ["Population"] and rates["Elec"] == ["Energy"]
    directions = {i.name: i.direction for i in indicators}
    assert directions["LPI"] == "higher_is_worse" and directions["CO2"] == "higher_is_better"
    assert sum(d == "higher_is_better" for d in directions.values()) == 14


def test_the_spec_is_an_ordinary_spec_file(spec_dict: dict, spec: IndexSpec, tmp_path: Path):
    path = tmp_path / "asem.yaml"
    path.write_text(yaml.safe_dump(spec_dict, sort_keys=False))
    loaded = load_spec(path)
    assert loaded.source == path.resolve()
    assert loaded.model_dump() == spec.model_dump()
    assert isinstance(loaded.index.children[0].children[0].children[0], Indicator)


@pytest.mark.parametrize("step", list(STEP_FILES))
def test_every_step_equals_coinrs_pipeline(step: str, result: Result):
    expected = read(f"pipeline_{STEP_FILES[step]}.csv")
    ours = result.steps[step]
    if step == "aggregated":
        # COINr's Aggregated set also repeats the normalised indicators; ours has the nodes only
        expected = expected[[c for c in expected.columns if c in ours.columns]]
        assert len(expected.columns) == 11  # 8 pillars, 2 sub-indices, the index
    assert sorted(ours.columns) == sorted(expected.columns)
    assert sorted(ours.index) == sorted(expected.index)
    problems = [mismatch(ours[c], expected[c].rename(c)) for c in expected.columns]
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)


def test_imputed_counts_are_coinrs(result: Result):
    denominated = read("pipeline_Denominated.csv")
    assert result.imputed == {c: int(denominated[c].isna().sum()) for c in denominated}
    assert sum(result.imputed.values()) == 65
    assert not result.steps["imputed"].isna().any().any()


def test_ranks_equal_coinrs(result: Result):
    units = result.units.set_index("uCode")
    coinr = read("pipeline_results_Aggs.csv")
    assert (units["rank"].reindex(coinr.index) == coinr["Rank"]).all()
    for column in ("Index", "Conn", "Sust"):
        ours = units["score" if column == "Index" else f"{column}_score"]
        assert (ours.reindex(coinr.index) - coinr[column]).abs().max() <= 0.005 + 1e-9
    # the Full table has no unit codes: its rows are in rank order with the index rounded
    full = read("pipeline_results_Full.csv", None)
    ordered = units.sort_values("rank")
    assert full["Rank"].tolist() == ordered["rank"].tolist()
    assert np.abs(full["Index"].to_numpy() - ordered["score"].to_numpy()).max() <= 0.005 + 1e-9
    n = len(units)
    assert (units["decile"] == np.ceil(10 * units["rank"].astype(float) / n)).all()
    assert (units["quintile"] == np.ceil(5 * units["rank"].astype(float) / n)).all()
    for domain in ("Conn", "Sust"):
        expected = units[f"{domain}_score"].rank(method="min", ascending=False)
        assert (units[f"{domain}_rank"] == expected).all()


def test_the_cli_builds_the_same_index(
    spec_dict: dict, data_path: Path, result: Result, tmp_path: Path
):
    spec_path = tmp_path / "asem.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict, sort_keys=False))
    out, steps = tmp_path / "out" / "asem.parquet", tmp_path / "steps"
    # the spec elsewhere, its data named on the command line
    argv = ["composite", str(spec_path), "--input", str(data_path), "--output", str(out)]
    status = main([*argv, "--steps-dir", str(steps)])
    assert status == 0
    units = pq.read_table(out).to_pandas().set_index("uCode")
    coinr = read("pipeline_results_Aggs.csv")
    assert (units["rank"].reindex(coinr.index) == coinr["Rank"]).all()
    for step in STEP_FILES:
        path = steps / f"{step}.parquet"
        assert path.exists(), f"no {path}"
        # the same values as the in-process build, which equals COINr's step by step
        frame = pq.read_table(path).to_pandas().set_index("uCode")
        pd.testing.assert_frame_equal(frame, result.steps[step], check_names=False)
    assert sorted(p.name for p in steps.iterdir()) == sorted(f"{s}.parquet" for s in STEP_FILES)


def test_the_data_as_coinr_ships_it(spec: IndexSpec, result: Result):
    """COINr's iData as it is, R's `NA` for missing values (in 17 columns, among them the
    `Energy` denominator of the Elec and Gas rates): the same build as the cleaned copy. A
    column indicator already reads `NA` as missing; a rate must do the same."""
    as_shipped = compute(spec, load_inputs(spec, override=COINR / "input_ASEM_iData.csv"))
    for step in STEP_FILES:
        pd.testing.assert_frame_equal(as_shipped.steps[step], result.steps[step])
    pd.testing.assert_frame_equal(as_shipped.units, result.units)
