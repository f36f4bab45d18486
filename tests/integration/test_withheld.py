"""A rejected or missing extract makes every figure that needs it null with a stated reason,
never a silently low number."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from indices.areas import tables
from indices.core.settings import Settings
from indices.measures import parts
from indices.measures.persons import UNLOCATED
from indices.releases import datasets
from indices.sources import conformed, registry
from indices.synth import generate

LADS = ["E06000001", "E06000017"]


@pytest.fixture(scope="module")
def extracts(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("raw")
    generate(raw, persons=1500, extract_date=date(2025, 3, 31), seed=5, lads=LADS, fmt="csv.gz")
    return raw


def run_steps(raw: Path, root: Path) -> duckdb.DuckDBPyConnection:
    settings = Settings.resolve(raw, root / "warehouse", root / "published")
    authorities = conformed.authorities_in_raw(settings)
    for source in registry.SOURCES:
        if source in registry.AUTHORITY_SOURCES:
            conformed.conform_by_authority(settings, source, authorities)
        else:
            conformed.conform(settings, source)
    parts.persons(settings, [*authorities, UNLOCATED])
    parts.long_term_support(settings, conformed.social_care_authorities(settings))
    tables.area_counts(settings)
    for dataset in tables.AREA_DATASETS:
        datasets.publish_area(settings, dataset)
    return duckdb.connect(str(settings.publish_dir / "catalog.duckdb"), read_only=True)


def drop_column(path: Path, column: str) -> None:
    with gzip.open(path, "rt", encoding="utf-8-sig") as handle:
        lines = handle.read().splitlines()
    header = [h.strip() for h in lines[0].split(",")]
    keep = [i for i, h in enumerate(header) if h.lower() != column.lower()]
    rows = [",".join(line.split(",")[i] for i in keep) for line in lines if '"' not in line]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")


def copy_raw(extracts: Path, target: Path) -> Path:
    shutil.copytree(extracts, target)
    return target


def test_everything_is_published_when_all_extracts_arrive(extracts, tmp_path):
    con = run_steps(extracts, tmp_path)
    assert (
        con.execute(
            "SELECT count(*) FROM frailty_lad WHERE withheld_reason IS NOT NULL"
        ).fetchone()[0]
        == 0
    )
    lts, suppressed, reason = con.execute(
        "SELECT lts_65plus, lts_65plus_suppressed, withheld_reason FROM frailty_england"
    ).fetchone()
    assert reason is None
    # Published, or null only as a recorded secondary suppression: in these extracts England's
    # published 10 (at most 12) less E06000001's (at least 9: nine LSOAs are suppressed) would
    # pin E06000017's suppressed count at 3 and each of its three LSOAs' at 1.
    manifest = json.loads(
        (tmp_path / "published" / "frailty_england" / "v000001" / "manifest.json").read_text()
    )
    secondary = manifest["disclosure"]["secondary_suppressed"]
    assert (
        (lts > 0)
        if lts is not None
        else (suppressed and {"area": "E92000001", "count": "lts_65plus"} in secondary)
    )


def test_a_rejected_social_care_file_withholds_that_authority_and_england(extracts, tmp_path):
    raw = copy_raw(extracts, tmp_path / "raw")
    (rejected,) = raw.glob("asc_cld/asc_cld_E06000017_*")
    drop_column(rejected, "Service_Type")
    con = run_steps(raw, tmp_path)
    rows = dict(
        con.execute("SELECT lad19_code, (lts_65plus, withheld_reason) FROM frailty_lad").fetchall()
    )
    assert rows["E06000017"][0] is None
    assert "missing column(s) Service_Type" in rows["E06000017"][1]
    assert rows["E06000001"][0] is not None and rows["E06000001"][1] is None
    england = con.execute(
        "SELECT lts_65plus, withheld_reason, pop_65plus FROM frailty_england"
    ).fetchone()
    assert england[0] is None and "E06000017" in england[1] and england[2] > 0
    lsoas = con.execute(
        "SELECT count(*) FILTER (WHERE lts_65plus IS NOT NULL), count(*) FROM frailty_lsoa "
        "WHERE lad19_code = 'E06000017'"
    ).fetchone()
    assert lsoas[0] == 0 and lsoas[1] > 0
    assert (
        con.execute(
            "SELECT count(*) FROM frailty_lsoa WHERE lad19_code = 'E06000017' AND lts_65plus_suppressed"
        ).fetchone()[0]
        == 0
    )  # withheld, not suppressed


def test_a_rejected_file_from_an_authority_with_no_residents_withholds_england(extracts, tmp_path):
    """Its persons may live in any authority: England's total depends on every sender."""
    raw = copy_raw(extracts, tmp_path / "raw")
    (sent,) = raw.glob("asc_cld/asc_cld_E06000001_*")
    elsewhere = raw / "asc_cld" / sent.name.replace("E06000001", "E06000053")
    shutil.copy(sent, elsewhere)
    drop_column(elsewhere, "Service_Type")
    con = run_steps(raw, tmp_path)
    england = con.execute("SELECT lts_65plus, withheld_reason, pop_65plus FROM frailty_england")
    lts, reason, population = england.fetchone()
    assert lts is None and population > 0
    assert reason == (
        "lts: asc_cld extract from E06000053 rejected (asc_cld_E06000053_2025-03-31.csv.gz: "
        "missing column(s) Service_Type needed by a measure)"
    )
    lads = con.execute("SELECT withheld_reason FROM frailty_lad ORDER BY lad19_code")
    assert lads.fetchall() == [(None,), (None,)]


def test_a_missing_social_care_file_withholds_that_authority(extracts, tmp_path):
    raw = copy_raw(extracts, tmp_path / "raw")
    next(raw.glob("asc_cld/asc_cld_E06000001_*")).unlink()
    con = run_steps(raw, tmp_path)
    lts, reason = con.execute(
        "SELECT lts_65plus, withheld_reason FROM frailty_lad WHERE lad19_code = 'E06000001'"
    ).fetchone()
    assert lts is None and reason == "lts: no asc_cld extract from E06000001"


def test_a_rejected_events_file_withholds_the_efi_everywhere(extracts, tmp_path):
    raw = copy_raw(extracts, tmp_path / "raw")
    drop_column(next(raw.glob("gp_events/*")), "snomed_code")
    con = run_steps(raw, tmp_path)
    for table in ("frailty_lsoa", "frailty_lad", "frailty_england"):
        counts = con.execute(
            f"SELECT count(*) FILTER (WHERE efi_fit IS NOT NULL OR efi_severe IS NOT NULL), "
            f"count(*) FILTER (WHERE pop_65plus IS NOT NULL), "
            f"bool_and(withheld_reason LIKE 'efi: gp_events extract rejected%') FROM {table}"
        ).fetchone()
        assert counts[0] == 0 and counts[1] > 0 and counts[2], table
