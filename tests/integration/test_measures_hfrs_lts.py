"""HFRS through conform: the diagnosis codes of a hand-made hospital extract, as senders write
them, conformed and then scored (the measure's definitions are in
tests/unit/test_measures_hfrs_lts.py)."""

from __future__ import annotations

import duckdb

from indices.measures.persons import build_persons, hfrs_weights
from indices.sources.conform import conform_source
from indices.sources.extracts import check_raw_folder
from indices.sources.registry import SOURCES
from tests.helpers import KEY, PATIENT_COLUMNS, D, register_row, write_csv

OLD = "1940-01-01"  # 85 at D


def test_hes_code_quirks_score_through_conform(tmp_path):

    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    write_csv(
        raw / "gp_patients" / "gp_patients_2025-03-31.csv",
        PATIENT_COLUMNS,
        [register_row("9434765919", date_of_birth=OLD)],
    )
    header = ["nhs_number", "epikey", "admidate", "epistart", "epiend", "disdate", "admimeth"]
    header += [f"diag_4_{i:02d}" for i in range(1, 21)]
    quirks = ["R54X", "f00.1", "G309D", "I10-", "W19 ", "r5-4", "9ZZ"]  # last two: not codes
    dates = ["2024-06-01", "2024-06-01", "2024-06-03", "1800-01-01", "21"]
    write_csv(
        raw / "hes_apc" / "hes_apc_2025-03-31.csv",
        header,
        [["9434765919", "E1", *dates, *quirks, *[""] * 13]],
    )
    found = check_raw_folder(raw, ())
    for source in ("gp_patients", "gp_events", "gp_medications", "hes_apc"):
        conform_source(SOURCES[source], found[source], warehouse, KEY)
    path = warehouse / "persons.parquet"
    build_persons(warehouse, D, {"E06000001": path})  # LSOA E01011949
    score, band = (
        duckdb.connect()
        .execute(f"SELECT hfrs_tenths, hfrs_band FROM read_parquet('{path}')")
        .fetchone()
    )
    weights = hfrs_weights()
    assert score == weights["R54"] + weights["F00"] + weights["G30"] + weights["W19"]
    assert band == "high"  # 2.2 + 7.1 + 4.0 + 3.2 = 16.5
