"""eFI and the population at D on hand-built persons, exactly as the definitions say."""

from __future__ import annotations

from datetime import date

import pytest

from indices.core.duck import query_rows
from indices.measures.dates import years_before
from indices.measures.persons import deficit_column
from tests.helpers import D, persons_table

BNF = [f"0{i}0000000AAAAAA"[:9] + "AAAAAA" for i in range(1, 9)]  # distinct 9-char substances


def with_deficits(conformed, person: str, codes: list[str], on: str = "2020-01-01"):
    conformed.person(person)
    for code in codes:
        conformed.event(person, on, code)


@pytest.mark.parametrize(
    ("count", "category"),
    [
        (0, "fit"),
        (4, "fit"),
        (5, "mild"),
        (8, "mild"),
        (9, "moderate"),
        (12, "moderate"),
        (13, "severe"),
        (20, "severe"),
    ],
)
def test_category_boundaries(conformed, deficit_codes, count, category):
    codes = [deficit_codes[d] for d in sorted(deficit_codes)[:count]]
    with_deficits(conformed, "p1", codes)
    person = persons_table(conformed)["p1"]
    assert person["efi_deficits"] == count
    assert person["efi"] == pytest.approx(count / 36)
    assert person["efi_category"] == category


def test_a_deficit_coded_many_times_counts_once(conformed, deficit_codes):
    codes_of_falls = query_rows(
        "SELECT snomed_code FROM read_csv('data/reference/frailty/efi_snomed_codes.csv', "
        "all_varchar = true) WHERE deficit_id = 'falls' LIMIT 3"
    )
    conformed.person("p1")
    for (code,) in codes_of_falls:
        conformed.event("p1", "2019-05-01", code).event("p1", "2021-05-01", code)
    person = persons_table(conformed)["p1"]
    assert person["efi_deficits"] == 1
    assert person[deficit_column("falls")] is True


def test_events_after_the_reference_date_do_not_count(conformed, deficit_codes):
    conformed.person("p1")
    conformed.event("p1", "2025-03-31", deficit_codes["falls"])  # on D: counts
    conformed.event("p1", "2025-04-01", deficit_codes["anaemia"])  # after D: does not
    person = persons_table(conformed)["p1"]
    assert person[deficit_column("falls")] is True
    assert person[deficit_column("anaemia")] is False
    assert person["efi_deficits"] == 1


def _issue_five(conformed, person: str, last_date: str, first_date: str = "2025-01-01"):
    conformed.person(person)
    for bnf in BNF[:4]:
        conformed.issue(person, first_date, bnf)
    conformed.issue(person, last_date, BNF[4])


def test_polypharmacy_window_edges(conformed):
    one_year_before = years_before(D, 1).isoformat()  # 2024-03-31: excluded
    _issue_five(conformed, "on_edge", one_year_before)
    _issue_five(conformed, "day_after_edge", "2024-04-01")
    _issue_five(conformed, "on_d", "2025-03-31")
    _issue_five(conformed, "after_d", "2025-04-01")
    conformed.person("four_only")
    for bnf in BNF[:4]:
        conformed.issue("four_only", "2025-01-01", bnf)
        conformed.issue("four_only", "2025-02-01", bnf)  # same substances again: still four
    persons = persons_table(conformed)
    flag = deficit_column("polypharmacy")
    assert persons["on_edge"][flag] is False
    assert persons["day_after_edge"][flag] is True
    assert persons["on_d"][flag] is True
    assert persons["after_d"][flag] is False
    assert persons["four_only"][flag] is False


def test_substance_is_the_first_nine_characters(conformed):
    conformed.person("p1")
    for presentation in ("0212000B0AAABAB", "0212000B0AAACAC", "0212000B0AAADAD"):
        conformed.issue("p1", "2025-01-01", presentation)  # one substance, three presentations
    for bnf in BNF[:3]:
        conformed.issue("p1", "2025-01-01", bnf)
    assert persons_table(conformed)["p1"][deficit_column("polypharmacy")] is False  # 4 substances


def test_polypharmacy_window_on_29_february():
    assert years_before(date(2024, 2, 29), 1) == date(2023, 2, 28)
    assert years_before(date(2024, 2, 29), 2) == date(2022, 2, 28)
    assert years_before(date(2025, 3, 1), 1) == date(2024, 3, 1)


def test_population_deaths_and_ended_registrations(conformed):
    conformed.person("alive")
    conformed.person("died_before", died="2024-12-01", end="2024-12-01")
    conformed.person("died_on_d", died="2025-03-31")
    conformed.person("dies_after", died="2025-04-02")
    conformed.person("ended_on_d", end="2025-03-31")
    conformed.person("ends_after", end="2025-04-01")
    conformed.person("starts_after", start="2025-04-01")
    conformed.person("starts_on_d", start="2025-03-31")
    persons = persons_table(conformed)
    assert set(persons) == {"alive", "dies_after", "ends_after", "starts_on_d"}


def test_death_on_another_registration_removes_the_person(conformed):
    conformed.person("p1", start="2010-01-01", end="2020-01-01", died="2019-12-31")
    conformed.person("p1", start="2020-01-01", lsoa="E01011950")
    assert "p1" not in persons_table(conformed)


def test_two_registrations_the_latest_start_counts(conformed):
    conformed.person("moved", start="2010-01-01", end="2022-06-30", lsoa="E01011949")
    conformed.person("moved", start="2022-07-01", lsoa="E01011950")
    conformed.person("overlap", start="2010-01-01", lsoa="E01011949")
    conformed.person("overlap", start="2023-01-01", lsoa="E01011951")
    conformed.person("tie", start="2020-01-01", lsoa=None)
    conformed.person("tie", start="2020-01-01", lsoa="E01011952")
    conformed.person("tie", start="2020-01-01", lsoa="E01011950")
    persons = persons_table(conformed)
    assert persons["moved"]["lsoa11_code"] == "E01011950"
    assert persons["overlap"]["lsoa11_code"] == "E01011951"
    assert persons["tie"]["lsoa11_code"] == "E01011950"  # a known LSOA, then the lowest code
    assert persons["tie"]["lad19_code"] == "E06000001"  # Hartlepool, from the lookup


@pytest.mark.parametrize(
    ("born", "reference", "age"),
    [
        ("1960-03-31", "2025-03-31", 65),  # birthday on D
        ("1960-04-01", "2025-03-31", 64),  # birthday the day after D
        ("1960-02-29", "2025-02-28", 64),  # leap-day birthday: reached on 1 March
        ("1960-02-29", "2025-03-01", 65),
        ("1960-02-29", "2024-02-29", 64),
    ],
)
def test_age_in_completed_years(conformed, born, reference, age):
    conformed.person("p1", born=born)
    person = persons_table(conformed, date.fromisoformat(reference))["p1"]
    assert person["age"] == age
    assert (person["efi_category"] is not None) == (age >= 65)


def test_under_65_has_no_efi(conformed, deficit_codes):
    conformed.person("young", born="1990-01-01")
    conformed.event("young", "2020-01-01", deficit_codes["falls"])
    person = persons_table(conformed)["young"]
    assert person["efi_deficits"] is None and person["efi_category"] is None


def test_implausible_efi_shares_are_reported(conformed, deficit_codes):
    from indices.core.settings import Settings
    from indices.measures import parts

    for i in range(10):
        with_deficits(
            conformed, f"frail{i}", [deficit_codes[d] for d in sorted(deficit_codes)[:14]]
        )
    root = conformed.write()
    settings = Settings.resolve("unused", root, "unused", D)
    parts.persons(settings, ["E06000001"])
    problems, observed = parts.implausible_shares(settings, "efi")
    assert observed == {"severe": 1.0}
    assert [p.split(":")[0] for p in problems] == ["fit", "mild", "moderate", "severe"]
