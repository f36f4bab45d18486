"""HFRS and long-term social care support on hand-built persons, as the definitions say."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from indices.measures.persons import hfrs_bands, hfrs_weights, tenths
from tests.test_measures_efi import D, persons_table

OLD = "1940-01-01"  # 85 at D
SIXTY_EIGHT = "1957-01-01"


def test_weights_are_the_published_ones_in_exact_tenths():
    weights = hfrs_weights()
    assert len(weights) == 109
    assert sum(weights.values()) == 1732  # 173.2 points
    assert weights["F00"] == 71 and weights["K52"] == 3 and weights["R50"] == 1
    assert weights["S06"] + weights["E86"] + weights["K52"] == 50  # exactly 5.0
    assert [(b.name, b.lowest, b.highest) for b in hfrs_bands()] == [
        ("low", 0, 49),
        ("intermediate", 50, 150),
        ("high", 151, None),
    ]
    with pytest.raises(ValueError):
        tenths("0.25")


@pytest.mark.parametrize(
    ("codes", "score", "band"),
    [
        ((), 0, "low"),
        (("S06", "E86"), 47, "low"),
        (("S06", "E86", "K52"), 50, "intermediate"),  # 5.0 exactly
        (("F00", "G30", "R29", "K52"), 150, "intermediate"),  # 15.0 exactly
        (("F00", "G30", "R29", "D64"), 151, "high"),  # 15.1
    ],
)
def test_band_edges(conformed, codes, score, band):
    conformed.person("p1", born=OLD)
    if codes:
        conformed.episode("p1", "2024-06-01", *codes)
    person = persons_table(conformed)["p1"]
    assert person["hfrs_tenths"] == score
    assert person["hfrs_band"] == band


def test_window_edges_two_years_before_d(conformed):
    for name, start in [
        ("on_edge", "2023-03-31"),  # D - 2 years: outside
        ("day_after_edge", "2023-04-01"),
        ("on_d", "2025-03-31"),
        ("after_d", "2025-04-01"),
    ]:
        conformed.person(name, born=OLD).episode(name, start, "F00")
    persons = persons_table(conformed)
    assert {n: p["hfrs_tenths"] for n, p in persons.items()} == {
        "on_edge": 0,
        "day_after_edge": 71,
        "on_d": 71,
        "after_d": 0,
    }


def test_window_on_29_february(conformed):
    conformed.person("p1", born=OLD).episode("p1", "2022-02-28", "F00")  # D - 2y: outside
    conformed.person("p2", born=OLD).episode("p2", "2022-03-01", "F00")
    persons = persons_table(conformed, date(2024, 2, 29))
    assert persons["p1"]["hfrs_tenths"] == 0 and persons["p2"]["hfrs_tenths"] == 71


def test_distinct_groups_count_once(conformed):
    conformed.person("p1", born=OLD)
    conformed.episode("p1", "2024-01-01", "F001", "F009", "F00")  # one group, three codes
    conformed.episode("p1", "2024-06-01", None, "F00", "R54")  # again in another episode
    assert persons_table(conformed)["p1"]["hfrs_tenths"] == 71 + 22


def test_only_persons_75_and_over_have_a_score(conformed):
    conformed.person("young", born=SIXTY_EIGHT).episode("young", "2024-06-01", "F00")
    conformed.person("turns_75_on_d", born="1950-03-31").episode(
        "turns_75_on_d", "2024-06-01", "F00"
    )
    persons = persons_table(conformed)
    assert persons["young"]["hfrs_tenths"] is None and persons["young"]["hfrs_band"] is None
    assert persons["turns_75_on_d"]["hfrs_tenths"] == 71


def test_long_term_support_rules(conformed):
    cases = {
        "open": dict(start="2024-01-01"),
        "ends_on_d": dict(start="2024-01-01", end="2025-03-31"),
        "ended_before_d": dict(start="2024-01-01", end="2025-03-30"),
        "starts_on_d": dict(start="2025-03-31"),
        "starts_after_d": dict(start="2025-04-01"),
        "residential": dict(start="2024-01-01", service="Long Term Support: Residential Care"),
        "short_term": dict(start="2024-01-01", service="Short Term Support: ST-Max"),
        "carer_support": dict(start="2024-01-01", service="Carer Support"),
        "assessment_only": dict(start="2024-01-01", event_type="Assessment"),
        "review_only": dict(start="2024-01-01", event_type="Review"),
        "no_service_type": dict(start="2024-01-01", service=None),
    }
    for name, care in cases.items():
        conformed.person(name, born=SIXTY_EIGHT).care(name, **care)
    conformed.person("young", born="1990-01-01").care("young", start="2024-01-01")
    persons = persons_table(conformed)
    supported = {n for n, p in persons.items() if p["long_term_support"]}
    assert supported == {"open", "ends_on_d", "starts_on_d", "residential"}
    assert persons["young"]["long_term_support"] is None
    assert persons["short_term"]["long_term_support"] is False


def test_hes_code_quirks_score_through_conform(tmp_path):
    from indices.measures.persons import build_persons
    from indices.sources.conform import conform_source
    from indices.sources.extracts import check_raw_folder
    from indices.sources.registry import SOURCES
    from tests.conftest import PATIENT_COLUMNS, write_csv
    from tests.test_conform import KEY, register_row

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
    build_persons(warehouse / "conformed", D, {"E06000001": path})  # LSOA E01011949
    score, band = (
        duckdb.connect()
        .execute(f"SELECT hfrs_tenths, hfrs_band FROM read_parquet('{path}')")
        .fetchone()
    )
    weights = hfrs_weights()
    assert score == weights["R54"] + weights["F00"] + weights["G30"] + weights["W19"]
    assert band == "high"  # 2.2 + 7.1 + 4.0 + 3.2 = 16.5
