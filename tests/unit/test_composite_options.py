"""The composite engine's options for other national indices, each on a small case worked by hand
in the comments: tie rules and quantile rules (at group boundaries), normalise and rescale on any
node, transforms honouring the direction, weighted z-scores, a period dimension fixed to a base
period (three periods, and the frailty index over three reference dates, released), the policy
for missing values, and weights or inputs that cannot work: a warning or one line naming the
field, never a traceback."""

from __future__ import annotations

import copy
import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from indices.cli import main
from indices.composite import engine, methods
from indices.composite.report import render_report, report_markdown
from indices.composite.spec import SpecError, load_spec, parse_spec
from indices.core.published import read_manifest
from indices.core.reference import reference_dir
from indices.releases.index_release import publish_index
from tests.conftest import REPO
from tests.helpers import frame, spec_on, tiny_data, tiny_spec, write

EXP = 1 - math.exp(-100 / 23)  # the IoD transformation: X = -23 ln(1 - R * EXP)


def exp_score(rank: float, n: int) -> float:
    return -23 * math.log(1 - (n + 1 - rank) / n * EXP)


def one_indicator(**changes) -> dict:
    """An index of one indicator x, scored as it is (normalise: none), so score = x."""
    spec = tiny_spec(
        normalise={"method": "none"},
        index={"name": "idx", "children": [{"name": "x", "column": "x"}]},
    )
    return {**spec, **changes}


def problem(spec: dict) -> str:
    with pytest.raises(SpecError) as error:
        parse_spec(spec, "tiny.yaml")
    message = str(error.value)
    assert len(message.splitlines()) == 1 and message.startswith("tiny.yaml: "), message
    return message


def fails(spec: dict, data: pd.DataFrame) -> str:
    """The one-line error of computing `spec` on `data`."""
    with pytest.raises(SpecError) as error:
        engine.compute(parse_spec(spec), data)
    message = str(error.value)
    assert len(message.splitlines()) == 1 and message.startswith("tiny: "), message
    return message


# -- tie rules -----------------------------------------------------------------------------------

TIED = [5, 3, 5, 1, 5]  # p, q, r, s, t: three units tie at the top


@pytest.mark.parametrize(
    ("ties", "ranks"),
    [
        ("min", [1, 4, 1, 5, 1]),  # the three share the lowest rank they span (1..3)
        ("average", [2, 4, 2, 5, 2]),
        ("max", [3, 4, 3, 5, 3]),
        ("first", [1, 4, 2, 5, 3]),  # in the order of the units
    ],
)
def test_the_tie_rule_of_the_published_ranks(ties: str, ranks: list[int]):
    spec = one_indicator(ranks={"ties": ties})
    units = engine.compute(parse_spec(spec), frame(x=TIED)).units
    assert units["rank"].tolist() == ranks
    assert units["x_rank"].tolist() == ranks  # the domain's rank too
    # deciles of N = 5: ceil(10 rank / 5) = 2 rank
    assert units["decile"].tolist() == [2 * r for r in ranks]


def test_average_ranks_are_not_rounded():
    spec = one_indicator(ranks={"ties": "average"})
    units = engine.compute(parse_spec(spec), frame(x=[2, 2, 1, 0])).units
    assert units["rank"].tolist() == [1.5, 1.5, 3.0, 4.0]
    assert units["decile"].tolist() == [4, 4, 8, 10]  # ceil(10 × 1.5 / 4) = ceil(3.75)


@pytest.mark.parametrize(
    ("ties", "tied_rank"), [("average", 2), ("min", 1), ("max", 3), ("first", None)]
)
def test_the_tie_rule_of_the_exponential_transformation(ties: str, tied_rank: int | None):
    # N = 5; x ranked from the highest: the three 5s span ranks 1..3, then 3 (rank 4), 1 (5).
    spec = one_indicator(normalise={"method": "exp_rank", "ties": ties})
    normalised = engine.compute(parse_spec(spec), frame(x=TIED)).steps["normalised"]["x"]
    tied = [tied_rank] * 3 if tied_rank else [1, 2, 3]  # first: in the order p, r, t
    expected = dict(zip("prt", tied, strict=True)) | {"q": 4, "s": 5}
    assert normalised.to_dict() == pytest.approx(
        {unit: exp_score(rank, 5) for unit, rank in expected.items()}, abs=1e-12
    )
    if ties == "min":
        assert normalised["p"] == pytest.approx(100.0, abs=1e-12)


def test_an_unknown_tie_rule_lists_the_allowed():
    message = problem(one_indicator(ranks={"ties": "dense"}))
    assert "ranks.ties" in message and all(f"'{t}'" in message for t in methods.TIE_RULES)
    message = problem(one_indicator(normalise={"method": "exp_rank", "ties": "dense"}))
    assert "normalise: ties: unknown tie rule 'dense'" in message and "average" in message


# -- quantile rules ------------------------------------------------------------------------------

# 15 units ranked 1..15 (scores 15..1). ceil(10 r / 15) against floor((r - 1) 10 / 15) + 1:
CEIL_DECILES = [1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8, 9, 10, 10]
EQUAL_COUNT_DECILES = [1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 8, 9, 9, 10]


def fifteen() -> pd.DataFrame:
    units = pd.Index([f"u{i:02d}" for i in range(15)], name="u")
    return pd.DataFrame({"x": range(15, 0, -1)}, index=units)


@pytest.mark.parametrize(
    ("rule", "deciles"), [("ceil", CEIL_DECILES), ("equal_count", EQUAL_COUNT_DECILES)]
)
def test_the_quantile_rule_at_the_boundaries(rule: str, deciles: list[int]):
    spec = one_indicator(ranks={"quantiles": rule, "groups": {"tercile": 3}})
    units = engine.compute(parse_spec(spec), fifteen()).units
    assert units["rank"].tolist() == list(range(1, 16))
    assert units["decile"].tolist() == deciles
    # quintiles and terciles: both rules agree when n divides N (ceil(r/3) = floor((r-1)/3) + 1)
    assert units["quintile"].tolist() == [(r - 1) // 3 + 1 for r in range(1, 16)]
    assert units["tercile"].tolist() == [(r - 1) // 5 + 1 for r in range(1, 16)]
    assert methods.ntile(pd.Series(range(1, 16), dtype=float), 10, rule=rule).tolist() == deciles


@pytest.mark.parametrize(
    ("ties", "deciles"),
    [("min", [1, 1]), ("max", [2, 2]), ("first", [1, 2])],
)
def test_ties_at_an_equal_count_boundary(ties: str, deciles: list[int]):
    # the second and third of 15 tie: ranks 2 and 3 straddle the boundary of deciles 1 and 2
    # (equal count: r = 2 → floor(10 / 15) + 1 = 1; r = 3 → floor(20 / 15) + 1 = 2)
    data = fifteen()
    data.iloc[2, 0] = data.iloc[1, 0]
    spec = one_indicator(ranks={"ties": ties, "quantiles": "equal_count"})
    units = engine.compute(parse_spec(spec), data).units
    assert units["decile"].tolist()[1:3] == deciles
    assert units["decile"].tolist()[3:] == EQUAL_COUNT_DECILES[3:]


def test_bad_groups_are_refused():
    assert "ranks.groups" in problem(one_indicator(ranks={"groups": {"decile": 10}}))
    assert "between 2 and 1000" in problem(one_indicator(ranks={"groups": {"halves": 1}}))
    assert "_score" in problem(one_indicator(ranks={"groups": {"x_score": 4}}))
    assert "'equal_count'" in problem(one_indicator(ranks={"quantiles": "floor"}))
    message = problem(one_indicator(ranks={"groups": {"u": 4}}))
    assert message == "tiny.yaml: (top level): ranks.groups: u is already a column of the index"


# -- normalise and rescale on any node -----------------------------------------------------------


def test_normalise_and_rescale_a_node_by_hand():
    # The tiny index (test_composite_spec): a = (1 x1 + 3 x2) / 4 = 18.75, 50, 25, 62.5, 93.75.
    # a normalised by minmax 0..100: (a - 18.75) / 75 × 100 = 0, 41.67, 8.33, 58.33, 100;
    # b = y = 0, 50, 25, 100, 75; idx = (2 a + b) / 3, then rescaled linearly: 10 + 2 idx.
    spec = tiny_spec()
    spec["index"]["children"][0]["normalise"] = {"method": "minmax", "low": 0, "high": 100}
    spec["index"]["rescale"] = {"method": "linear", "offset": 10, "factor": 2}
    result = engine.compute(parse_spec(spec), tiny_data())
    a = [0, 125 / 3, 25 / 3, 175 / 3, 100]
    b = [0, 50, 25, 100, 75]
    idx = [(2 * x + y) / 3 for x, y in zip(a, b, strict=True)]
    aggregated = result.steps["aggregated"]
    assert aggregated["a"].tolist() == pytest.approx(a, abs=1e-12)
    assert aggregated["idx"].tolist() == pytest.approx([10 + 2 * v for v in idx], abs=1e-12)
    # the combination before each node's own normalisation is kept
    combined = result.steps[engine.COMBINED]
    assert combined["a"].tolist() == [18.75, 50.0, 25.0, 62.5, 93.75]
    assert combined["idx"].tolist() == pytest.approx(idx, abs=1e-12)
    assert result.units["a_score"].tolist() == pytest.approx(a, abs=1e-12)
    assert result.units["score"].tolist() == pytest.approx([10 + 2 * v for v in idx])
    assert list(result.steps) == ["raw", "imputed", "treated", "normalised", "combined",
                                  "aggregated"]  # fmt: skip


def test_an_iod_style_domain_ranked_and_transformed():
    # A domain's combined score ranked and exponentially transformed, as the IoD do for domains:
    # a ranks t 1, s 2, q 3, r 4, p 5 of N = 5.
    spec = tiny_spec()
    spec["index"]["children"][0]["normalise"] = {"method": "exp_rank"}
    result = engine.compute(parse_spec(spec), tiny_data())
    expected = [exp_score(r, 5) for r in (5, 3, 4, 2, 1)]
    assert result.units["a_score"].tolist() == pytest.approx(expected, abs=1e-12)


def test_a_rescale_must_be_linear():
    spec = tiny_spec()
    spec["index"]["rescale"] = {"method": "exp_rank"}
    message = problem(spec)
    assert "index.rescale.method: unknown rescaling method 'exp_rank'" in message
    assert "linear" in message and "zscore" in message


# -- transforms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transform", "x", "expected"),
    [
        ("sqrt", [1, 4, 9, 16], [1, 2, 3, 4]),
        ("cbrt", [-8, 1, 27, 64], [-2, 1, 3, 4]),
        ("square", [0, 1, 2, 3], [0, 1, 4, 9]),
        ("cube", [-1, 0, 2, 3], [-1, 0, 8, 27]),
        ("reciprocal", [1, 2, 4, 5], [1, 0.5, 0.25, 0.2]),
        ("log", [1, math.e, math.e**2, math.e**3], [0, 1, 2, 3]),
        ("log1p", [0, math.e - 1, math.e**2 - 1, math.e**3 - 1], [0, 1, 2, 3]),
    ],
)
@pytest.mark.parametrize("direction", ["higher_is_worse", "higher_is_better"])
def test_transforms_honour_the_direction(transform, x, expected, direction):
    spec = one_indicator()
    spec["index"]["children"][0] |= {"transform": transform, "direction": direction}
    result = engine.compute(parse_spec(spec), frame(x=x))
    assert result.steps["treated"]["x"].tolist() == pytest.approx(expected, abs=1e-12)
    # the direction speaks of the original values: the largest x is the most in need when
    # higher is worse, the least when higher is better, whichever way the transform orders them
    ranks = result.units["rank"].tolist()
    assert ranks == ([4, 3, 2, 1] if direction == "higher_is_worse" else [1, 2, 3, 4])


def test_goalposts_are_in_the_original_units():
    # sqrt: posts 1 and 16 become 1 and 4: (sqrt(x) - 1) / 3 × 100 = 0, 33.3, 66.7, 100
    spec = one_indicator(normalise={"method": "goalposts", "lower": 1, "upper": 16})
    spec["index"]["children"][0]["transform"] = "sqrt"
    normalised = engine.compute(parse_spec(spec), frame(x=[1, 4, 9, 16])).steps["normalised"]
    assert normalised["x"].tolist() == pytest.approx([0, 100 / 3, 200 / 3, 100], abs=1e-12)
    # reciprocal, higher is worse: x = 4 at the upper post still scores 100 and x = 1 scores 0
    # (1/x = 1, 0.5, 0.25 between posts 0.25 and 1, direction reversed: (1 - 1/x) / 0.75 × 100)
    spec = one_indicator(normalise={"method": "goalposts", "lower": 1, "upper": 4})
    spec["index"]["children"][0]["transform"] = "reciprocal"
    normalised = engine.compute(parse_spec(spec), frame(x=[1, 2, 4])).steps["normalised"]
    assert normalised["x"].tolist() == pytest.approx([0, 200 / 3, 100], abs=1e-12)


@pytest.mark.parametrize(
    ("transform", "x", "unit"),
    [("log", [1, 0, 2], "q"), ("sqrt", [1, 2, -1], "r"), ("reciprocal", [1, -2, 0], "q")],
)
def test_a_value_outside_a_transform_is_one_line(transform, x, unit):
    spec = one_indicator()
    spec["index"]["children"][0]["transform"] = transform
    message = fails(spec, frame(x=x))
    assert message.startswith(f"tiny: index.children.0.transform: {transform} needs values")
    assert f"e.g. {unit}" in message


# -- weighted z-scores and summaries -------------------------------------------------------------


def test_a_population_weighted_zscore_by_hand():
    # x = 1, 2, 3 weighted 1, 1, 2: m = (1 + 2 + 6) / 4 = 2.25; sum w (x - m)^2 = 1.5625 + 0.0625
    # + 2 × 0.5625 = 2.75; V1 = 4, V2 = 6: sd = sqrt(2.75 / (4 - 6 / 4)) = sqrt(1.1)
    spec = one_indicator(normalise={"method": "zscore", "weights": "pop"})
    result = engine.compute(parse_spec(spec), frame(x=[1, 2, 3], pop=[1, 1, 2]))
    expected = [(x - 2.25) / math.sqrt(1.1) for x in (1, 2, 3)]
    assert result.steps["normalised"]["x"].tolist() == pytest.approx(expected, abs=1e-12)
    # equal weights: the unweighted z-score (n - 1 standard deviation), whatever the weight
    result = engine.compute(parse_spec(spec), frame(x=[1, 2, 3], pop=[7, 7, 7]))
    assert result.steps["normalised"]["x"].tolist() == pytest.approx([-1, 0, 1], abs=1e-12)


def test_weights_for_another_method_or_a_bad_column():
    message = problem(one_indicator(normalise={"method": "minmax", "weights": "pop"}))
    assert "normalise: weights: only zscore takes weights, not minmax" in message
    spec = one_indicator(normalise={"method": "zscore", "weights": "pop"})
    message = fails(spec, frame(x=[1, 2, 3], pop=[1, -1, 2]))
    assert "normalise.weights, for index.children.0 (x): pop is negative" in message
    assert "e.g. q" in message


def test_summaries_without_a_population_count_each_area_once():
    data = tiny_data().assign(g=list("AABBB"))
    spec = tiny_spec(group="g", summaries={})
    summaries = engine.compute(parse_spec(spec), data).summaries.set_index("g")
    # scores p 12.5, q 50 (A); r 25, s 75, t 87.5 (B)
    assert summaries.loc["A", "average_score"] == pytest.approx(31.25)
    assert summaries.loc["B", "average_score"] == pytest.approx(62.5)


def test_a_group_without_population_is_a_warning_not_a_traceback():
    data = tiny_data().assign(g=list("AABBB"), pop=[0, 0, 1, 2, 3])
    result = engine.compute(parse_spec(tiny_spec(group="g", summaries={"population": "pop"})), data)
    summaries = result.summaries.set_index("g")
    assert np.isnan(summaries.loc["A", "average_score"]) and summaries.loc["B", "extent"] >= 0
    assert any("pop is 0 in every small area of A" in w for w in result.warnings)


# -- periods, fixed to a base period -------------------------------------------------------------


def periods_spec(**changes) -> dict:
    """x (higher is worse) and y (higher is better), z-scored against the base period 2021; the
    index rescaled to 100 + 10 z, z against the base period's index."""
    spec = tiny_spec(
        normalise={"method": "zscore", "base": True},
        periods={"column": "year", "base": 2021},
        index={
            "name": "idx",
            "rescale": {"method": "zscore", "mean": 100, "sd": 10, "base": True},
            "children": [
                {"name": "x", "column": "x"},
                {"name": "y", "column": "y", "direction": "higher_is_better"},
            ],
        },
    )
    return {**spec, **changes}


def three_periods() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "year": [2021] * 3 + [2022] * 3 + [2023] * 3,
            "x": [1, 2, 3, 2, 3, 4, 1, 2, 3],
            "y": [2, 6, 4, 2, 6, 4, 0, 4, 2],
        },
        index=pd.Index(list("abc") * 3, name="u"),
    )


# Worked by hand. Base 2021: x = 1, 2, 3 (mean 2, sd 1): z 1 = -1, 0, 1; -y = -2, -6, -4
# (mean -4, sd 2): z = 1, -1, 0; idx = (zx + zy) / 2 = 0, -0.5, 0.5 (mean 0, sd 0.5), so the
# scores are 100 + 10 idx / 0.5 = 100, 90, 110.
# 2022: x = 2, 3, 4 against the base: 0, 1, 2; y as in 2021: 1, -1, 0; idx 0.5, 0, 1: 110, 100,
# 120 (every unit 10 higher on x: the index shows it, as a series must).
# 2023: x as in 2021: -1, 0, 1; -y = 0, -4, -2 against the base (mean -4, sd 2): 2, 0, 1;
# idx 0.5, 0, 1: 110, 100, 120.
BY_HAND = {"2021": [100, 90, 110], "2022": [110, 100, 120], "2023": [110, 100, 120]}


def test_three_periods_on_the_base_period_scale_by_hand():
    result = engine.compute(parse_spec(periods_spec()), three_periods())
    assert result.periods == ["2021", "2022", "2023"]
    units = result.units
    assert list(units.columns[:3]) == ["u", "period", "score"]
    for period, scores in BY_HAND.items():
        rows = units[units["period"] == int(period)]
        assert rows["u"].tolist() == ["a", "b", "c"]
        assert rows["score"].tolist() == pytest.approx(scores, abs=1e-12), period
    # ranks and deciles within each period
    assert units["rank"].tolist() == [2, 3, 1, 2, 3, 1, 2, 3, 1]
    assert result.base == {
        "index": "tiny",
        "base_period": "2021",
        "normalise": {
            "x": {"method": "zscore", "mean": 2.0, "sd": 1.0},
            "y": {"method": "zscore", "mean": -4.0, "sd": 2.0},
        },
        "rescale": {"idx": {"method": "zscore", "mean": 0.0, "sd": 0.5}},
    }
    # every step is kept per period and unit
    steps = result.steps["normalised"]
    assert steps.index.names == ["period", "u"]
    assert steps.loc[("2023", "a")].tolist() == [-1.0, 2.0]
    assert result.period("2022").units["score"].tolist() == pytest.approx([110, 100, 120])


def test_without_a_base_each_period_is_on_its_own_scale():
    # the same spec, not fixed: 2022 is z-scored against itself and looks like 2021
    spec = periods_spec(normalise={"method": "zscore"}, periods={"column": "year"})
    spec["index"]["rescale"] = {"method": "zscore", "mean": 100, "sd": 10}
    result = engine.compute(parse_spec(spec), three_periods())
    assert result.base is None
    scores = result.units.groupby("period")["score"].apply(list).to_dict()
    assert scores[2021] == pytest.approx([100, 90, 110]) and scores[2022] == pytest.approx(
        [100, 90, 110]
    )


def test_the_base_parameters_keep_a_later_run_on_the_scale(tmp_path: Path, capsys):
    """A nightly run holds only its own period: the parameters the run with the base period
    wrote (`indices composite` writes them beside its output) keep it on the base scale, to the
    last digit."""
    three_periods().reset_index().to_csv(tmp_path / "series.csv", index=False)
    spec = periods_spec(inputs=[{"path": "series.csv"}])
    write(tmp_path / "series.yaml", yaml.safe_dump(spec))
    out = tmp_path / "out" / "series.parquet"
    assert main(["composite", str(tmp_path / "series.yaml"), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "periods: 2021, 2022, 2023 (base 2021)" in printed
    written = json.loads((out.parent / "series_base.json").read_text())
    assert written["base_period"] == "2021" and written["rescale"]["idx"]["sd"] == 0.5
    everything = pd.read_parquet(out)
    assert everything.columns[:2].tolist() == ["u", "period"]

    # the next run: only 2023, without a period column, the base named by its parameters
    (tmp_path / "frailty_base.json").write_text((out.parent / "series_base.json").read_text())
    later = three_periods().loc[lambda d: d["year"] == 2023].drop(columns="year")
    later.reset_index().to_csv(tmp_path / "nightly.csv", index=False)
    spec["inputs"] = [{"path": "nightly.csv"}]
    spec["periods"]["parameters"] = "frailty_base.json"
    write(tmp_path / "nightly.yaml", yaml.safe_dump(spec))
    argv = ["composite", str(tmp_path / "nightly.yaml"), "--output", str(tmp_path / "n.parquet")]
    assert main([*argv, "--period", "2023"]) == 0
    nightly = pd.read_parquet(tmp_path / "n.parquet")
    assert nightly["period"].tolist() == ["2023"] * 3
    expected = everything[everything["period"] == 2023]["score"].tolist()
    assert nightly["score"].tolist() == expected  # exactly: the scale did not move


def test_period_mistakes_are_one_line(tmp_path: Path):
    # the base period is not in the inputs and no parameters name it
    data = three_periods().loc[lambda d: d["year"] > 2021]
    message = fails(periods_spec(), data)
    assert "periods.base: 2021 is not among the inputs' periods (2022, 2023)" in message
    # no period column, no period given
    message = fails(periods_spec(), three_periods().drop(columns="year"))
    assert "periods.column: the inputs have no column year" in message
    # a period given for inputs that have their own
    with pytest.raises(SpecError, match=r"a period was given, but the inputs have their own"):
        engine.compute(parse_spec(periods_spec()), three_periods(), period="2024")
    # a unit twice in a period
    doubled = pd.concat([three_periods(), three_periods().iloc[:1]])
    assert "u: not unique, e.g. a" in fails(periods_spec(), doubled)
    # methods that rank within a period cannot be fixed to a base
    message = problem(periods_spec(normalise={"method": "exp_rank", "base": True}))
    assert "normalise: base: exp_rank cannot be fixed to a base period" in message
    assert "zscore" in message.split("these can:")[1]
    # base steps need a base period; parameters need a base
    message = problem(periods_spec(periods={"column": "year"}))
    assert "index.rescale.base needs a base period (periods.base)" in message
    message = problem(periods_spec(periods={"column": "year", "parameters": "b.json"}))
    assert "periods: parameters are a base period's: give base too" in message
    message = problem(periods_spec(periods={"column": "y", "base": 1, "parameters": "/etc/x"}))
    assert "periods.parameters" in message and "absolute" in message


def test_parameters_of_another_period_are_refused(tmp_path: Path):
    write(tmp_path / "base.json", json.dumps({"base_period": "2020", "normalise": {}}))
    spec = periods_spec()
    spec["periods"]["parameters"] = "base.json"
    path = write(tmp_path / "tiny.yaml", yaml.safe_dump(spec))
    with pytest.raises(SpecError, match=r"parameters of period 2020, not of the base period 2021"):
        engine.compute(load_spec(path), three_periods())
    write(tmp_path / "base.json", json.dumps({"base_period": "2021", "normalise": {}}))
    with pytest.raises(SpecError, match=r"base period's parameters have no normalise of x"):
        engine.compute(load_spec(path), three_periods())


def test_inputs_joined_by_unit_and_period(tmp_path: Path):
    # the first input has the periods; a second with the period column joins on both, a third
    # without it (a lookup) on the unit alone
    write(
        tmp_path / "x.csv", "u,year,x\na,2021,1\nb,2021,2\nc,2021,3\na,2022,2\nb,2022,3\nc,2022,4\n"
    )
    write(
        tmp_path / "y.csv", "u,year,y\na,2021,2\nb,2021,6\nc,2021,4\na,2022,2\nb,2022,6\nc,2022,4\n"
    )
    write(tmp_path / "g.csv", "u,g\na,A\nb,A\nc,B\n")
    spec = periods_spec(group="g", inputs=[{"path": "x.csv"}, {"path": "y.csv"}, {"path": "g.csv"}])
    path = write(tmp_path / "tiny.yaml", yaml.safe_dump(spec))
    data = engine.load_inputs(load_spec(path))
    # ordered by unit, then period
    assert data.index.tolist() == list("aabbcc") and data["g"].tolist() == list("AAAABB")
    assert data["y"].tolist() == [2, 2, 6, 6, 4, 4]
    result = engine.compute(load_spec(path), data)
    scores = result.units.sort_values(["period", "u"])["score"].tolist()
    assert scores == pytest.approx(BY_HAND["2021"] + BY_HAND["2022"], abs=1e-12)
    assert result.units["g"].tolist() == ["A", "A", "B", "A", "A", "B"]
    # a lookup with a unit twice would join it twice: refused
    write(tmp_path / "g.csv", "u,g\na,A\nb,A\nc,B\nc,C\n")
    with pytest.raises(SpecError, match=r"unit u is not unique in g\.csv, e\.g\. c"):
        engine.load_inputs(load_spec(path))
    # the period column only in a later input
    write(tmp_path / "g.csv", "u,g\na,A\nb,A\nc,B\n")
    spec["inputs"] = [{"path": "g.csv"}, {"path": "x.csv"}]
    path = write(tmp_path / "tiny.yaml", yaml.safe_dump(spec))
    with pytest.raises(SpecError, match=r"the first defines the periods"):
        engine.load_inputs(load_spec(path))


# -- the frailty index over three reference dates, released ---------------------------------------

EXAMPLE = REPO / "docs" / "examples" / "frailty_index_over_time.yaml"
FRAILTY_LADS = ("E06000001", "E06000017", "E06000053")
DATES = ("2023-03-31", "2024-03-31", "2025-03-31")


def area_counts(seed: int = 7) -> pd.DataFrame:
    """Area counts shaped as `measures/area_counts.parquet` (level, area_code and the counts),
    for the LSOAs of three authorities at three reference dates: the same people each year,
    frailty rising by a tenth of the base rate a year (so a series fixed to the base shows it)."""
    lookup = pd.read_csv(reference_dir() / "geography" / "lsoa11_lad19.csv")
    covered = lookup[lookup["lad19_code"].isin(FRAILTY_LADS)]
    lsoas, lads = covered["lsoa11_code"].tolist(), covered["lad19_code"].tolist()
    rng = np.random.default_rng(seed)
    pop65 = rng.integers(150, 450, len(lsoas))
    pop75 = (pop65 * rng.uniform(0.35, 0.55, len(lsoas))).astype(int)
    base = {
        "efi": rng.uniform(0.10, 0.30, len(lsoas)),
        "hfrs": rng.uniform(0.15, 0.40, len(lsoas)),
        "lts": rng.uniform(0.02, 0.08, len(lsoas)),
    }
    rows = []
    for year, day in enumerate(DATES):
        rise = 1 + 0.1 * year
        efi = np.round(pop65 * base["efi"] * rise).astype(int)
        hfrs = np.round(pop75 * base["hfrs"] * rise).astype(int)
        rows.append(
            pd.DataFrame(
                {
                    "reference_date": pd.Timestamp(day),
                    "level": "lsoa",
                    "area_code": lsoas,
                    "lad19_code": lads,
                    "pop_65plus": pop65,
                    "pop_75plus": pop75,
                    "efi_moderate": efi - efi // 4,
                    "efi_severe": efi // 4,
                    "hfrs_intermediate": hfrs - hfrs // 3,
                    "hfrs_high": hfrs // 3,
                    "lts_65plus": np.round(pop65 * base["lts"] * rise).astype(int),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def frailty_over_time() -> dict:
    """The README's example (docs/examples): the frailty index's tree, its inputs with a
    reference date, every indicator z-scored against the base period's areas and every domain
    and the index rescaled to 100 + 10 z against the base period's (fewer uncertainty runs)."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    assert spec["periods"] == {"column": "reference_date", "base": date.fromisoformat(DATES[0])}
    spec["uncertainty"]["runs"] = 20
    return spec


@pytest.fixture(scope="module")
def frailty_series(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("frailty_series")
    area_counts().to_parquet(folder / "area_counts_by_date.parquet", index=False)
    path = write(folder / "frailty_series.yaml", yaml.safe_dump(frailty_over_time()))
    spec = load_spec(path)
    return spec, engine.compute(spec, engine.load_inputs(spec))


def test_the_frailty_index_over_three_dates_is_on_the_base_scale(frailty_series):
    spec, result = frailty_series
    assert result.periods == list(DATES)
    units = result.units
    assert units.columns[:3].tolist() == ["lsoa11_code", "period", "lad19_code"]
    by_date = units.groupby(units["period"].astype(str))
    # the base period's areas have mean 100 and sd 10 at every level, by construction
    base = units[units["period"].astype(str) == DATES[0]]
    for column in ("score", "clinical_score", "care_score", "context_score"):
        assert base[column].mean() == pytest.approx(100, abs=1e-9), column
        assert base[column].std(ddof=1) == pytest.approx(10, abs=1e-9), column
    # frailty rose each year: on the base scale the later periods score higher, by domain too;
    # context (IoD ranks and the 2015 population) did not change, and neither did its score
    means = by_date[["score", "clinical_score", "care_score"]].mean()
    assert (means.diff().dropna() > 2).all().all(), means
    context = units.pivot(index="lsoa11_code", columns="period", values="context_score")
    assert np.allclose(context.to_numpy(), context.iloc[:, [0]].to_numpy(), atol=1e-9)
    # ranks, deciles and summaries are per period
    assert (by_date["rank"].min() == 1).all() and (by_date["decile"].max() == 10).all()
    assert result.summaries.groupby("period").size().tolist() == [3, 3, 3]
    assert result.uncertainty.groupby("period").size().tolist() == [len(base)] * 3


def test_a_per_period_build_would_hide_the_rise(frailty_series):
    spec, _ = frailty_series
    plain = frailty_over_time()
    plain["periods"] = {"column": "reference_date"}
    plain["normalise"] = {"method": "zscore"}
    for node in [plain["index"], *plain["index"]["children"]]:
        node["rescale"] = {"method": "zscore", "mean": 100, "sd": 10}
    data = engine.load_inputs(spec)
    units = engine.compute(parse_spec(plain), data).units
    means = units.groupby("period")["score"].mean()
    assert means.to_numpy() == pytest.approx([100, 100, 100], abs=1e-9)


def test_the_release_records_the_base_period(frailty_series, tmp_path: Path):
    spec, result = frailty_series
    releases = publish_index(result, tmp_path / "published", [], None)
    units = releases["units"]
    manifest = read_manifest(tmp_path / "published", units.dataset, units.version)
    record = next(i for i in manifest["inputs"] if i["role"] == "base period")
    assert record["base_period"] == DATES[0] and record["periods"] == list(DATES)
    assert record["parameters"] == result.base
    assert f"on the scale of the base period {DATES[0]}" in manifest["description"]
    assert manifest["key"] == ["period", "lsoa11_code"]
    assert any(c["column"] == "period" for c in manifest["schema"])
    published = pd.read_parquet(units.path / "data.parquet")
    assert published["period"].astype(str).unique().tolist() == list(DATES)
    # the report shows the periods and their scale
    page = (units.path / "report.html").read_text()
    assert f"on the scale of the base period {DATES[0]}" in page and "2025-03-31" in page
    assert f"base period {DATES[0]}" in report_markdown(result)


# -- missing values ------------------------------------------------------------------------------


def gappy() -> pd.DataFrame:
    return frame(x1=[1, 2, 3, 4], x2=[4, np.nan, 2, 1], y=[1, 1, np.nan, 2])


def weighted(**changes) -> dict:
    """idx = 0.5 x1 + 0.3 x2 + 0.2 y, scored as they are."""
    spec = tiny_spec(
        normalise={"method": "none"},
        aggregate={"method": "weighted_sum"},
        index={
            "name": "idx",
            "children": [
                {"name": "x1", "column": "x1", "weight": 0.5},
                {"name": "x2", "column": "x2", "weight": 0.3},
                {"name": "y", "column": "y", "weight": 0.2},
            ],
        },
    )
    return {**spec, **changes}


def test_missing_exclude_counts_the_units():
    result = engine.compute(parse_spec(weighted(missing="exclude")), gappy())
    # p: 0.5 + 1.2 + 0.2 = 1.9; s: 2 + 0.3 + 0.4 = 2.7; q and r miss a value
    scores = result.units["score"].tolist()
    assert scores[0] == pytest.approx(1.9) and scores[3] == pytest.approx(2.7)
    assert np.isnan(scores[1]) and np.isnan(scores[2])
    assert result.units["rank"].tolist()[::3] == [2, 1] and result.units["rank"].isna().sum() == 2
    assert result.units["decile"].tolist()[::3] == [10, 5]  # N = 2 ranked units
    assert result.missing == {"imputed": 0, "reweighted": 0, "excluded": 2}
    assert any("2 unit(s) were excluded" in n for n in result.notes)
    assert not any(w.startswith("missing") for w in result.warnings)


def test_missing_reweight_a_weighted_sum_by_hand():
    # q: (0.5 × 2 + 0.2 × 1) / 0.7 × 1.0; r: (0.5 × 3 + 0.3 × 2) / 0.8 × 1.0
    result = engine.compute(parse_spec(weighted(missing="reweight")), gappy())
    expected = [1.9, 1.2 / 0.7, 2.1 / 0.8, 2.7]
    assert result.units["score"].tolist() == pytest.approx(expected, abs=1e-12)
    assert result.missing == {"imputed": 0, "reweighted": 2, "excluded": 0}


def test_missing_impute_with_a_named_method():
    # median: x2 of q = median(4, 2, 1) = 2; y of r = median(1, 1, 2) = 1
    result = engine.compute(
        parse_spec(weighted(missing="impute", impute={"method": "median"})), gappy()
    )
    expected = [1.9, 1.0 + 0.6 + 0.2, 1.5 + 0.6 + 0.2, 2.7]
    assert result.units["score"].tolist() == pytest.approx(expected, abs=1e-12)
    assert result.missing == {"imputed": 2, "reweighted": 0, "excluded": 0}
    # what imputation cannot fill (group median of a group without a value) excludes the unit
    data = gappy().assign(g=list("ABBA"))
    spec = weighted(missing="impute", impute={"method": "group_median"}, group="g")
    result = engine.compute(parse_spec(spec), data.assign(x2=[4, np.nan, np.nan, 1]))
    assert result.missing == {"imputed": 1, "reweighted": 0, "excluded": 2}


def test_an_unstated_missing_rule_is_a_warning():
    # weighted_sum leaves the units out; arithmetic re-weights them: either way, said
    result = engine.compute(parse_spec(weighted()), gappy())
    assert result.missing["excluded"] == 2
    assert any(w.startswith("missing: not stated") and "excluded" in w for w in result.warnings)
    result = engine.compute(parse_spec(weighted(aggregate={"method": "arithmetic"})), gappy())
    assert result.missing["reweighted"] == 2
    assert any(w.startswith("missing: not stated") and "re-weighted" in w for w in result.warnings)


def test_missing_policies_that_contradict_are_refused():
    message = problem(weighted(missing="impute"))
    assert "missing: impute needs an impute method" in message
    message = problem(weighted(missing="exclude", impute={"method": "mean"}))
    assert "missing: exclude, but impute.method is mean" in message


# -- weights, degenerate inputs, parameters: a warning or one line --------------------------------


def test_weights_of_zero_or_not_adding_to_one_are_warnings(tmp_path: Path, capsys):
    spec = tiny_spec()
    spec["index"]["children"][0]["children"][0]["weight"] = 0
    result = engine.compute(parse_spec(spec), tiny_data())
    assert result.warnings == [
        "index: the weights of idx sum to 3, not 1; arithmetic uses them relative to their sum",
        "index.children.0.children.0.weight: 0, so x1 does not count in a",
        "index.children.0: the weights of a sum to 3, not 1; arithmetic uses them relative to "
        "their sum",
    ]
    # the IMD's weights add to 0.999: said, and what a weighted sum makes of them
    imd = load_spec(reference_dir() / "indices" / "imd2019.yaml")
    assert engine.weight_warnings(imd) == [
        "index: the weights of imd sum to 0.999, not 1; weighted_sum uses them as they are, "
        "so scores scale with their sum"
    ]
    # the CLI prints them
    spec_on(tmp_path, index=spec["index"])
    main(["composite", str(tmp_path / "tiny.yaml"), "--output", str(tmp_path / "o.parquet")])
    printed = capsys.readouterr()
    assert "indices: warning: tiny: index.children.0.children.0.weight: 0, so x1" in printed.out
    assert printed.err == ""  # the run succeeded: warnings are part of its summary


def test_all_weights_zero_is_one_line_not_a_traceback(tmp_path: Path, capsys):
    spec = tiny_spec(group="g", summaries={"population": "pop"})
    for domain in spec["index"]["children"]:
        domain["weight"] = 0
    message = problem(copy.deepcopy(spec))
    assert message == (
        "tiny.yaml: index: every weight of 'idx' is 0: its score cannot be computed (give at "
        "least one child a positive weight)"
    )
    write(tmp_path / "tiny.csv", "u,x1,x2,y,g,pop\np,0,10,50,A,1\nq,5,20,30,B,2\n")
    write(tmp_path / "tiny.yaml", yaml.safe_dump(spec))
    status = main(["composite", str(tmp_path / "tiny.yaml"), "--output", str(tmp_path / "o.pq")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("indices: error: tiny.yaml: index: every weight of 'idx' is 0")


def test_a_negative_weight_is_refused_with_its_field():
    spec = tiny_spec()
    spec["index"]["children"][1]["weight"] = -1
    assert "index.children.1.weight: Input should be greater than or equal to 0" in problem(spec)


def test_a_constant_indicator(tmp_path: Path):
    # minmax cannot scale it (max = min): one line naming the field
    data = tiny_data().assign(x2=5.0)
    message = fails(tiny_spec(), data)
    assert message == (
        "tiny: normalise, for index.children.0.children.1 (x2): minmax cannot scale x2: every "
        "unit has the same value (5)"
    )
    # a rank-based normalisation still works, and says it cannot tell the units apart
    result = engine.compute(parse_spec(tiny_spec(normalise={"method": "exp_rank"})), data)
    assert (
        "index.children.0.children.1 (x2): every unit has the same value (5): it does not "
        "tell them apart" in result.warnings
    )


def test_an_indicator_without_any_value():
    data = tiny_data().assign(y=np.nan)
    assert fails(tiny_spec(), data) == (
        "tiny: index.children.1.children.0 (y): no unit has a value"
    )
    spec = tiny_spec(impute={"method": "mean"})
    assert fails(spec, data).endswith("no unit has a value (even after imputation)")


def test_bad_method_parameters_are_one_line():
    message = problem(tiny_spec(normalise={"method": "minmax", "lo": 0}))
    assert message == "tiny.yaml: normalise: minmax takes no parameter 'lo' (it takes: low, high)"
    message = problem(tiny_spec(normalise={"method": "minmax", "low": [0, 1]}))
    assert "normalise: low: a number, not [0, 1]" in message
    message = problem(tiny_spec(normalise={"method": "zscore", "sd": "wide"}))
    assert message == "tiny.yaml: normalise: sd: a number, not 'wide'"
    message = problem(tiny_spec(normalise={"method": "goalposts", "lower": 0}))
    assert message == "tiny.yaml: normalise: goalposts needs upper"
    message = problem(tiny_spec(uncertainty={"runs": 5, "normalise": ["dist2ref"]}))
    assert "uncertainty.normalise: dist2ref needs ref, which a run's draw cannot give" in message
    # what only the data can tell: still one line naming the field
    message = fails(tiny_spec(normalise={"method": "dist2ref", "ref": "nobody"}), tiny_data())
    assert message == "tiny: normalise, for index.children.0.children.0 (x1): nobody"
    message = fails(tiny_spec(aggregate={"method": "harmonic"}), tiny_data())
    assert (
        message
        == "tiny: aggregate, for index.children.0 (a): the harmonic mean needs non-zero values"
    )


def test_no_units_is_one_line(tmp_path: Path, capsys):
    spec_on(tmp_path, inputs=[{"path": "tiny.csv", "where": "x1 > 100"}])
    status = main(["composite", str(tmp_path / "tiny.yaml"), "--output", str(tmp_path / "o.pq")])
    err = capsys.readouterr().err
    assert status == 2 and err == (
        "indices: error: tiny: no units: the first input has no rows (after its filter)\n"
    )


def test_defaults_are_unchanged_by_the_options():
    # the spec as it was, and with every new option at its default, give the same bytes
    before = engine.compute(parse_spec(tiny_spec()), tiny_data())
    explicit = tiny_spec(ranks={"ties": "min", "quantiles": "ceil"})
    explicit["index"]["children"][0]["children"][0]["transform"] = "none"
    after = engine.compute(parse_spec(explicit), tiny_data())
    pd.testing.assert_frame_equal(before.units, after.units)
    assert list(before.steps) == list(engine.STEPS)
    assert before.warnings == after.warnings


def test_the_report_shows_warnings_and_periods(frailty_series):
    _, result = frailty_series
    page = render_report(result)
    assert "3 periods; the plots show the latest, 2025-03-31" in page
    assert "<caption>Periods</caption>" in page
    plain = engine.compute(parse_spec(weighted()), gappy())
    page = render_report(plain)
    assert "missing: not stated" in page and "What the run reports" in page
