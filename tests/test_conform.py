"""Conforming raw extracts: each disposition on hand-made files, and every row accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indices.core.duck import query_rows, sql_str
from indices.sources.conform import conform_source
from indices.sources.extracts import check_raw_folder
from indices.sources.pseudonym import is_valid_nhs_number
from indices.sources.registry import SOURCES
from tests.conftest import ASC_HEADER, PATIENT_COLUMNS, write_csv

KEY = b"test-key"
VALID = ["9434765919", "4010232137", "9876543210", "1234567881"]
assert all(is_valid_nhs_number(n) for n in VALID)


def register_row(nhs: str, **changes: str) -> list[str]:
    row = {
        "nhs_number": nhs,
        "date_of_birth": "1940-05-01",
        "sex": "1",
        "lsoa11_code": "E01011949",
        "practice_code": "A81001",
        "registration_start": "2000-01-01",
        "registration_end": "",
        "date_of_death": "",
    } | changes
    return [row[c] for c in PATIENT_COLUMNS]


def conform(raw: Path, warehouse: Path, source: str):
    found = check_raw_folder(raw, ())
    return conform_source(SOURCES[source], found[source], warehouse, KEY)


def quarantine_reasons(result) -> dict[int, str]:
    rows = query_rows(
        f"SELECT row_number, reason FROM read_parquet({sql_str(result.quarantine_path)})"
    )
    return dict(rows)


@pytest.fixture()
def register(tmp_path: Path):
    raw = tmp_path / "raw"
    rows = [
        register_row("943 476 5919"),  # 1: spaces normalised
        register_row("9434765918"),  # 2: bad check digit
        register_row(""),  # 3: blank
        register_row("123456789"),  # 4: nine digits
        register_row("4010232137", sex="M", lsoa11_code="E01999999"),  # 5: sex, LSOA fixed
        register_row("4010232137", sex="M", lsoa11_code="E01999999"),  # 6: exact duplicate
        register_row("9876543210", date_of_birth="1950-01-01"),  # 7: conflicting identity
        register_row("9876543210", date_of_birth="1951-01-01", registration_start="2010-01-01"),
        register_row("1234567881", registration_start="01/02/2001", lsoa11_code=""),  # 9: UK date
        register_row("1234567881", registration_start="2001-02-30"),  # 10: invalid date
        register_row("1234567881", date_of_birth="1899-12-31"),  # 11: implausible
        register_row("1234567881", registration_start="2026-01-01"),  # 12: after extract date
    ]
    write_csv(raw / "gp_patients" / "gp_patients_2025-03-31.csv", PATIENT_COLUMNS, rows)
    return raw, tmp_path / "warehouse"


def test_register_dispositions(register):
    raw, warehouse = register
    result = conform(raw, warehouse, "gp_patients")
    assert quarantine_reasons(result) == {
        2: "invalid_nhs_number",
        3: "invalid_nhs_number",
        4: "invalid_nhs_number",
        6: "duplicate",
        7: "conflicting_identity",
        8: "conflicting_identity",
        10: "invalid_date",
        11: "implausible_date",
        12: "implausible_date",
    }
    (entry,) = result.ledger
    assert entry.rows_read == 12 and entry.conformed == 3 and entry.balanced
    assert entry.corrections == {
        "nhs_normalised": 1,
        "unknown_sex": 1,
        "unknown_lsoa": 2,
        "uk_date": 1,
    }
    rows = query_rows(
        "SELECT sex, lsoa11_code, registration_start::VARCHAR FROM read_parquet("
        f"{sql_str(result.conformed_path)}) ORDER BY registration_start"
    )
    assert sorted(rows, key=str) == sorted(
        [("1", "E01011949", "2000-01-01"), ("X", None, "2000-01-01"), ("1", None, "2001-02-01")],
        key=str,
    )


def test_no_nhs_number_is_stored(register):
    raw, warehouse = register
    conform(raw, warehouse, "gp_patients")
    for path in warehouse.rglob("*"):
        if path.is_file() and path.name != "pseudonym.key":
            content = path.read_bytes()
            for number in VALID:
                assert number.encode() not in content, f"{number} found in {path}"
            assert b"943 476 5919" not in content


def test_events_dispositions(register):
    raw, warehouse = register
    conform(raw, warehouse, "gp_patients")
    header = [" NHS_Number ", "Event_Date", "SNOMED_CODE", "value", "unit", "batch"]
    rows = [
        ["9434765919", "2024-01-01", "160983005", "", "", "7"],  # 1 conformed
        ["9434765919", "2024-01-01", "16098300X", "", "", "7"],  # 2 invalid code
        ["9434765919", "2024-01-01", "12345", "", "", "7"],  # 3 too short
        ["4010232137", "2030-01-01", "160983005", "", "", "7"],  # 4 implausible
        ["9876543210", "2024-01-01", "160983005", "", "", "7"],  # 5 conflicting identity: known
        ["4505577104", "2024-01-01", "160983005", "", "", "7"],  # 6 valid, in no register
        ["9434765919", "31/12/2023", "160983005", "12.5", "kg", "7"],  # 7 UK date
        ["9434765919", "not a date", "160983005", "", "", "7"],  # 8 invalid date
    ]
    path = write_csv(raw / "gp_events" / "gp_events_2025-03-31.csv", header, rows)
    with open(path, "a") as handle:
        handle.write("9434765919,2024-01-01\n")  # 9 malformed: too few fields
        handle.write("9434765919,2024-02-01,160983005,,,7\n")  # 10 conformed after it
        handle.write("9434765919,2024-0")  # 11 truncated last line
    result = conform(raw, warehouse, "gp_events")
    assert quarantine_reasons(result) == {
        2: "invalid_code",
        3: "invalid_code",
        4: "implausible_date",
        6: "unknown_person",
        8: "invalid_date",
        9: "malformed_row",
        11: "malformed_row",
    }
    (entry,) = result.ledger
    assert entry.extra_columns == ["batch"]
    assert entry.rows_read == 11 and entry.conformed == 4 and entry.balanced
    assert entry.corrections["uk_date"] == 1


def test_a_file_missing_a_needed_column_is_rejected(tmp_path):
    raw = tmp_path / "raw"
    write_csv(
        raw / "gp_medications" / "gp_medications_2025-03-31.csv",
        ["nhs_number", "issue_date"],
        [["9434765919", "2024-01-01"]],
    )
    write_csv(raw / "gp_patients" / "gp_patients_2025-03-31.csv", PATIENT_COLUMNS, [])
    result = conform(raw, tmp_path / "warehouse", "gp_patients")
    assert result.ledger[0].rejected == "gp_patients_2025-03-31.csv: no data rows"
    result = conform(raw, tmp_path / "warehouse", "gp_medications")
    (entry,) = result.ledger
    assert entry.rejected == (
        "gp_medications_2025-03-31.csv: missing column(s) bnf_code needed by a measure"
    )
    assert result.rows_conformed == 0


def test_a_missing_unused_column_is_reported_and_the_file_used(tmp_path):
    raw = tmp_path / "raw"
    columns = [c for c in PATIENT_COLUMNS if c != "practice_code"]
    row = register_row("9434765919")
    del row[PATIENT_COLUMNS.index("practice_code")]
    write_csv(raw / "gp_patients" / "gp_patients_2025-03-31.csv", columns, [row])
    result = conform(raw, tmp_path / "warehouse", "gp_patients")
    (entry,) = result.ledger
    assert entry.missing_columns == ["practice_code"] and entry.conformed == 1
    sidecar = json.loads((tmp_path / "warehouse/conformed/gp_patients.json").read_text())
    assert sidecar["inputs"][0]["role"] == "raw/gp_patients"
    assert len(sidecar["inputs"][0]["sha256"]) == 64


def test_empty_and_undecodable_files_are_rejected(tmp_path):
    raw = tmp_path / "raw"
    folder = raw / "gp_patients"
    folder.mkdir(parents=True)
    (folder / "gp_patients_2025-03-31.csv").write_bytes(b"")
    result = conform(raw, tmp_path / "warehouse", "gp_patients")
    assert result.ledger[0].rejected == "gp_patients_2025-03-31.csv: empty file"
    (folder / "gp_patients_2025-03-31.csv").write_bytes(
        (",".join(PATIENT_COLUMNS) + "\n").encode() + b"9434765919,1940-05-01,1,E01011949,\xe9"
        b"81001,2000-01-01,,\n"
    )
    result = conform(raw, tmp_path / "warehouse", "gp_patients")
    assert result.ledger[0].rejected.startswith(
        "gp_patients_2025-03-31.csv: not valid UTF-8 text (byte 0xe9"
    )


def test_a_header_only_social_care_file_is_an_authority_with_no_events(tmp_path):
    raw = tmp_path / "raw"
    write_csv(
        raw / "gp_patients" / "gp_patients_2025-03-31.csv",
        PATIENT_COLUMNS,
        [register_row(VALID[0])],
    )
    write_csv(raw / "asc_cld" / "asc_cld_E06000053_2025-03-31.csv", ASC_HEADER, [])
    conform(raw, tmp_path / "warehouse", "gp_patients")
    result = conform(raw, tmp_path / "warehouse", "asc_cld")
    (entry,) = result.ledger
    assert entry.rejected is None and entry.rows_read == 0 and entry.balanced
