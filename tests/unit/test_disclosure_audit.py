"""Disclosure by differencing (issue 11, item 12): the release audit that reads every area table
together and the previous release, secondary suppression, and the cell-key method (a whole run of the steps under it:
tests/integration/test_disclosure_audit.py)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from indices.areas import tables
from indices.areas.availability import Withheld
from indices.areas.counts import COUNTS, build_area_counts, column_descriptions
from indices.areas.disclosure import (
    CELL_KEY,
    METHOD_ENV,
    ROUNDING,
    is_publishable,
    method_from_env,
    protect,
)
from indices.areas.disclosure import audit as sdc
from indices.areas.disclosure.cell_key import (
    MAX_NOISE,
    RECORD_KEYS,
    SMALL_COUNT,
    VARIANCE,
    ptable,
    record_key,
)
from indices.areas.release import area_release, published_area_table, published_problems
from indices.core.published import list_versions
from indices.releases.audit import AuditFailed, audit_table
from indices.releases.publish import publish_release
from tests.helpers import catalog

D = date(2025, 3, 31)
U = sdc.UNBOUNDED
DATASETS = {a.level: a.name for a in tables.AREA_DATASETS}


def one_sum(total: int, parts: list[int]) -> sdc.Relations:
    relations = sdc.Relations()
    relations.add_sums(np.array([total]), np.array(parts), np.array([len(parts)]))
    return relations


# -- the attacker's intervals, worked by hand ------------------------------------------------------


def test_an_authority_and_its_published_lsoa_bound_the_suppressed_lsoa():
    # LAD published 10 (8..12) = LSOA a published 10 (8..12) + LSOA b suppressed (1..7):
    # b = LAD - a lies in 8-12..12-8, so 1..4; a in 8-7..12-1, so 8..11; LAD in 9..12.
    lo, hi = sdc.tighten(np.array([8, 8, 1]), np.array([12, 12, 7]), one_sum(0, [1, 2]))
    assert list(zip(lo, hi, strict=True)) == [(9, 12), (8, 11), (1, 4)]
    assert list(sdc.narrowed(lo, hi, np.array([2]))) == [2]


def pinned_partition() -> tuple[np.ndarray, np.ndarray, np.ndarray, sdc.Relations]:
    """pop_65plus 33 (published 35: 33..37) = fit 12 (published 10: 8..12) + mild, moderate,
    severe 7 each (suppressed: 1..7): each of the three is at least 33 - 12 - 7 - 7 = 7."""
    exact = np.array([33, 12, 7, 7, 7])
    lo = np.array([33, 8, 1, 1, 1])
    hi = np.array([37, 12, 7, 7, 7])
    return exact, lo, hi, one_sum(0, [1, 2, 3, 4])


def test_rounding_cell_by_cell_lets_a_partition_pin_suppressed_counts():
    _, lo, hi, relations = pinned_partition()
    lo, hi = sdc.tighten(lo, hi, relations)
    assert list(zip(lo, hi, strict=True)) == [(33, 33), (12, 12), (7, 7), (7, 7), (7, 7)]


def test_secondary_suppression_of_the_next_smallest_cell_removes_the_pin():
    exact, lo, hi, relations = pinned_partition()
    suppressed = np.array([False, False, True, True, True])
    candidates = ~suppressed
    secondary, lo, hi = sdc.suppress_until_safe(
        lo, hi, relations, suppressed, candidates, exact, (8, U)
    )
    assert list(np.flatnonzero(secondary)) == [1]  # fit (12) goes before pop_65plus (33)
    # fit is now 8 or more, so each category is at least 33 - ∞: back to 1..7, and fit 12..34.
    assert list(zip(lo[2:], hi[2:], strict=True)) == [(1, 7)] * 3
    assert (lo[1], hi[1]) == (12, 34)


def test_a_pin_with_nothing_beside_it_to_suppress_is_refused():
    exact, lo, hi, relations = pinned_partition()
    suppressed = np.array([False, False, True, True, True])
    with pytest.raises(sdc.Unprotectable, match="3 suppressed cell") as refused:
        sdc.suppress_until_safe(lo, hi, relations, suppressed, np.zeros(5, bool), exact, (8, U))
    assert list(refused.value.cells) == [2, 3, 4]


def test_suppressing_a_count_whose_bound_comes_from_elsewhere_is_not_chosen():
    # England lts 12 (8..12) = LAD a + LAD b + unknown-LSOA persons (0 or more); a is published
    # 10 but is the sum of nine suppressed LSOAs (so at least 9); b is suppressed (3) and the sum
    # of three suppressed LSOAs (at least 3). So b = 3, a = 9 and every LSOA is 1. Suppressing a
    # (the smallest published) frees nothing: its lower bound 9 comes from its LSOAs. England's
    # upper bound is what holds b: suppressing England frees every cell.
    relations = sdc.Relations()
    england, a, b, unlocated = 0, 1, 2, 3
    a_lsoas, b_lsoas = list(range(4, 13)), list(range(13, 16))
    relations.add_sums(np.array([england]), np.array([a, b, unlocated]), np.array([3]))
    relations.add_sums(np.array([a, b]), np.array(a_lsoas + b_lsoas), np.array([9, 3]))
    lo = np.array([8, 8, 1, 0] + [1] * 12)
    hi = np.array([12, 12, 7, U] + [7] * 12)
    exact = np.array([12, 9, 3, 0] + [1] * 12)
    suppressed = np.array([False, False, True, False] + [True] * 12)
    candidates = np.array([True, True, False, False] + [False] * 12)
    bounds = sdc.tighten(lo, hi, relations)
    assert (bounds[0][2], bounds[1][2]) == (3, 3) and (bounds[0][4:] == bounds[1][4:]).all()
    secondary, lo, hi = sdc.suppress_until_safe(
        lo, hi, relations, suppressed, candidates, exact, (8, U)
    )
    assert list(np.flatnonzero(secondary)) == [england]
    assert not ((lo == hi) & suppressed).any()


def test_a_change_of_at_most_one_pins_the_earlier_suppressed_value():
    # One cell, two releases: suppressed (1..7), then 10 (8..12), changed by at most 1.
    relations = sdc.Relations()
    relations.add_changes(np.array([0]), np.array([1]), np.array([1]))
    lo, hi = sdc.tighten(np.array([1, 8]), np.array([7, 12]), relations)
    assert list(zip(lo, hi, strict=True)) == [(7, 7), (8, 8)]


def test_local_rounds_end_where_a_propagation_over_every_cell_agrees(tmp_path):
    # Six authorities of 40 LSOAs with random small counts, some of them pinned: the secondary
    # suppression found with rounds over the touched authorities leaves nothing pinned when
    # checked over every cell at once, as rounds over every cell do.
    counts = frame_of_random_lsoas(np.random.default_rng(3), lads=6, lsoas=40, dense=True)
    release = area_release(write_counts_frame(counts, tmp_path / "random.parquet"), ROUNDING)
    cells = release.cells
    assert cells.secondary.any()
    lo, hi = sdc.tighten(*cells.bounds(), cells.relations())
    assert not ((lo == hi) & cells.suppressed).any()
    assert release.report["suppressed_pinned"] == 0


# -- the area datasets of a release, protected together ---------------------------------------------


def lsoa_row(fit=0, mild=0, moderate=0, severe=0, low=0, intermediate=0, high=0, lts=0) -> dict:
    return {
        "pop_65plus": fit + mild + moderate + severe,
        "efi_fit": fit,
        "efi_mild": mild,
        "efi_moderate": moderate,
        "efi_severe": severe,
        "pop_75plus": low + intermediate + high,
        "hfrs_low": low,
        "hfrs_intermediate": intermediate,
        "hfrs_high": high,
        "lts_65plus": lts,
    }


def counts_frame(lsoas: dict[str, tuple[str, dict]], unlocated: dict | None = None) -> pd.DataFrame:
    """Private area counts as `areas.area_counts_sql` writes them: the LSOAs given, their
    authorities (sums) and England (their sum plus the persons of unknown LSOA)."""
    names = [c.name for c in COUNTS]
    rows = [
        {"level": "lsoa", "area_code": a, "lad19_code": lad, **c} for a, (lad, c) in lsoas.items()
    ]
    frame = pd.DataFrame(rows)
    lads = frame.groupby("lad19_code")[names].sum().reset_index()
    lads.insert(0, "area_code", lads["lad19_code"])
    lads.insert(0, "level", "lad")
    england = frame[names].sum() + pd.Series(unlocated or lsoa_row())
    england = pd.DataFrame(
        [{"level": "england", "area_code": "E92000001", "lad19_code": None, **england.to_dict()}]
    )
    return pd.concat([frame, lads, england], ignore_index=True)


def write_counts_frame(frame: pd.DataFrame, path: Path) -> Path:
    frame = frame.copy()
    frame["withheld_reason"] = None
    for c in COUNTS:
        frame[c.name] = frame[c.name].astype("int64")
    schema = pa.schema(
        [("level", pa.string()), ("area_code", pa.string()), ("lad19_code", pa.string())]
        + [(c.name, pa.int64()) for c in COUNTS]
        + [("withheld_reason", pa.string())]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pa.parquet.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)
    return path


def frame_of_random_lsoas(rng, lads: int, lsoas: int, dense: bool = False) -> pd.DataFrame:
    """Random LSOAs: counts of each category below these limits (`dense`: more of them small)."""
    limits = [60, 30, 10, 4, 30, 8, 3, 6] if dense else [30, 12, 8, 6, 15, 8, 4, 6]
    areas = {}
    for lad in range(lads):
        for lsoa in range(lsoas):
            areas[f"E01{lad:03d}{lsoa:03d}"] = (
                f"E06{lad:06d}",
                lsoa_row(*(int(x) for x in rng.integers(0, limits))),
            )
    return counts_frame(areas, lsoa_row(fit=3, low=1))


def pinned_counts() -> dict[str, tuple[str, dict]]:
    """LSOA A's eFI partition is the hand case above: 33 = 12 + 7 + 7 + 7."""
    return {
        "E01000001": (
            "E06000001",
            lsoa_row(fit=12, mild=7, moderate=7, severe=7, low=20, intermediate=9, lts=9),
        ),
        "E01000002": (
            "E06000001",
            lsoa_row(fit=40, mild=22, moderate=9, severe=3, low=31, intermediate=8, high=2, lts=12),
        ),
        "E01000003": (
            "E06000001",
            lsoa_row(fit=35, mild=14, moderate=10, severe=0, low=25, intermediate=9, high=0, lts=8),
        ),
    }


def publish_all(counts: Path, publish_dir: Path, method: str = ROUNDING):
    """What `datasets.publish_area` does for each area dataset, without the rest of a run."""
    release = area_release(counts, method, publish_dir, DATASETS)
    for dataset in tables.AREA_DATASETS:
        con = duckdb.connect()
        table = published_area_table(release, dataset.level, D, con)
        con.close()
        publish_release(
            publish_dir,
            dataset.name,
            table,
            description=dataset.description,
            column_descriptions=column_descriptions(method),
            sort_by=list(dataset.sort_by),
            reference_date=D,
            inputs=[],
            count_columns=[c.name for c in COUNTS],
            extra_audit=lambda t: release.problems + published_problems(t, method),
            disclosure=release.manifest_record(dataset.level),
        )
    return release


def test_the_release_suppresses_the_next_smallest_count_where_its_tables_pin_one(tmp_path):
    counts = write_counts_frame(counts_frame(pinned_counts()), tmp_path / "counts.parquet")
    release = publish_all(counts, tmp_path / "published")
    con = catalog(tmp_path / "published")
    row = con.execute(
        "SELECT pop_65plus, efi_fit, efi_fit_suppressed, efi_mild, efi_mild_suppressed, "
        "efi_moderate_severe_rate FROM frailty_lsoa WHERE lsoa11_code = 'E01000001'"
    ).fetchone()
    # efi_fit (12) would have been published as 10, pinning mild, moderate and severe at 7.
    assert row == (35, None, True, None, True, None)
    manifest = json.loads(
        (tmp_path / "published" / "frailty_lsoa" / "v000001" / "manifest.json").read_text()
    )
    record = manifest["disclosure"]
    assert record["method"] == ROUNDING and record["parameters"]["round_to"] == 5
    assert {"area": "E01000001", "count": "efi_fit"} in record["secondary_suppressed"]
    assert record["audit"]["suppressed_pinned"] == 0
    assert record["audit"]["secondary_suppressed"] == len(np.flatnonzero(release.cells.secondary))
    # What the attacker now sees, from the published tables alone, pins nothing suppressed.
    cells = release.cells
    lo, hi = sdc.tighten(*cells.bounds(), cells.relations())
    assert not ((lo == hi) & cells.suppressed).any()
    lad_manifest = json.loads(
        (tmp_path / "published" / "frailty_lad" / "v000001" / "manifest.json").read_text()
    )
    assert lad_manifest["disclosure"]["audit"] == record["audit"]


def test_an_authority_whose_small_counts_nothing_can_protect_is_withheld_whole(tmp_path):
    """Seven LSOAs with one person each receiving long-term support, their authority's 7
    suppressed: each LSOA is exactly 1, and nothing published beside them can be suppressed
    to hide it. The authority's count and its LSOAs' are withheld, saying why; the rest of the
    release is published."""
    lsoas = {f"E0100001{i}": ("E06000001", lsoa_row(fit=20, low=15, lts=1)) for i in range(7)}
    lsoas |= {f"E0100002{i}": ("E06000002", lsoa_row(fit=30, low=20, lts=10)) for i in range(3)}
    counts = write_counts_frame(counts_frame(lsoas), tmp_path / "counts.parquet")
    release = publish_all(counts, tmp_path / "published")
    assert release.problems == []
    con = catalog(tmp_path / "published")
    withheld = con.execute(
        "SELECT lsoa11_code, lts_65plus, lts_65plus_suppressed, withheld_reason, pop_65plus "
        "FROM frailty_lsoa WHERE lad19_code = 'E06000001' ORDER BY 1"
    ).fetchall()
    assert len(withheld) == 7
    for _, lts, flag, reason, population in withheld:
        assert lts is None and flag is False and population == 20
        assert reason.startswith("lts_65plus: withheld in this authority by disclosure control")
    lad = con.execute(
        "SELECT lad19_code, lts_65plus, lts_65plus_suppressed, withheld_reason FROM frailty_lad"
    ).fetchall()
    assert lad[0][:3] == ("E06000001", None, False) and lad[0][3].startswith("lts_65plus: withheld")
    assert lad[1] == ("E06000002", 30, False, None)
    cells = release.cells  # what an attacker now sees pins no one
    lo, hi = sdc.tighten(*cells.bounds(), cells.relations())
    withheld = np.flatnonzero(
        np.isin(cells.areas, ["E06000001", *(f"E0100001{i}" for i in range(7))])
    )
    lts = withheld * len(COUNTS) + [c.name for c in COUNTS].index("lts_65plus")
    assert (hi[lts] - lo[lts] >= 7).all() and not ((lo == hi) & cells.suppressed).any()
    manifest = json.loads(
        (tmp_path / "published" / "frailty_lad" / "v000001" / "manifest.json").read_text()
    )
    assert manifest["disclosure"]["audit"]["withheld_in_authority"] == 8


def test_without_pins_every_count_follows_todays_rule(tmp_path):
    rng = np.random.default_rng(11)
    frame = frame_of_random_lsoas(rng, lads=3, lsoas=6)
    release = area_release(write_counts_frame(frame, tmp_path / "c.parquet"), ROUNDING)
    assert not release.cells.secondary.any()
    published = release.table.to_pandas()
    merged = published.merge(frame, on=["level", "area_code"], suffixes=("", "_exact"))
    for c in COUNTS:
        for exact, value, flag in merged[
            [c.name + "_exact", c.name, c.name + "_suppressed"]
        ].values:
            expected = protect(int(exact))
            assert (None if pd.isna(value) else int(value)) == expected
            assert flag == (1 <= exact <= 7)


def test_an_earlier_suppressed_count_pinned_by_one_newcomer_is_reported(tmp_path):
    # LSOA A has 7 persons 65+, all fit: suppressed. One fit person of 70 moves in: 8, so 10.
    before = {
        "E01000001": ("E06000001", lsoa_row(fit=7, low=3)),
        "E01000002": (
            "E06000001",
            lsoa_row(fit=40, mild=20, moderate=9, severe=3, low=20, intermediate=8, high=2, lts=5),
        ),
    }
    after = before | {"E01000001": ("E06000001", lsoa_row(fit=8, low=3))}
    published = tmp_path / "published"
    first = publish_all(write_counts_frame(counts_frame(before), tmp_path / "1.parquet"), published)
    assert first.report["previous_release"] == {"releases": {}, "change_per_lsoa": 1}
    second_counts = write_counts_frame(counts_frame(after), tmp_path / "2.parquet")
    second = publish_all(second_counts, published)
    across = second.report["previous_release"]
    assert across["releases"] == {"lsoa": "v000001", "lad": "v000001", "england": "v000001"}
    assert across["earlier_suppressed_pinned"] >= 2
    pinned = {
        (r["area"], r["count"]): (r["low"], r["high"])
        for r in second.details["previous_release"]["earlier_suppressed_pinned"]
    }
    assert pinned[("E01000001", "pop_65plus")] == (7, 7)
    assert pinned[("E01000001", "efi_fit")] == (7, 7)
    manifest = json.loads((published / "frailty_lsoa" / "v000002" / "manifest.json").read_text())
    assert manifest["disclosure"]["audit"]["previous_release"] == across
    # Rerun on the same counts: the identical latest release tells nothing new; set against v1.
    again = area_release(second_counts, ROUNDING, published, DATASETS)
    assert again.report["previous_release"]["releases"]["lsoa"] == "v000001"


def test_an_authority_whose_change_exceeds_the_assumption_is_not_paired(tmp_path):
    before = {
        "E01000001": ("E06000001", lsoa_row(fit=7)),
        "E01000002": ("E06000002", lsoa_row(fit=20)),
    }
    after = {
        "E01000001": ("E06000001", lsoa_row(fit=30)),
        "E01000002": ("E06000002", lsoa_row(fit=20)),
    }
    published = tmp_path / "published"
    publish_all(write_counts_frame(counts_frame(before), tmp_path / "1.parquet"), published)
    second = area_release(
        write_counts_frame(counts_frame(after), tmp_path / "2.parquet"),
        ROUNDING,
        published,
        DATASETS,
    )
    assert second.report["previous_release"]["authorities_not_paired"] == ["E06000001"]


# -- the cell-key method ----------------------------------------------------------------------------


def test_the_ptable_keeps_its_published_properties():
    table = ptable()
    for value in range(0, 60):
        out = table.perturb(np.full(RECORD_KEYS, value), np.arange(RECORD_KEYS))
        noise = out - value
        assert np.abs(noise).max() <= MAX_NOISE
        assert (out >= 0).all()
        assert not ((out >= 1) & (out <= SMALL_COUNT)).any(), value
        assert noise.mean() == 0, value  # unbiased for every original value
        if value == 0:
            assert (out == 0).all()  # empty cells stay empty: no false positives
        else:
            assert abs(noise.var() - VARIANCE) < 0.1, value
        assert all(is_publishable(int(v), CELL_KEY) for v in out)
        lo, hi = table.preimage(out)
        assert ((lo <= value) & (value <= hi)).all()
    assert table.parameters()["max_noise"] == MAX_NOISE
    assert table.parameters()["small_count_threshold"] == SMALL_COUNT


def persons_part(path: Path, persons: list[tuple[str, str, str, int, str | None, str | None]]):
    """A person table part: person_id, lsoa11_code, lad19_code, age, efi_category, hfrs_band."""
    frame = pd.DataFrame(
        persons,
        columns=["person_id", "lsoa11_code", "lad19_code", "age", "efi_category", "hfrs_band"],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


SCILLY, SCILLY_LSOA = "E06000053", "E01019077"  # one LSOA: the LSOA's persons are the LAD's
RUTLAND, RUTLAND_LSOAS = "E06000017", ["E01013787", "E01013788"]


def some_persons(rng, n: int, start: int) -> list[tuple]:
    categories = ["fit", "mild", "moderate", "severe"]
    bands = ["low", "intermediate", "high"]
    persons = []
    for i in range(start, start + n):
        lsoa, lad = [
            (SCILLY_LSOA, SCILLY),
            (RUTLAND_LSOAS[0], RUTLAND),
            (RUTLAND_LSOAS[1], RUTLAND),
        ][i % 3]
        age = int(rng.integers(60, 95))
        persons.append(
            (
                f"{i:032x}",
                lsoa,
                lad,
                age,
                categories[int(rng.integers(0, 4))] if age >= 65 else None,
                bands[int(rng.integers(0, 3))] if age >= 75 else None,
            )
        )
    return persons


def cell_key_release(tmp_path: Path, name: str, persons: list[tuple]):
    part = persons_part(tmp_path / name / "persons.parquet", persons)
    counts, _ = build_area_counts(tmp_path / name, [part], [], Withheld())
    return counts, area_release(counts, CELL_KEY)


def values(release, level: str, area: str) -> dict[str, int | None]:
    rows = release.table.to_pylist()
    (row,) = [r for r in rows if r["level"] == level and r["area_code"] == area]
    return {c.name: row[c.name] for c in COUNTS}


def test_cell_keys_are_private_sums_of_record_keys(tmp_path):
    persons = some_persons(np.random.default_rng(3), 40, 0)
    counts, _ = cell_key_release(tmp_path, "r", persons)
    row = (
        duckdb.connect()
        .execute(
            f"SELECT pop_65plus, pop_65plus_cell_key FROM '{counts}' "
            f"WHERE area_code = '{SCILLY_LSOA}'"
        )
        .fetchone()
    )
    mine = [p for p in persons if p[1] == SCILLY_LSOA and p[3] >= 65]
    assert row == (len(mine), sum(record_key(p[0]) for p in mine) % RECORD_KEYS)


def test_the_same_persons_get_the_same_value_in_every_table_and_release(tmp_path):
    rng = np.random.default_rng(5)
    persons = some_persons(rng, 90, 0)
    _, first = cell_key_release(tmp_path, "first", persons)
    # The Isles of Scilly have one LSOA: its cells and the authority's hold the same persons.
    assert values(first, "lsoa", SCILLY_LSOA) == values(first, "lad", SCILLY)
    # The next release adds one person in a Rutland LSOA: nothing else changes.
    newcomer = ("f" * 32, RUTLAND_LSOAS[0], RUTLAND, 80, "severe", "high")
    _, second = cell_key_release(tmp_path, "second", [*persons, newcomer])
    assert values(second, "lsoa", SCILLY_LSOA) == values(first, "lsoa", SCILLY_LSOA)
    assert values(second, "lad", SCILLY) == values(first, "lad", SCILLY)
    assert values(second, "lsoa", RUTLAND_LSOAS[1]) == values(first, "lsoa", RUTLAND_LSOAS[1])
    changed = values(second, "lsoa", RUTLAND_LSOAS[0])
    unchanged = values(first, "lsoa", RUTLAND_LSOAS[0])
    # Only the counts the newcomer is in may change (fresh noise); the others keep their value.
    newcomers_counts = {"pop_65plus", "efi_severe", "pop_75plus", "hfrs_high"}
    assert {k for k in changed if changed[k] != unchanged[k]} <= newcomers_counts
    assert {k: v for k, v in changed.items() if k not in newcomers_counts} == {
        k: v for k, v in unchanged.items() if k not in newcomers_counts
    }
    # A rerun on the same persons gives the same published values.
    _, rerun = cell_key_release(tmp_path, "rerun", persons)
    assert rerun.table.equals(first.table)
    # LAD values come from the LAD's own persons, not summed from perturbed LSOAs.
    assert first.cells.secondary.sum() == 0 and first.report["suppressed"] == 0


# -- selecting the method, and what the release audit accepts ---------------------------------------


def test_the_method_is_chosen_per_deployment(monkeypatch):
    monkeypatch.delenv(METHOD_ENV, raising=False)
    assert method_from_env() == ROUNDING
    monkeypatch.setenv(METHOD_ENV, CELL_KEY)
    assert method_from_env() == CELL_KEY
    monkeypatch.setenv(METHOD_ENV, "round")
    with pytest.raises(ValueError, match="INDICES_DISCLOSURE must be one of rounding, cell_key"):
        method_from_env()


def test_the_release_audit_accepts_what_each_method_produces_and_nothing_else(tmp_path):
    assert [is_publishable(v) for v in (None, 0, 10, 15, 12, 3, 5)] == [True] * 4 + [False] * 3
    assert [is_publishable(v, CELL_KEY) for v in (None, 0, 3, 12, 1, 2, -1)] == (
        [True] * 4 + [False] * 3
    )
    perturbed = pa.table({"lsoa11_code": ["E01000001", "E01000002"], "n": [12, 3]})
    assert audit_table(perturbed, ["n"], CELL_KEY) == []
    assert audit_table(perturbed, ["n"]) == ["n: 2 value(s) not disclosure controlled, e.g. 12"]

    def publish(table, disclosure):
        return publish_release(
            tmp_path,
            "demo",
            table,
            description="d",
            column_descriptions={},
            sort_by=["lsoa11_code"],
            reference_date=D,
            inputs=[],
            count_columns=["n"],
            disclosure=disclosure,
        )

    with pytest.raises(AuditFailed, match="not disclosure controlled"):
        publish(perturbed, {"method": ROUNDING})
    with pytest.raises(AuditFailed, match="not disclosure controlled, e.g. 1"):
        publish(pa.table({"lsoa11_code": ["E01000001"], "n": [1]}), {"method": CELL_KEY})
    release = publish(perturbed, {"method": CELL_KEY, "parameters": ptable().parameters()})
    assert release.manifest["disclosure"]["method"] == CELL_KEY
    assert list_versions(tmp_path, "demo") == ["v000001"]


def test_a_null_count_must_be_suppressed_or_withheld():
    table = pa.table(
        {
            **{c.name: pa.array([None, 10], pa.int64()) for c in COUNTS},
            **{f"{c.name}_suppressed": [False, False] for c in COUNTS},
            "withheld_reason": pa.array([None, None], pa.string()),
        }
    )
    problems = published_problems(table, ROUNDING)
    assert "pop_65plus: null but neither suppressed nor withheld" in problems
    flagged = table.set_column(
        table.schema.get_field_index("pop_65plus_suppressed"),
        "pop_65plus_suppressed",
        pa.array([True, False]),
    )
    assert "pop_65plus: suppressed, but the cell-key method suppresses nothing" in (
        published_problems(flagged, CELL_KEY)
    )
