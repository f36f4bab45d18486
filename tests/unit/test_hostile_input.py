"""The reader on hostile input: every fault found by running the pipeline on unseen and hostile
extracts ends as one clear line or a quarantined row with a reason, and no NHS number, in any
form, reaches a message, a log or the quarantine (the Dagster log of a run:
tests/integration/test_hostile_input.py; an extract a process may not read:
tests/system/test_hostile_input.py)."""

from __future__ import annotations

import codecs
import gzip
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import nhs_number
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indices.core.duck import connect, query_rows, sql_str
from indices.sources.extracts import RawFolderError, check_raw_folder, list_extracts
from indices.sources.pseudonym import is_valid_nhs_number, mask_nhs_numbers, mask_nhs_numbers_sql
from indices.sources.schemas import conformed_schemas, validate_parquet
from tests.helpers import (
    ASC_FILE,
    ASC_HEADER,
    EVENTS_HEADER,
    FT_FILE,
    FT_HEADER,
    HES_FILE,
    HES_HEADER,
    PATIENT_COLUMNS,
    REGISTER,
    UNKNOWN,
    V0,
    V0_FORMS,
    V1,
    Conformed,
    append,
    asc_file,
    asc_row,
    assert_no_form_of,
    conform,
    csv_text,
    digits_of,
    ft_row,
    hes_row,
    only_entry,
    persons_table,
    quarantine_reasons,
    register_row,
    rows_of,
    write_csv,
)


def nhs(stem: str) -> str:
    """The valid NHS number with these first nine digits (Modulus 11)."""
    check = nhs_number.calculate_checksum(stem)
    assert check != 10, stem
    return stem + str(check)


def valid_numbers(count: int) -> list[str]:
    """Some valid NHS numbers in England's range, none of them in tests.helpers.VALID."""
    stems = (f"40000{i:04d}" for i in range(10_000))
    return [nhs(s) for s in stems if nhs_number.calculate_checksum(s) != 10][:count]


def quarantine_values(result) -> list[dict]:
    return [
        json.loads(raw)
        for (raw,) in query_rows(
            f"SELECT raw_values FROM read_parquet({sql_str(result.quarantine_path)}) "
            "ORDER BY row_number"
        )
    ]


def register_parquet(raw: Path, columns: dict[str, pa.Array]) -> Path:
    path = raw / "gp_patients" / "gp_patients_2025-03-31.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def text_columns(rows: list[list[str]]) -> dict[str, pa.Array]:
    return {
        name: pa.array([r[i] or None for r in rows], pa.string())
        for i, name in enumerate(PATIENT_COLUMNS)
    }


# -- 1. a Windows-1252 file that starts with a UTF-8 byte-order mark ------------------------------


def test_a_windows_1252_file_with_a_utf8_byte_order_mark_is_read(registered):
    raw, warehouse = registered
    dash = "Physical Support – Personal Care Support"  # 0x96 in Windows-1252, invalid UTF-8
    rows = [asc_row(V0, "C1", Primary_Support_Reason=dash)]
    asc_file(raw, "E06000001").write_bytes(
        codecs.BOM_UTF8 + csv_text(ASC_HEADER, rows).encode("cp1252")
    )
    entry = only_entry(conform(raw, warehouse, "asc_cld"))
    assert (entry.rejected, entry.encoding, entry.conformed) == (None, "cp1252", 1)
    assert entry.missing_columns == entry.extra_columns == []
    path = warehouse / "conformed" / "asc_cld.parquet"
    assert rows_of(path, "la_code, client_id, primary_support_reason", "1") == [
        ("E06000001", "C1", dash)
    ]


# -- 2. registers that cannot be used as they are ---------------------------------------------


def test_parquet_date_and_timestamp_columns_are_read_as_their_dates(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    london = "Europe/London"
    register_parquet(
        raw,
        {
            "nhs_number": pa.array([V0, V1], pa.string()),
            "date_of_birth": pa.array([date(1940, 5, 1), date(1950, 6, 2)], pa.date32()),
            "sex": pa.array(["1", "2"]),
            "lsoa11_code": pa.array(["E01011949", "E01011949"]),
            "practice_code": pa.array(["A81001", "A81001"]),
            # midnight, and a time of day that is dropped (and counted)
            "registration_start": pa.array(
                [datetime(2000, 1, 1), datetime(2001, 2, 3, 10, 30)], pa.timestamp("us")
            ),
            # local midnight in London in summer is 23:00 the day before in UTC
            "registration_end": pa.array(
                [datetime(2024, 6, 1, tzinfo=UTC) - timedelta(hours=1), None],
                pa.timestamp("ms", tz=london),
            ),
            "date_of_death": pa.array([None, None], pa.date32()),
        },
    )
    result = conform(raw, warehouse, "gp_patients")
    entry = only_entry(result)
    assert entry.rejected is None and entry.conformed == 2, quarantine_reasons(result)
    assert entry.corrections == {"time_dropped": 1}
    columns = "date_of_birth::VARCHAR, registration_start::VARCHAR, registration_end::VARCHAR"
    assert rows_of(result.conformed_path, columns, "1") == [
        ("1940-05-01", "2000-01-01", "2024-06-01"),
        ("1950-06-02", "2001-02-03", None),
    ]


def test_parquet_typed_dates_in_a_social_care_extract_are_not_counted_as_iso(registered):
    raw, warehouse = registered
    row = dict(zip(ASC_HEADER, asc_row(V0, "C1"), strict=True))
    columns = {name: pa.array([value or None], pa.string()) for name, value in row.items()}
    columns["Event_Start_Date"] = pa.array([date(2024, 2, 1)], pa.date32())
    columns["Event_End_Date"] = pa.array([datetime(2024, 3, 1)], pa.timestamp("s"))
    pq.write_table(pa.table(columns), asc_file(raw, "E06000001", "parquet"))
    result = conform(raw, warehouse, "asc_cld")
    entry = only_entry(result)
    assert entry.conformed == 1 and entry.corrections == {}
    columns = "event_start_date::VARCHAR, event_end_date::VARCHAR"
    assert rows_of(result.conformed_path, columns, "1") == [("2024-02-01", "2024-03-01")]


def test_a_parquet_file_with_a_nested_column_the_layout_reads_is_rejected_naming_it(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    columns = text_columns([register_row(V0)])
    # The type is quoted, and its field names are the sender's text: here an NHS number.
    columns["lsoa11_code"] = pa.array([{"code": "E01011949", V0_FORMS[1]: "x"}])
    columns["notes"] = pa.array([["an extra nested column is ignored"]])
    register_parquet(raw, columns)
    entry = only_entry(conform(raw, warehouse, "gp_patients"))
    assert entry.rejected is not None and "\n" not in entry.rejected
    assert entry.rejected.startswith("gp_patients_2025-03-31.parquet: column lsoa11_code ")
    assert "nested" in entry.rejected and "struct<code: string" in entry.rejected
    assert_no_form_of(V0, entry.rejected)


@pytest.mark.parametrize(
    ("source", "encoding"),
    [
        ("gp_patients", "utf-16"),  # with a byte-order mark
        ("gp_patients", "utf-16-le"),  # without one
        ("asc_cld", "utf-16"),  # Windows-1252 would decode it
        ("asc_cld", "utf-16-be"),
    ],
)
def test_a_utf16_file_is_rejected_as_utf16(registered, source, encoding):
    raw, warehouse = registered
    if source == "gp_patients":
        (raw / "gp_patients").mkdir(exist_ok=True)
        path, text = raw / "gp_patients" / REGISTER, csv_text(PATIENT_COLUMNS, [register_row(V0)])
    else:
        path, text = asc_file(raw, "E06000001"), csv_text(ASC_HEADER, [asc_row(V0, "C1")])
    path.write_bytes(text.encode(encoding))
    entry = only_entry(conform(raw, warehouse, source))
    assert entry.rejected.startswith(f"{path.name}: UTF-16 text"), entry.rejected
    assert "\n" not in entry.rejected and "0xff" not in entry.rejected


def test_a_headerless_csv_is_rejected_without_quoting_its_first_row(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    path = write_csv(raw / "gp_patients" / REGISTER, register_row(V0), [register_row(V1)])
    entry = only_entry(conform(raw, warehouse, "gp_patients"))
    assert entry.rejected == (
        f"{path.name}: header row missing or unrecognised (it names no column of gp_patients)"
    )
    assert entry.extra_columns == [] and entry.rows_read == 0
    assert_no_form_of(V0, json.dumps(entry.__dict__, default=str))


# -- 3. one value must not stop everything ----------------------------------------------------


def test_9999_12_31_is_an_open_end_that_validates(registered):
    raw, warehouse = registered
    ended = register_row(V0, registration_end="9999-12-31")
    write_csv(raw / "gp_patients" / REGISTER, PATIENT_COLUMNS, [ended])
    write_csv(raw / "hes_apc" / HES_FILE, HES_HEADER, [hes_row(V0, "1", epiend="9999-12-31")])
    write_csv(
        raw / "asc_cld" / ASC_FILE, ASC_HEADER, [asc_row(V0, "C1", Event_End_Date="31/12/9999")]
    )
    for source in ("gp_patients", "hes_apc", "asc_cld"):
        result = conform(raw, warehouse, source)
        assert only_entry(result).conformed == 1, source
        assert validate_parquet(conformed_schemas()[source], result.conformed_path) == []
    assert rows_of(result.conformed_path, "event_end_date::VARCHAR", "1") == [("9999-12-31",)]


def test_9999_12_31_gives_the_measures_of_a_blank_end(tmp_path):
    measures = []
    for end in (None, "9999-12-31"):
        conformed = Conformed(tmp_path / (end or "blank"))
        conformed.person("a", end=end).care("a", "2024-01-01", end=end)
        measures.append(persons_table(conformed))
    assert measures[0] == measures[1]
    assert measures[0]["a"]["long_term_support"]


@pytest.mark.parametrize(
    "text",
    [
        "943476591²",  # str.isdigit is true for superscripts
        "９４３４７６５９１９",  # full-width digits
        "٩٤٣٤٧٦٥٩١٩",  # Arabic-Indic digits
        "0000000000",  # every digit the same, though Modulus 11 passes
        "9999999999",
        "7777777777",
        "0000000019",  # unallocated
        "3113000009",  # unallocated
        "5000000005",  # reserved, never issued
        "8600000009",  # unallocated
    ],
)
def test_nhs_numbers_only_ascii_digits_in_issued_ranges(text):
    assert not is_valid_nhs_number(text)


def test_nhs_numbers_in_every_issued_range_pass():
    # Scotland, Northern Ireland, England/Wales/Isle of Man, Ireland, the synthetic 9xx range
    for stem in ("123456788", "320000001", "450557710", "600000001", "800000001", "943476591"):
        assert is_valid_nhs_number(nhs(stem)), stem


def test_an_nhs_number_with_unicode_digits_is_quarantined_not_an_error(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    rows = [register_row("943476591²"), register_row(V0_FORMS[3]), register_row(V0)]
    write_csv(raw / "gp_patients" / REGISTER, PATIENT_COLUMNS, rows)
    result = conform(raw, warehouse, "gp_patients")
    assert quarantine_reasons(result) == {1: "invalid_nhs_number", 2: "invalid_nhs_number"}
    values = quarantine_values(result)
    assert [v["nhs_number"] for v in values] == ["nnnnnnnnn²", "nnnnnnnnnn"]


# -- 4. silent wrong figures ------------------------------------------------------------------


def test_one_extract_date_in_two_formats_is_refused_naming_both(tmp_path):
    raw = tmp_path / "raw"
    write_csv(raw / "gp_patients" / REGISTER, PATIENT_COLUMNS, [register_row(V0)])
    register_parquet(raw, text_columns([register_row(V1)]))
    with pytest.raises(RawFolderError) as error:
        check_raw_folder(raw, ())
    assert "gp_patients_2025-03-31.csv" in str(error.value)
    assert "gp_patients_2025-03-31.parquet" in str(error.value)

    (raw / "gp_patients" / "gp_patients_2025-03-31.parquet").unlink()
    write_csv(asc_file(raw, "E06000001"), ASC_HEADER, [])
    write_csv(asc_file(raw, "E06000002"), ASC_HEADER, [])  # another authority: fine
    assert len(check_raw_folder(raw, ())["asc_cld"]) == 2
    asc_file(raw, "E06000001", "csv.gz").write_bytes(gzip.compress(b"LA_Code\n"))
    with pytest.raises(RawFolderError, match=r"asc_cld_E06000001_2025-03-31\.csv\b.*\.csv\.gz"):
        check_raw_folder(raw, ())


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_column_named_twice_is_rejected_naming_it(tmp_path, fmt):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    header = [*PATIENT_COLUMNS, " NHS_Number"]
    row = [*register_row(V0), V1]
    if fmt == "csv":
        write_csv(raw / "gp_patients" / REGISTER, header, [row])
    else:
        arrays = [pa.array([value], pa.string()) for value in row]
        path = raw / "gp_patients" / "gp_patients_2025-03-31.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_arrays(arrays, names=header), path)
    entry = only_entry(conform(raw, warehouse, "gp_patients"))
    assert entry.rejected == (
        f"gp_patients_2025-03-31.{fmt}: column(s) nhs_number named more than once in the "
        "header (names compared ignoring case and surrounding spaces)"
    )


def test_an_extract_dated_after_today_is_refused_naming_it(tmp_path):
    raw = tmp_path / "raw"
    write_csv(raw / "gp_patients" / REGISTER, PATIENT_COLUMNS, [register_row(V0)])
    assert [e.path.name for e in list_extracts(raw, "gp_patients", today=date(2025, 3, 31))] == [
        REGISTER
    ]
    with pytest.raises(RawFolderError, match=REGISTER + r".*after today \(2025-03-30\)"):
        list_extracts(raw, "gp_patients", today=date(2025, 3, 30))
    future = write_csv(raw / "gp_patients" / "gp_patients_2099-01-01.csv", PATIENT_COLUMNS, [])
    with pytest.raises(RawFolderError, match=future.name):
        check_raw_folder(raw, ())  # today by default, in UTC
    assert datetime.now(UTC).date() < date(2099, 1, 1)


def test_a_registration_in_wales_or_scotland_is_outside_england_but_a_known_person(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    rows = [
        register_row(V0, lsoa11_code="W01000001"),  # 1 Wales
        register_row(V1, lsoa11_code="s01006506"),  # 2 Scotland, lower case
        register_row(UNKNOWN, lsoa11_code="E01999999"),  # 3 not in the lookup: unlocated
        register_row(valid_numbers(1)[0], lsoa11_code="W0100001"),  # 4 not a code: unlocated
    ]
    write_csv(raw / "gp_patients" / REGISTER, PATIENT_COLUMNS, rows)
    result = conform(raw, warehouse, "gp_patients")
    assert quarantine_reasons(result) == {
        1: "resident_outside_england",
        2: "resident_outside_england",
    }
    entry = only_entry(result)
    assert entry.conformed == 2 and entry.corrections == {"unknown_lsoa": 2}
    events = [[V0, "2024-01-01", "160983005", "", ""], [V1, "2024-01-01", "160983005", "", ""]]
    write_csv(raw / "gp_events" / "gp_events_2025-03-31.csv", EVENTS_HEADER, events)
    assert only_entry(conform(raw, warehouse, "gp_events")).conformed == 2  # known persons


def test_implausible_ages_and_dates_out_of_order_are_quarantined(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    people = valid_numbers(8)
    rows = [
        register_row(people[0], date_of_birth="1904-03-30"),  # 1 121 at the extract date
        register_row(people[1], date_of_birth="1905-03-31"),  # 2 120 that day: plausible
        register_row(people[2], date_of_birth="1950-01-02", registration_start="1950-01-01"),
        register_row(people[3], date_of_birth="1950-01-01", registration_start="1950-01-01"),
        register_row(people[4], date_of_birth="1950-01-01", date_of_death="1949-12-31"),  # 5
        register_row(people[5], date_of_birth="1901-01-01", date_of_death="2000-01-01"),  # 6 98
        register_row(people[6], date_of_birth="1900-01-01", date_of_death="2021-01-01"),  # 7 121
        register_row(people[7], date_of_birth="1950-01-01", date_of_death="1950-01-01"),  # 8
    ]
    write_csv(raw / "gp_patients" / REGISTER, PATIENT_COLUMNS, rows)
    result = conform(raw, warehouse, "gp_patients")
    assert quarantine_reasons(result) == {n: "implausible_date" for n in (1, 3, 5, 7)}
    assert only_entry(result).conformed == 4


def test_non_finite_decimals_are_invalid_and_negative_counts_quarantined(registered):
    raw, warehouse = registered
    rows = [
        ft_row(Value="NaN"),  # 1 value null, counted
        ft_row(**{"Lower CI 95.0 limit": "Infinity", "Upper CI 95.0 limit": "-Infinity"}),  # 2
        ft_row(Count="inf", Denominator="1e400"),  # 3 overflow is not a number either
        ft_row(Count="-1"),  # 4
        ft_row(Denominator="-21384"),  # 5
        ft_row(Value="-2.5"),  # 6 a negative value may be real
    ]
    write_csv(raw / "fingertips" / FT_FILE, FT_HEADER, rows)
    result = conform(raw, warehouse, "fingertips")
    assert quarantine_reasons(result) == {4: "negative_value", 5: "negative_value"}
    entry = only_entry(result)
    assert entry.conformed == 4 and entry.corrections == {"invalid_value": 5}
    columns = "value, lower_ci_95_0_limit, upper_ci_95_0_limit, count, denominator"
    assert rows_of(result.conformed_path, columns, "value NULLS FIRST, count NULLS FIRST") == [
        (None, 1900.1, 2300.9, 450.0, 21384.0),
        (-2.5, 1900.1, 2300.9, 450.0, 21384.0),
        (2104.5, 1900.1, 2300.9, None, None),
        (2104.5, None, None, 450.0, 21384.0),
    ]
    events = [[V0, "2024-01-01", "160983005", text, "kg"] for text in ("NaN", "-inf", "70.5")]
    write_csv(raw / "gp_events" / "gp_events_2025-03-31.csv", EVENTS_HEADER, events)
    result = conform(raw, warehouse, "gp_events")
    entry = only_entry(result)
    assert entry.conformed == 3 and entry.corrections == {"invalid_value": 2}
    assert rows_of(result.conformed_path, "value", "value") == [(70.5,), (None,), (None,)]


# -- 6. no NHS number in any message, log or the quarantine -----------------------------------


def test_the_scrubber_masks_every_form_in_python_and_in_sql():
    texts = [f"see {form} today" for form in V0_FORMS] + [
        "9434765919",
        "94347659190",  # eleven digits: still someone's number with a slip
        "ref 943 476 5919, 401-023-2137",
    ]
    kept = ["2024-01-01", "01/02/2024", "E01011949", "943476591", "12.5 kg", "Value 2104.5"]
    con = connect()
    try:
        in_sql = [
            con.execute(f"SELECT {mask_nhs_numbers_sql('$t')}", {"t": t}).fetchone()[0]
            for t in texts + kept
        ]
    finally:
        con.close()
    in_python = [mask_nhs_numbers(t) for t in texts + kept]
    assert in_python == in_sql
    for masked in in_python[: len(texts)]:
        assert_no_form_of(V0, masked)
        assert "4010232137" not in digits_of(masked)
    assert in_python[len(texts) :] == kept


def test_no_form_of_an_nhs_number_is_kept_in_the_quarantine(registered):
    raw, warehouse = registered
    rows = [
        asc_row(UNKNOWN, form, Primary_Support_Reason=f"Referred: NHS no {form}")
        for form in V0_FORMS
    ]
    rows.append(asc_row(V0_FORMS[3], "C1"))  # an NHS number in full-width digits
    path = write_csv(raw / "asc_cld" / ASC_FILE, ASC_HEADER, rows)
    for form in V0_FORMS:
        append(path, f"E06000001,{form},Male\n")  # malformed: too few fields
    result = conform(raw, warehouse, "asc_cld")
    entry = only_entry(result)
    assert entry.quarantined == {"unknown_person": 6, "invalid_nhs_number": 1, "malformed_row": 6}
    values = quarantine_values(result)
    assert len(values) == 13
    for value in values:
        for text in value.values():
            assert_no_form_of(V0, text or "")
    assert_no_form_of(V0, result.quarantine_path.read_bytes().decode("utf-8", "replace"))

    events = [[UNKNOWN, "2024-01-01", "160983005", "1", f"NHS {form}"] for form in V0_FORMS]
    write_csv(raw / "gp_events" / "gp_events_2025-03-31.csv", EVENTS_HEADER, events)
    result = conform(raw, warehouse, "gp_events")
    assert set(quarantine_reasons(result).values()) == {"unknown_person"}
    for value in quarantine_values(result):
        assert value["unit"] == "NHS nnnnnnnnnn"


def test_extra_column_names_and_rejections_are_scrubbed(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    header = [*PATIENT_COLUMNS, V0_FORMS[0]]  # a header glued to a data value
    write_csv(raw / "gp_patients" / REGISTER, header, [[*register_row(V1), ""]])
    entry = only_entry(conform(raw, warehouse, "gp_patients"))
    assert entry.extra_columns == ["nnnnnnnnnn"]


def test_a_symlink_in_the_raw_folder_is_refused_without_reading_it(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text(f"nhs_number\n{V0}\n")
    raw = tmp_path / "raw"
    (raw / "gp_patients").mkdir(parents=True)
    (raw / "gp_patients" / REGISTER).symlink_to(secret)
    with pytest.raises(RawFolderError) as error:
        check_raw_folder(raw, ())
    message = str(error.value)
    assert message == f"{raw / 'gp_patients' / REGISTER}: not a regular file (a symbolic link)"
    (raw / "gp_patients" / REGISTER).unlink()
    (raw / "gp_patients" / REGISTER).mkdir()
    with pytest.raises(RawFolderError, match="not a regular file"):
        check_raw_folder(raw, ())


def test_a_file_name_or_a_failing_value_is_masked_in_its_message(tmp_path):
    raw = tmp_path / "raw"
    write_csv(raw / "gp_patients" / f"gp_patients_{V0_FORMS[0]}.csv", PATIENT_COLUMNS, [])
    with pytest.raises(RawFolderError, match="not an extract of gp_patients") as error:
        check_raw_folder(raw, ())
    assert_no_form_of(V0, str(error.value))

    table = tmp_path / "gp_events.parquet"  # a conformed table as a faulty reader might write it
    row = {"person_id": "0" * 32, "event_date": date(2024, 1, 1), "snomed_code": V0_FORMS[1]}
    pq.write_table(pa.Table.from_pylist([row | {"value": None, "unit": None}]), table)
    (problem,) = validate_parquet(conformed_schemas()["gp_events"], table)
    assert problem.startswith("snomed_code: str_matches")
    assert_no_form_of(V0, problem)
