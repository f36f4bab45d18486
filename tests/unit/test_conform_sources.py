"""Conforming hes_apc, asc_cld, fingertips and gp_medications: each disposition on small hand-made
files, every row accounted for in the ledger, and no NHS number stored in the warehouse."""

from __future__ import annotations

import codecs
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indices.core.duck import query_rows, sql_str
from indices.sources.pseudonym import is_valid_nhs_number, pseudonymise
from tests.helpers import (
    ASC_FILE,
    ASC_HEADER,
    FT_FILE,
    FT_HEADER,
    HES_FILE,
    HES_HEADER,
    KEY,
    UNKNOWN,
    V0,
    V1,
    V2,
    V3,
    VALID,
    append,
    asc_file,
    asc_row,
    conform,
    csv_text,
    ft_row,
    hes_row,
    only_entry,
    quarantine_reasons,
    rows_of,
    write_csv,
)

CHECK_TEN = "1000000010"  # its check digit computes to 10: no valid number has this prefix
assert not is_valid_nhs_number(CHECK_TEN)

ASC_NEEDED = [
    "LA_Code",
    "NHS_Number",
    "Event_Type",
    "Event_Start_Date",
    "Event_End_Date",
    "Service_Type",
]
MED_FILE = "gp_medications_2025-03-31.csv"
MED_HEADER = ["nhs_number", "issue_date", "bnf_code"]
BNF = "0205051R0AAAAAA"


# -- helpers ---------------------------------------------------------------------------------------


def assert_no_nhs_number_stored(warehouse: Path, *written: str) -> None:
    for path in warehouse.rglob("*"):
        if path.is_file() and path.name != "pseudonym.key":
            content = path.read_bytes()
            for number in (*VALID, UNKNOWN, *written):
                assert number.encode() not in content, f"{number} found in {path}"


def person_id(nhs: str) -> str:
    return pseudonymise(KEY, [nhs])[0]


# -- hes_apc ---------------------------------------------------------------------------------------


def test_hes_nhs_numbers_are_normalised_or_quarantined(registered):
    raw, warehouse = registered
    rows = [
        hes_row("943-476-5919", "1"),  # 1 hyphens: normalised
        hes_row(" 401 023 2137 ", "2"),  # 2 spaces: normalised
        hes_row("9434765918", "3"),  # 3 wrong check digit
        hes_row("", "4"),  # 4 blank
        hes_row("943476591", "5"),  # 5 nine digits
        hes_row("94347659190", "6"),  # 6 eleven digits
        hes_row(CHECK_TEN, "7"),  # 7 check digit would be 10
        hes_row(V2, "8"),  # 8 as it should be
    ]
    write_csv(raw / "hes_apc" / HES_FILE, HES_HEADER, rows)
    result = conform(raw, warehouse, "hes_apc")
    assert quarantine_reasons(result) == {n: "invalid_nhs_number" for n in range(3, 8)}
    entry = only_entry(result)
    assert entry.rows_read == 8 and entry.conformed == 3
    assert entry.corrections == {"nhs_normalised": 2}
    assert rows_of(result.conformed_path, "epikey, person_id", "epikey") == [
        ("1", person_id(V0)),
        ("2", person_id(V1)),
        ("8", person_id(V2)),
    ]
    masked = query_rows(
        f"SELECT raw_values FROM read_parquet({sql_str(result.quarantine_path)}) "
        "WHERE row_number = 3"
    )
    assert json.loads(masked[0][0])["nhs_number"] == "nnnnnnnnnn"
    assert_no_nhs_number_stored(warehouse, "9434765918", "943-476-5919", "401 023 2137")


def test_hes_exact_duplicates_and_conflicting_episode_versions(registered):
    raw, warehouse = registered
    rows = [
        hes_row(V0, "1"),  # 1 conformed
        hes_row(V0, "1"),  # 2 exact copy
        hes_row(V1, "2", diag_4_01="I10"),  # 3 one version of episode 2
        hes_row(V1, "2", diag_4_01="I11"),  # 4 another version
        hes_row(V1, "2", diag_4_01="I10"),  # 5 exact copy of version 3
        hes_row(V0, "3"),  # 6 same content as 1 but its own episode: conformed
    ]
    write_csv(raw / "hes_apc" / HES_FILE, HES_HEADER, rows)
    result = conform(raw, warehouse, "hes_apc")
    assert quarantine_reasons(result) == {
        2: "duplicate",
        3: "conflicting_duplicate",
        4: "conflicting_duplicate",
        5: "duplicate",
    }
    entry = only_entry(result)
    assert entry.rows_read == 6 and entry.conformed == 2
    assert rows_of(result.conformed_path, "epikey", "epikey") == [("1",), ("3",)]


def test_hes_sentinel_dates_are_read_as_no_date_and_counted(registered):
    raw, warehouse = registered
    rows = [
        hes_row(V0, "1", admidate="1800-01-01", epiend="1801-01-01", disdate="1800-01-01"),
        hes_row(V0, "2", admidate="1801-01-01", epiend="2024-01-02", disdate=""),
    ]
    write_csv(raw / "hes_apc" / HES_FILE, HES_HEADER, rows)
    result = conform(raw, warehouse, "hes_apc")
    assert quarantine_reasons(result) == {}
    entry = only_entry(result)
    assert entry.rows_read == 2 and entry.conformed == 2
    assert entry.corrections == {"sentinel_date": 4}
    columns = "epikey, admidate::VARCHAR, epistart::VARCHAR, epiend::VARCHAR, disdate::VARCHAR"
    assert rows_of(result.conformed_path, columns, "epikey") == [
        ("1", None, "2024-01-01", None, None),
        ("2", None, "2024-01-01", "2024-01-02", None),
    ]


def test_hes_uk_dates_are_read_and_unparseable_dates_quarantined(registered):
    raw, warehouse = registered
    rows = [
        hes_row(
            V0,
            "1",
            admidate="31/12/2023",
            epistart="01/02/2024",
            epiend="02/02/2024",
            disdate="03/02/2024",
        ),  # 1 four UK dates
        hes_row(V0, "2", epistart="2024-02-30"),  # 2 no such day
        hes_row(V0, "3", disdate="not a date"),  # 3
        hes_row(V0, "4", admidate="31/02/2024"),  # 4 no such UK day
        hes_row(V0, "5", epiend="2024/01/03"),  # 5 neither layout
        hes_row(V0, "6", epistart=""),  # 6 an episode needs its start
    ]
    write_csv(raw / "hes_apc" / HES_FILE, HES_HEADER, rows)
    result = conform(raw, warehouse, "hes_apc")
    assert quarantine_reasons(result) == {n: "invalid_date" for n in range(2, 7)}
    entry = only_entry(result)
    assert entry.rows_read == 6 and entry.conformed == 1
    assert entry.corrections == {"uk_date": 4}
    columns = "admidate::VARCHAR, epistart::VARCHAR, epiend::VARCHAR, disdate::VARCHAR"
    assert rows_of(result.conformed_path, columns, "epikey") == [
        ("2023-12-31", "2024-02-01", "2024-02-02", "2024-02-03")
    ]


def test_hes_admission_and_start_dates_must_be_plausible_but_ends_may_be_future(registered):
    raw, warehouse = registered
    rows = [
        hes_row(V0, "1", admidate="2024-01-01", epistart="2025-04-01"),  # 1 start after extract
        hes_row(V0, "2", admidate="2025-04-01"),  # 2 admission after extract
        hes_row(V0, "3", admidate="1899-12-31", epistart="1899-12-31"),  # 3 before 1900
        hes_row(V0, "4", admidate="1899-12-31"),  # 4 admission before 1900
        hes_row(V0, "5", epiend="2025-06-30", disdate="2025-07-01"),  # 5 planned ends: fine
        hes_row(
            V0, "6", admidate="2025-03-31", epistart="2025-03-31", epiend="", disdate=""
        ),  # 6 on the extract date itself
    ]
    write_csv(raw / "hes_apc" / HES_FILE, HES_HEADER, rows)
    result = conform(raw, warehouse, "hes_apc")
    assert quarantine_reasons(result) == {n: "implausible_date" for n in range(1, 5)}
    entry = only_entry(result)
    assert entry.rows_read == 6 and entry.conformed == 2
    assert rows_of(result.conformed_path, "epikey, epiend::VARCHAR, disdate::VARCHAR", "1") == [
        ("5", "2025-06-30", "2025-07-01"),
        ("6", None, None),
    ]


def test_hes_icd10_positions_are_normalised_or_emptied(registered):
    raw, warehouse = registered
    rows = [
        hes_row(V0, "1", diag_4_01="R54X", diag_4_02="I10-", diag_4_03="f00.1"),
        hes_row(V0, "2", diag_4_01="G309D", diag_4_02="M8190", diag_4_03="F00 1"),
        hes_row(V0, "3", diag_4_01="XYZ", diag_4_02="R5", diag_4_03="123"),  # all emptied
        hes_row(V0, "4", diag_4_01="n39.0", diag_4_02="", diag_4_03="?"),  # one emptied
        hes_row(V0, "5", diag_4_01="r54.x", diag_4_02=" E11 ", diag_4_03="E1190"),
    ]
    write_csv(raw / "hes_apc" / HES_FILE, HES_HEADER, rows)
    result = conform(raw, warehouse, "hes_apc")
    assert quarantine_reasons(result) == {}
    entry = only_entry(result)
    assert entry.rows_read == 5 and entry.conformed == 5
    assert entry.corrections == {"icd10_emptied": 4}
    assert rows_of(result.conformed_path, "diag_4_01, diag_4_02, diag_4_03", "epikey") == [
        ("R54", "I10", "F001"),
        ("G309", "M819", "F001"),
        (None, None, None),
        ("N390", None, None),
        ("R54", "E11", "E119"),
    ]


def test_hes_rows_of_unknown_persons_and_malformed_lines_are_quarantined(registered):
    raw, warehouse = registered
    path = write_csv(
        raw / "hes_apc" / HES_FILE, HES_HEADER, [hes_row(V0, "1"), hes_row(UNKNOWN, "2")]
    )
    append(path, f"{V0},3,2024-01-01\n")  # 3 too few fields
    append(
        path, f"{V0},4,2024-01-01,2024-01-01,2024-01-03,2024-01-03,21,R54X,,,x,y\n"
    )  # 4 too many
    append(path, f"{V1},5,2024-01-01,2024-01-01,2024-01-03,2024-01-03,21,I10,,\n")  # 5 conformed
    append(path, "943 476 5919,6,2024-0")  # 6 truncated last line
    result = conform(raw, warehouse, "hes_apc")
    assert quarantine_reasons(result) == {
        2: "unknown_person",
        3: "malformed_row",
        4: "malformed_row",
        6: "malformed_row",
    }
    entry = only_entry(result)
    assert entry.rows_read == 6 and entry.conformed == 2
    assert rows_of(result.conformed_path, "epikey", "epikey") == [("1",), ("5",)]
    assert_no_nhs_number_stored(warehouse, "943 476 5919")


def test_hes_admission_methods_outside_the_vocabulary_become_null(registered):
    raw, warehouse = registered
    rows = [
        hes_row(V0, "1", admimeth="21"),
        hes_row(V0, "2", admimeth="2a"),  # case ignored
        hes_row(V0, "3", admimeth="99"),  # unknown
        hes_row(V0, "4", admimeth=""),  # blank: not given, not unknown
        hes_row(V0, "5", admimeth="emergency"),  # unknown
    ]
    write_csv(raw / "hes_apc" / HES_FILE, HES_HEADER, rows)
    result = conform(raw, warehouse, "hes_apc")
    assert quarantine_reasons(result) == {}
    entry = only_entry(result)
    assert entry.conformed == 5 and entry.corrections == {"unknown_admimeth": 2}
    assert rows_of(result.conformed_path, "admimeth", "epikey") == [
        ("21",),
        ("2A",),
        (None,),
        (None,),
        (None,),
    ]


def test_hes_header_case_and_spacing_extra_and_missing_unneeded_columns(registered):
    raw, warehouse = registered
    header = [" nhs_NUMBER ", "EPIKEY", " epistart", "EpiEnd ", "Diag_4_01", "provider", "Spell"]
    rows = [[V0, "1", "2024-01-01", "2024-01-03", "R54X", "RXX", "9"]]
    write_csv(raw / "hes_apc" / HES_FILE, header, rows)
    result = conform(raw, warehouse, "hes_apc")
    entry = only_entry(result)
    assert entry.rejected is None and entry.conformed == 1
    assert entry.extra_columns == ["provider", "spell"]
    assert entry.missing_columns == [
        "admidate",
        "disdate",
        "admimeth",
        *(f"diag_4_{i:02d}" for i in range(2, 21)),
    ]
    columns = "person_id, epistart::VARCHAR, epiend::VARCHAR, admidate, diag_4_01, diag_4_02"
    assert rows_of(result.conformed_path, columns, "1") == [
        (person_id(V0), "2024-01-01", "2024-01-03", None, "R54", None)
    ]


def test_hes_file_missing_needed_columns_is_rejected_naming_them(registered):
    raw, warehouse = registered
    header = ["nhs_number", "epikey", "admidate", "epiend"]
    write_csv(raw / "hes_apc" / HES_FILE, header, [[V0, "1", "2024-01-01", "2024-01-03"]])
    result = conform(raw, warehouse, "hes_apc")
    entry = only_entry(result)
    assert entry.rejected == (
        f"{HES_FILE}: missing column(s) epistart, diag_4_01 needed by a measure"
    )
    assert entry.conformed == 0 and result.rows_conformed == 0
    assert quarantine_reasons(result) == {}


def test_hes_parquet_extract_of_strings_conforms_like_csv(registered):
    raw, warehouse = registered
    rows = [
        hes_row("943-476-5919", "1", admidate="1800-01-01", diag_4_02="f00.1"),
        hes_row(V0, "7", diag_4_01="I10"),  # one version of episode 7
        hes_row(V0, "7", diag_4_01="I11"),  # another
        hes_row(V1, "2", epistart="01/02/2024", diag_4_01="G309D", admimeth="2a"),
        hes_row(V1, "2", epistart="01/02/2024", diag_4_01="G309D", admimeth="2a"),  # duplicate
        hes_row(V2, "3", diag_4_01="XYZ", admimeth="99"),
        hes_row(UNKNOWN, "4"),
        hes_row("9434765918", "5"),
        hes_row(V3, "6", epistart="2030-01-01"),
    ]
    header = ["NHS_Number", *HES_HEADER[1:]]
    write_csv(raw / "hes_apc" / HES_FILE, header, rows)
    from_csv = conform(raw, warehouse, "hes_apc")
    csv_entry = only_entry(from_csv)
    csv_rows = rows_of(from_csv.conformed_path, "*", "epikey")
    csv_reasons = quarantine_reasons(from_csv)

    (raw / "hes_apc" / HES_FILE).unlink()
    columns = {  # every column a string; blank cells as nulls
        name: pa.array([r[i] or None for r in rows], pa.string()) for i, name in enumerate(header)
    }
    pq.write_table(pa.table(columns), raw / "hes_apc" / "hes_apc_2025-03-31.parquet")
    from_parquet = conform(raw, warehouse, "hes_apc")
    entry = only_entry(from_parquet)

    assert csv_reasons == {
        2: "conflicting_duplicate",
        3: "conflicting_duplicate",
        5: "duplicate",
        7: "unknown_person",
        8: "invalid_nhs_number",
        9: "implausible_date",
    }
    assert quarantine_reasons(from_parquet) == csv_reasons
    assert rows_of(from_parquet.conformed_path, "*", "epikey") == csv_rows
    assert (entry.rows_read, entry.conformed, entry.quarantined, entry.corrections) == (
        csv_entry.rows_read,
        csv_entry.conformed,
        csv_entry.quarantined,
        csv_entry.corrections,
    )
    assert entry.rows_read == 9 and entry.conformed == 3
    assert entry.corrections == {
        "nhs_normalised": 1,
        "sentinel_date": 1,
        "uk_date": 1,
        "icd10_emptied": 1,
        "unknown_admimeth": 1,
    }
    columns = (
        "epikey, person_id, admidate::VARCHAR, epistart::VARCHAR, admimeth, diag_4_01, diag_4_02"
    )
    assert rows_of(from_parquet.conformed_path, columns, "epikey") == [
        ("1", person_id(V0), None, "2024-01-01", "21", "R54", "F001"),
        ("2", person_id(V1), "2024-01-01", "2024-02-01", "2A", "G309", None),
        ("3", person_id(V2), "2024-01-01", "2024-01-01", None, None, None),
    ]
    assert_no_nhs_number_stored(warehouse, "9434765918", "943-476-5919")


# -- asc_cld ---------------------------------------------------------------------------------------


def test_asc_nhs_numbers_blank_is_no_nhs_number_and_invalid_is_invalid(registered):
    raw, warehouse = registered
    rows = [
        asc_row("943 476 5919", "C1"),  # 1 normalised
        asc_row("401-023-2137", "C2"),  # 2 normalised
        asc_row("", "C3"),  # 3 blank
        asc_row("   ", "C4"),  # 4 blank
        asc_row("9434765918", "C5"),  # 5 wrong check digit
        asc_row("12345", "C6"),  # 6 not 10 digits
        asc_row(V2, "C7"),  # 7 as it should be
    ]
    write_csv(raw / "asc_cld" / ASC_FILE, ASC_HEADER, rows)
    result = conform(raw, warehouse, "asc_cld")
    assert quarantine_reasons(result) == {
        3: "no_nhs_number",
        4: "no_nhs_number",
        5: "invalid_nhs_number",
        6: "invalid_nhs_number",
    }
    entry = only_entry(result)
    assert entry.rows_read == 7 and entry.conformed == 3
    assert entry.corrections == {"nhs_normalised": 2}
    assert rows_of(result.conformed_path, "client_id, person_id, source_file", "client_id") == [
        ("C1", person_id(V0), ASC_FILE),
        ("C2", person_id(V1), ASC_FILE),
        ("C7", person_id(V2), ASC_FILE),
    ]
    assert_no_nhs_number_stored(warehouse, "9434765918", "943 476 5919", "401-023-2137")


def test_asc_dates_uk_expected_iso_counted_and_faults_quarantined(registered):
    raw, warehouse = registered
    rows = [
        asc_row(V0, "C1", Event_Start_Date="01/02/2024"),  # 1 day first: 1 February
        asc_row(V0, "C2", Event_Start_Date="2024-02-01", Event_End_Date="2024-03-01"),  # 2 ISO
        asc_row(V0, "C3", Event_Start_Date="31/02/2024"),  # 3 no such day
        asc_row(V0, "C4", Event_End_Date="someday"),  # 4
        asc_row(V0, "C5", Event_Start_Date="01/04/2025"),  # 5 after the extract date
        asc_row(V0, "C6", Event_Start_Date="31/12/1899"),  # 6 before 1900
        asc_row(V0, "C7", Event_End_Date="31/12/2026"),  # 7 a planned end: fine
        asc_row(V0, "C8", Event_Start_Date="31/03/2025"),  # 8 the extract date itself
    ]
    write_csv(raw / "asc_cld" / ASC_FILE, ASC_HEADER, rows)
    result = conform(raw, warehouse, "asc_cld")
    assert quarantine_reasons(result) == {
        3: "invalid_date",
        4: "invalid_date",
        5: "implausible_date",
        6: "implausible_date",
    }
    entry = only_entry(result)
    assert entry.rows_read == 8 and entry.conformed == 4
    assert entry.corrections == {"iso_date": 2}
    columns = "client_id, event_start_date::VARCHAR, event_end_date::VARCHAR"
    assert rows_of(result.conformed_path, columns, "client_id") == [
        ("C1", "2024-02-01", None),
        ("C2", "2024-02-01", "2024-03-01"),
        ("C7", "2024-02-01", "2026-12-31"),
        ("C8", "2025-03-31", None),
    ]


def test_asc_vocabularies_ignore_case_and_unknown_values_are_counted(registered):
    raw, warehouse = registered
    rows = [
        asc_row(
            V0,
            "C1",
            Gender="male",
            Event_Type="assessment",
            Service_Type="long term support: community",
        ),
        asc_row(V0, "C2", Gender="M"),  # unknown gender
        asc_row(V0, "C3", Event_Type="Visit"),  # unknown event type
        asc_row(V0, "C4", Service_Type="Day Care"),  # unknown service type
        asc_row(V0, "C5", Event_Type="Request", Service_Type=""),  # blank service: not unknown
        asc_row(V0, "C6", Gender="UNKNOWN", Event_Type="REVIEW"),
    ]
    write_csv(raw / "asc_cld" / ASC_FILE, ASC_HEADER, rows)
    result = conform(raw, warehouse, "asc_cld")
    assert quarantine_reasons(result) == {}
    entry = only_entry(result)
    assert entry.rows_read == 6 and entry.conformed == 6
    assert entry.corrections == {
        "unknown_gender": 1,
        "unknown_event_type": 1,
        "unknown_service_type": 1,
    }
    nursing = "Long Term Support: Nursing Care"
    assert rows_of(result.conformed_path, "gender, event_type, service_type", "client_id") == [
        ("Male", "Assessment", "Long Term Support: Community"),
        ("Unknown", "Service", nursing),
        ("Female", None, nursing),
        ("Female", "Service", None),
        ("Female", "Request", None),
        ("Unknown", "Review", nursing),
    ]


def test_asc_duplicates_unknown_persons_and_malformed_lines_are_quarantined(registered):
    raw, warehouse = registered
    rows = [asc_row(V0, "C1"), asc_row(V0, "C1"), asc_row(UNKNOWN, "C3")]
    path = write_csv(raw / "asc_cld" / ASC_FILE, ASC_HEADER, rows)
    append(path, f"E06000001,{V1},C4,Male,Service\n")  # 4 too few fields
    append(path, f"E06000001,{V1},C5,Male,Review,01/03/2024,,,\n")  # 5 conformed
    append(path, f"E06000001,{V1},C6,Male,Rev")  # 6 truncated last line
    result = conform(raw, warehouse, "asc_cld")
    assert quarantine_reasons(result) == {
        2: "duplicate",
        3: "unknown_person",
        4: "malformed_row",
        6: "malformed_row",
    }
    entry = only_entry(result)
    assert entry.rows_read == 6 and entry.conformed == 2
    assert rows_of(result.conformed_path, "client_id", "client_id") == [("C1",), ("C5",)]


def test_asc_files_in_windows_1252_or_utf8_with_bom_are_decoded(registered):
    raw, warehouse = registered
    dash = "Physical Support – Personal Care Support"
    cafe = "Café visits for Zoë"
    files = {
        # authority: (extension, encoding, BOM, reasons)
        "E06000001": ("csv", "cp1252", b"", [dash, cafe]),
        "E06000002": ("csv", "utf-8", codecs.BOM_UTF8, [dash, cafe]),
        "E06000003": ("csv.gz", "cp1252", b"", [cafe]),
    }
    for lad, (ext, encoding, bom, reasons) in files.items():
        rows = [
            asc_row(V0, f"{lad}-{i}", LA_Code=lad, Primary_Support_Reason=reason)
            for i, reason in enumerate(reasons)
        ]
        content = bom + csv_text(ASC_HEADER, rows).encode(encoding)
        asc_file(raw, lad, ext).write_bytes(gzip.compress(content) if ext == "csv.gz" else content)
    assert b"\x96" in asc_file(raw, "E06000001").read_bytes()  # the en dash in Windows-1252
    result = conform(raw, warehouse, "asc_cld")
    ledger = {entry.file: entry for entry in result.ledger}
    assert {f: (e.encoding, e.rejected, e.conformed) for f, e in ledger.items()} == {
        "asc_cld_E06000001_2025-03-31.csv": ("cp1252", None, 2),
        "asc_cld_E06000002_2025-03-31.csv": ("utf-8", None, 2),
        "asc_cld_E06000003_2025-03-31.csv.gz": ("cp1252", None, 1),
    }
    assert all(e.balanced and e.missing_columns == e.extra_columns == [] for e in result.ledger)
    columns = "la_code, client_id, primary_support_reason"
    assert rows_of(result.conformed_path, columns, "client_id") == [
        ("E06000001", "E06000001-0", dash),
        ("E06000001", "E06000001-1", cafe),
        ("E06000002", "E06000002-0", dash),
        ("E06000002", "E06000002-1", cafe),
        ("E06000003", "E06000003-0", cafe),
    ]


def test_asc_file_neither_utf8_nor_windows_1252_is_rejected(registered):
    raw, warehouse = registered
    text = csv_text(ASC_HEADER, [asc_row(V0, "C1", Primary_Support_Reason="Caf@")])
    path = asc_file(raw, "E06000001")
    path.write_bytes(text.encode("ascii").replace(b"@", b"\x81"))  # undefined in both
    result = conform(raw, warehouse, "asc_cld")
    entry = only_entry(result)
    assert entry.rejected is not None
    assert entry.rejected.startswith(f"{ASC_FILE}: ") and "\n" not in entry.rejected
    assert entry.rows_read == 0 and result.rows_conformed == 0
    assert quarantine_reasons(result) == {}


def test_asc_files_missing_a_needed_column_are_rejected_naming_it(registered):
    raw, warehouse = registered
    # One authority's file per missing column, and one missing two; the last one is complete.
    missing_by_lad = {f"E0700000{i}": [name] for i, name in enumerate(ASC_NEEDED)}
    missing_by_lad["E08000001"] = ["Event_Type", "Service_Type"]
    missing_by_lad["E08000002"] = []
    for lad, missing in missing_by_lad.items():
        keep = [i for i, name in enumerate(ASC_HEADER) if name not in missing]
        row = asc_row(V0, lad, LA_Code=lad)
        write_csv(asc_file(raw, lad), [ASC_HEADER[i] for i in keep], [[row[i] for i in keep]])
    result = conform(raw, warehouse, "asc_cld")
    assert {e.file: e.rejected for e in result.ledger} == {
        f"asc_cld_{lad}_2025-03-31.csv": (
            f"asc_cld_{lad}_2025-03-31.csv: missing column(s) {', '.join(missing)} "
            "needed by a measure"
            if missing
            else None
        )
        for lad, missing in missing_by_lad.items()
    }
    assert all(e.balanced for e in result.ledger)
    assert rows_of(result.conformed_path, "la_code", "1") == [("E08000002",)]


def test_asc_missing_unneeded_columns_are_reported_and_extra_ones_ignored(registered):
    raw, warehouse = registered
    header = [
        "la_code",
        " nhs_NUMBER ",
        "GENDER",
        "event_type ",
        " Event_Start_Date",
        "EVENT_END_DATE",
        "service_type",
        "Team",
        " Locality ",
    ]
    row = ["E06000001", V0, "Male", "Service", "01/02/2024", "", "Carer Support", "T1", "North"]
    write_csv(raw / "asc_cld" / ASC_FILE, header, [row])
    result = conform(raw, warehouse, "asc_cld")
    entry = only_entry(result)
    assert entry.rejected is None and entry.conformed == 1
    assert entry.missing_columns == ["Client_ID", "Primary_Support_Reason"]
    assert entry.extra_columns == ["locality", "team"]
    columns = "la_code, person_id, client_id, gender, service_type, primary_support_reason"
    assert rows_of(result.conformed_path, columns, "1") == [
        ("E06000001", person_id(V0), None, "Male", "Carer Support", None)
    ]


# -- every source ----------------------------------------------------------------------------------


def test_end_dates_may_be_future_but_not_before_1900(registered):
    raw, warehouse = registered
    rows = [
        hes_row(V0, "1", epiend="2025-06-30", disdate="2025-06-30"),  # 1 planned: fine
        hes_row(V0, "2", epiend="1899-12-31"),  # 2
        hes_row(V0, "3", disdate="1850-06-01"),  # 3
    ]
    write_csv(raw / "hes_apc" / HES_FILE, HES_HEADER, rows)
    hes = conform(raw, warehouse, "hes_apc")
    assert quarantine_reasons(hes) == {2: "implausible_date", 3: "implausible_date"}
    assert only_entry(hes).conformed == 1
    rows = [
        asc_row(V0, "C1", Event_End_Date="31/12/2026"),  # 1 planned: fine
        asc_row(V0, "C2", Event_End_Date="31/12/1899"),  # 2
    ]
    write_csv(raw / "asc_cld" / ASC_FILE, ASC_HEADER, rows)
    asc = conform(raw, warehouse, "asc_cld")
    assert quarantine_reasons(asc) == {2: "implausible_date"}
    assert only_entry(asc).conformed == 1


@pytest.mark.parametrize(
    "source, name",
    [
        ("hes_apc", HES_FILE),
        ("asc_cld", ASC_FILE),
        ("fingertips", FT_FILE),
    ],
)
def test_an_empty_file_is_rejected(registered, source, name):
    raw, warehouse = registered
    (raw / source).mkdir()
    (raw / source / name).write_bytes(b"")
    result = conform(raw, warehouse, source)
    entry = only_entry(result)
    assert entry.rejected == f"{name}: empty file"
    assert entry.rows_read == 0 and result.rows_conformed == 0


# -- fingertips ------------------------------------------------------------------------------------


def test_fingertips_dispositions(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    rows = [
        ft_row(),  # 1 conformed
        ft_row(**{"Indicator ID": "abc"}),  # 2
        ft_row(**{"Indicator ID": ""}),  # 3
        ft_row(**{"Area Code": "E0600001"}),  # 4 seven digits
        ft_row(**{"Area Code": "W06000001"}),  # 5 not England
        ft_row(**{"Area Code": ""}),  # 6
        ft_row(**{"Time period": ""}),  # 7
        ft_row(
            **{"Area Code": "E92000001", "Value": "", "Value note": "Value suppressed"}
        ),  # 8 suppressed value: conformed, null
        ft_row(),  # 9 exact copy of 1
    ]
    path = write_csv(raw / "fingertips" / FT_FILE, FT_HEADER, rows)
    append(path, "93014,Falls,E06000002\n")  # 10 too few fields
    result = conform(raw, warehouse, "fingertips")
    assert quarantine_reasons(result) == {
        2: "invalid_code",
        3: "invalid_code",
        4: "invalid_code",
        5: "invalid_code",
        6: "invalid_code",
        7: "missing_value",
        9: "duplicate",
        10: "malformed_row",
    }
    entry = only_entry(result)
    assert entry.rows_read == 10 and entry.conformed == 2
    columns = "indicator_id, area_code, time_period, value, count, value_note"
    assert rows_of(result.conformed_path, columns, "area_code") == [
        (93014, "E06000001", "2022/23", 2104.5, 450.0, None),
        (93014, "E92000001", "2022/23", None, 450.0, "Value suppressed"),
    ]


def test_fingertips_fractional_indicator_id_is_not_an_integer(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    rows = [ft_row(**{"Indicator ID": "12.5"}), ft_row(**{"Indicator ID": "93014"})]
    write_csv(raw / "fingertips" / FT_FILE, FT_HEADER, rows)
    result = conform(raw, warehouse, "fingertips")
    assert quarantine_reasons(result) == {1: "invalid_code"}
    entry = only_entry(result)
    assert entry.rows_read == 2 and entry.conformed == 1


def test_fingertips_csv_gz_is_read_transparently(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    header = [name.lower() for name in FT_HEADER]  # header case does not matter
    rows = [
        ft_row(),
        ft_row(**{"Area Code": "E12000001", "Time period": "2023", "Value": ""}),
        ft_row(**{"Indicator ID": "x"}),
    ]
    path = raw / "fingertips" / f"{FT_FILE}.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(csv_text(header, rows).encode("utf-8")))
    result = conform(raw, warehouse, "fingertips")
    entry = only_entry(result)
    assert entry.rejected is None and entry.encoding == "utf-8"
    assert entry.rows_read == 3 and entry.conformed == 2
    assert quarantine_reasons(result) == {3: "invalid_code"}
    columns = "indicator_id, indicator_name, area_code, time_period, value, denominator"
    assert rows_of(result.conformed_path, columns, "area_code") == [
        (93014, rows[0][1], "E06000001", "2022/23", 2104.5, 21384.0),
        (93014, rows[0][1], "E12000001", "2023", None, 21384.0),
    ]


# -- gp_medications --------------------------------------------------------------------------------


def test_medications_dispositions(registered):
    raw, warehouse = registered
    rows = [
        ["943-476-5919", "2024-01-01", BNF],  # 1 normalised
        ["9434765918", "2024-01-01", BNF],  # 2 wrong check digit
        ["", "2024-01-01", BNF],  # 3 blank
        [V1, "2024-01-01", BNF],  # 4 conformed
        [V1, "2024-01-01", BNF],  # 5 exact copy
        [V1, "15/03/2024", BNF.lower()],  # 6 UK date, code upper-cased
        [V1, "2024-13-01", BNF],  # 7 no such month
        [V1, "2025-04-01", BNF],  # 8 after the extract date
        [V1, "1899-12-31", BNF],  # 9 before 1900
        [UNKNOWN, "2024-01-01", BNF],  # 10 in no register
        [V1, "2024-01-01", "02050"],  # 11 too short a code
    ]
    path = write_csv(raw / "gp_medications" / MED_FILE, MED_HEADER, rows)
    append(path, f"{V2},2024-01-01\n")  # 12 too few fields
    append(path, f"{V2},2024-02-01,{BNF}\n")  # 13 conformed
    append(path, "987 654 3210,2024-0")  # 14 truncated last line
    result = conform(raw, warehouse, "gp_medications")
    assert quarantine_reasons(result) == {
        2: "invalid_nhs_number",
        3: "invalid_nhs_number",
        5: "duplicate",
        7: "invalid_date",
        8: "implausible_date",
        9: "implausible_date",
        10: "unknown_person",
        11: "invalid_code",
        12: "malformed_row",
        14: "malformed_row",
    }
    entry = only_entry(result)
    assert entry.rows_read == 14 and entry.conformed == 4
    assert entry.corrections == {"nhs_normalised": 1, "uk_date": 1}
    columns = "person_id, issue_date::VARCHAR, bnf_code"
    assert sorted(rows_of(result.conformed_path, columns, "2")) == sorted(
        [
            (person_id(V0), "2024-01-01", BNF),
            (person_id(V1), "2024-01-01", BNF),
            (person_id(V1), "2024-03-15", BNF),
            (person_id(V2), "2024-02-01", BNF),
        ]
    )
    assert_no_nhs_number_stored(warehouse, "9434765918", "943-476-5919", "987 654 3210")
