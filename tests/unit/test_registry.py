"""Each source is declared once, and each column kind's rule gives both the SQL that reads a raw
value and the pandera check of the conformed one: the two halves agree, a source declared
nowhere else is read, conformed and validated, and what is derived follows the declaration."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pytest

from indices.core.duck import Params, query_rows, sql_str
from indices.sources import kinds
from indices.sources.conform import conform_source
from indices.sources.extracts import Extract, check_raw_folder
from indices.sources.pseudonym import pseudonymise
from indices.sources.registry import SOURCES, Column, Source
from indices.sources.schemas import validate_parquet
from indices.synth import COLUMNS
from tests.helpers import ASC_HEADER, PATIENT_COLUMNS, write_csv

KEY = b"test-key"
NHS = "9434765919"  # a valid NHS number


def parsed(column: Column, values: list[str | None]) -> pd.DataFrame:
    """The kind's SQL over raw text values, as the conform engine runs it."""
    con = duckdb.connect()
    for name, table in column.kind.relations(column).items():
        con.register(name, table)
    con.register("raw_values", pyarrow.table({"raw": pyarrow.array(values, pyarrow.string())}))
    params = Params()
    items = column.kind.parse(column, "nullif(trim(raw), '')", params)
    return con.execute(f"SELECT raw, {', '.join(items)} FROM raw_values", params or None).df()


def passes(column: Column, value: object) -> bool:
    """Whether the conformed column's pandera check accepts one value."""
    schema = pa.DataFrameSchema({column.output: column.pandera()})
    frame = pd.DataFrame({column.output: pd.Series([value], dtype=object)})
    try:
        schema.validate(frame)
    except pa.errors.SchemaError:
        return False
    return True


CODES = {
    kinds.SNOMED: ["123456", "12345", "123456789012345678", "1234567890123456789", "12a456"],
    kinds.BNF: ["0205051R0AAAAAA", "0205051r0", "02050", "0205051R0AAAAAAA", "0205-051R0"],
    kinds.AREA_CODE: ["E92000001", "e06000001", "W92000004", "E9200000", "E920000011"],
}


@pytest.mark.parametrize("kind", list(CODES), ids=lambda k: k.name)
def test_a_code_is_quarantined_in_sql_exactly_when_pandera_would_refuse_it(kind):
    column = Column("code", kind)
    rows = parsed(column, CODES[kind])
    verdicts = {
        row.raw: (not row.code_code, passes(column, row.v_code)) for row in rows.itertuples()
    }
    assert all(sql == check for sql, check in verdicts.values()), verdicts
    assert {sql for sql, _ in verdicts.values()} == {True, False}  # both verdicts exercised


def test_an_integer_is_read_exactly_when_pandera_would_accept_it():
    column = Column("Indicator ID", kinds.INTEGER)
    rows = parsed(column, ["93553", "0", "999999999999999999", "1000000000000000000", "-1"])
    read = {row.raw: not row.code_indicator_id for row in rows.itertuples()}
    assert read == {
        "93553": True,
        "0": True,
        "999999999999999999": True,
        "1000000000000000000": False,
        "-1": False,
    }
    for raw, ok in read.items():
        assert passes(column, int(raw)) == ok, raw


def test_an_icd10_position_is_kept_exactly_when_pandera_accepts_it():
    column = Column("diag_4_01", kinds.ICD10)
    rows = parsed(column, ["R54X", "I10-", "r54.1", "XX", "R5", "R541", "R54 12", None])
    for row in rows.itertuples():
        if row.v_diag_4_01 is not None:
            assert passes(column, row.v_diag_4_01), row.raw
        # Emptied exactly when its first three characters, cleaned, are no code pandera accepts.
        category = (row.raw or "").replace(".", "").replace(" ", "").upper()[:3]
        emptied = bool(row.raw) and not passes(column, category)
        assert row.fix_icd10_emptied_diag_4_01 == emptied, row.raw


def test_an_lsoa_and_a_vocabulary_value_conformed_pass_their_checks():
    lsoa = SOURCES["gp_patients"].columns[3]
    sex = SOURCES["gp_patients"].columns[2]
    service = next(c for c in SOURCES["asc_cld"].columns if c.name == "Service_Type")
    assert (lsoa.kind, sex.kind) == (kinds.LSOA, kinds.VOCABULARY)
    rows = parsed(lsoa, ["E01011949", "e01011949", "E01999999", "W01000001", None])
    assert list(rows.v_lsoa11_code) == ["E01011949", "E01011949", None, None, None]
    assert list(rows.outside_england) == [False, False, False, True, False]
    assert passes(lsoa, "E01011949") and not passes(lsoa, "E01999999")
    rows = parsed(sex, ["1", "x", "M", None])
    assert list(rows.v_sex) == ["1", "X", "X", "X"] and all(passes(sex, v) for v in rows.v_sex)
    rows = parsed(service, ["long term support: community", "Meals", None])
    assert list(rows.v_service_type) == ["Long Term Support: Community", None, None]
    assert list(rows.fix_unknown_service_type) == [False, True, False]
    assert passes(service, "Long Term Support: Community") and not passes(service, "Meals")


def test_a_pseudonym_passes_the_person_id_check():
    column = SOURCES["gp_events"].nhs_column
    assert passes(column, pseudonymise(KEY, [NHS])[0])
    assert not passes(column, NHS)


CARE_HOMES = Source(
    "care_homes",
    "Care home capacity returns, as sent.",
    "Care home capacity per home, one row per home and return.",
    (
        Column("Area Code", kinds.AREA_CODE, "the home's local authority"),
        Column("Opened", kinds.UK_DATE, "date the home opened", required_value=True),
        Column("Beds", kinds.DECIMAL, "registered beds", non_negative=True),
        Column(
            "Service",
            kinds.VOCABULARY,
            "service the home provides",
            vocabulary="vocabularies/asc_service_types.csv:service_type",
        ),
        Column("Notes", kinds.TEXT, "free text", needed=False),
    ),
)


def test_a_source_declared_once_is_read_conformed_and_validated(tmp_path):
    """A seventh source needs its declaration and nothing else to be read and checked."""
    rows = [
        ["E06000001", "01/02/2003", "40", "Long Term Support: Nursing Care", "fine"],
        ["E06000001", "2004-05-06", "12.5", "carer support", ""],  # ISO date read; case
        ["E6000001", "01/02/2003", "40", "Long Term Support: Nursing Care", ""],  # bad code
        ["E06000002", "", "40", "Long Term Support: Nursing Care", ""],  # no date
        ["E06000002", "01/02/2003", "-3", "Long Term Support: Nursing Care", ""],  # negative
        ["E06000002", "01/02/2003", "many", "Meals", ""],  # not a number; not in the list
        ["E06000002", "01/02/2003", "40"],  # a field short
    ]
    path = write_csv(
        tmp_path / "raw" / "care_homes" / "care_homes_2025-03-31.csv",
        ["Area Code", "Opened", "Beds", "Service", "Notes"],
        rows,
    )
    extract = Extract("care_homes", path, date(2025, 3, 31))
    result = conform_source(CARE_HOMES, [extract], tmp_path / "warehouse", KEY)

    conformed = query_rows(
        "SELECT area_code, opened, beds, service, notes FROM "
        f"read_parquet({sql_str(result.conformed_path)}) ORDER BY opened"
    )
    assert conformed == [
        ("E06000001", date(2003, 2, 1), 40.0, "Long Term Support: Nursing Care", "fine"),
        ("E06000002", date(2003, 2, 1), None, None, None),
        ("E06000001", date(2004, 5, 6), 12.5, "Carer Support", None),
    ]
    reasons = query_rows(
        f"SELECT row_number, reason FROM read_parquet({sql_str(result.quarantine_path)})"
    )
    assert dict(reasons) == {
        3: "invalid_code",
        4: "invalid_date",
        5: "negative_value",
        7: "malformed_row",
    }
    (entry,) = result.ledger
    assert entry.balanced and entry.corrections == {
        "iso_date": 1,
        "invalid_value": 1,
        "unknown_service": 1,
    }
    assert validate_parquet(CARE_HOMES.pandera_schema(), result.conformed_path) == []


def test_a_blank_authority_code_conforms_and_passes_the_schema(tmp_path):
    """`LA_Code` is needed in the header but may be blank (no measure reads it: the authority is
    the file's); its conformed column is nullable as declared, so the blocking schema check of
    the conformed table does not fail on a row the reader accepted."""
    raw = tmp_path / "raw"
    write_csv(
        raw / "gp_patients" / "gp_patients_2025-03-31.csv",
        PATIENT_COLUMNS,
        [[NHS, "1940-05-01", "1", "E01011949", "A81001", "2000-01-01", "", ""]],
    )
    row = dict.fromkeys(ASC_HEADER, "") | {
        "NHS_Number": NHS,
        "Event_Type": "Service",
        "Event_Start_Date": "01/02/2024",
        "Service_Type": "Long Term Support: Community",
    }
    write_csv(
        raw / "asc_cld" / "asc_cld_E06000001_2025-03-31.csv", ASC_HEADER, [list(row.values())]
    )
    found = check_raw_folder(raw, ())
    warehouse = tmp_path / "warehouse"
    conform_source(SOURCES["gp_patients"], found["gp_patients"], warehouse, KEY)
    result = conform_source(SOURCES["asc_cld"], found["asc_cld"], warehouse, KEY)
    assert result.rows_conformed == 1
    assert validate_parquet(SOURCES["asc_cld"].pandera_schema(), result.conformed_path) == []


def test_the_generator_writes_every_declared_column_in_order():
    """The generator's own copy of the layouts (kept apart on purpose) agrees with the
    declarations: every declared column, in the declared order (Fingertips with extras)."""
    for name, source in SOURCES.items():
        declared = [c.name for c in source.columns]
        written = [c for c in COLUMNS[name] if c in declared]
        assert written == declared, name
        if name != "fingertips":
            assert COLUMNS[name] == declared, name


def test_what_is_derived_follows_the_declarations():
    from indices.areas.availability import NATIONAL_SOURCES, PER_AUTHORITY
    from indices.sources import registry

    assert registry.REGISTER == "gp_patients"
    assert NATIONAL_SOURCES == {
        "population": ("gp_patients",),
        "efi": ("gp_events", "gp_medications"),
        "hfrs": ("hes_apc",),
    }
    assert PER_AUTHORITY == {"lts": "asc_cld"}
    assert registry.AUTHORITY_SOURCES == ("asc_cld",)
    assert registry.REQUIRED_SOURCES == ("gp_patients", "gp_events", "gp_medications")
    assert SOURCES["asc_cld"].file_pattern == "asc_cld_<LAD code>_<YYYY-MM-DD>"
    with pytest.raises(ValueError, match="feeds"):
        Source("x", "", "", (), feeds=("frailty",))
