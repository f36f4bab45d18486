"""Builders and checks shared by test files of several folders: raw extracts as senders write
them, conformed tables built by hand, small releases, and local servers. Fixtures are in
`tests/conftest.py` (and `tests/system/conftest.py`); a test file imports what it needs from here,
never from another test file."""

from __future__ import annotations

import csv
import io
import socket
import unicodedata
import uuid
from datetime import date
from pathlib import Path

import duckdb
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from indices.composite.spec import IndexSpec, load_spec
from indices.core.duck import query_rows, sql_str
from indices.core.published import list_datasets, list_versions
from indices.core.reference import efi_codes, file_sha256
from indices.core.settings import Settings
from indices.measures.persons import (
    UNLOCATED,
    build_long_term_support,
    build_persons,
    person_measures_query,
)
from indices.releases.publish import publish_release
from indices.sources.conform import conform_source
from indices.sources.extracts import check_raw_folder
from indices.sources.pseudonym import is_valid_nhs_number
from indices.sources.registry import SOURCES
from indices.sources.schemas import conformed_schemas

D = date(2025, 3, 31)  # the demo extracts' date, the reference date of most tests

# -- raw extracts ----------------------------------------------------------------------------------


def raw_header(source: str) -> list[str]:
    """A source's raw columns as its declaration names them, in order."""
    return [column.name for column in SOURCES[source].columns]


PATIENT_COLUMNS = raw_header("gp_patients")
ASC_HEADER = raw_header("asc_cld")

KEY = b"test-key"
VALID = ["9434765919", "4010232137", "9876543210", "1234567881"]
assert all(is_valid_nhs_number(n) for n in VALID)
V0, V1, V2, V3 = VALID
UNKNOWN = "4505577104"  # a valid NHS number that is in no register
assert is_valid_nhs_number(UNKNOWN)

REGISTER = "gp_patients_2025-03-31.csv"
EVENTS_HEADER = ["nhs_number", "event_date", "snomed_code", "value", "unit"]
HES_FILE = "hes_apc_2025-03-31.csv"
HES_HEADER = [
    "nhs_number",
    "epikey",
    "admidate",
    "epistart",
    "epiend",
    "disdate",
    "admimeth",
    "diag_4_01",
    "diag_4_02",
    "diag_4_03",
]
ASC_FILE = "asc_cld_E06000001_2025-03-31.csv"
FT_FILE = "fingertips_2025-03-31.csv"
FT_HEADER = [
    "Indicator ID",
    "Indicator Name",
    "Area Code",
    "Area Type",
    "Sex",
    "Age",
    "Time period",
    "Value",
    "Lower CI 95.0 limit",
    "Upper CI 95.0 limit",
    "Count",
    "Denominator",
    "Value note",
]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """A raw CSV extract as a sender writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


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


def hes_row(nhs: str, epikey: str, **changes: str) -> list[str]:
    row = {
        "nhs_number": nhs,
        "epikey": epikey,
        "admidate": "2024-01-01",
        "epistart": "2024-01-01",
        "epiend": "2024-01-03",
        "disdate": "2024-01-03",
        "admimeth": "21",
        "diag_4_01": "R54X",
        "diag_4_02": "",
        "diag_4_03": "",
    } | changes
    return [row[c] for c in HES_HEADER]


def asc_row(nhs: str, client: str, **changes: str) -> list[str]:
    row = {
        "LA_Code": "E06000001",
        "NHS_Number": nhs,
        "Client_ID": client,
        "Gender": "Female",
        "Event_Type": "Service",
        "Event_Start_Date": "01/02/2024",
        "Event_End_Date": "",
        "Service_Type": "Long Term Support: Nursing Care",
        "Primary_Support_Reason": "Physical Support: Personal Care Support",
    } | changes
    return [row[c] for c in ASC_HEADER]


def asc_file(raw: Path, lad: str, ext: str = "csv") -> Path:
    """The path of one local authority's extract (asc_cld has one file per authority)."""
    path = raw / "asc_cld" / f"asc_cld_{lad}_2025-03-31.{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def ft_row(**changes: str) -> list[str]:
    row = {
        "Indicator ID": "93014",
        "Indicator Name": "Emergency hospital admissions due to falls, 65+",
        "Area Code": "E06000001",
        "Area Type": "Districts & UAs (from Apr 2019)",
        "Sex": "Persons",
        "Age": "65+ yrs",
        "Time period": "2022/23",
        "Value": "2104.5",
        "Lower CI 95.0 limit": "1900.1",
        "Upper CI 95.0 limit": "2300.9",
        "Count": "450",
        "Denominator": "21384",
        "Value note": "",
    } | changes
    return [row[c] for c in FT_HEADER]


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    """The CSV text write_csv would write, for files written in another encoding."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write(text)


# -- no NHS number in any form ---------------------------------------------------------------

# V0 (9434765919) as senders and typists write it: none of these is an NHS number to the
# Modulus 11 check, every one of them is one to a reader.
V0_FORMS = [
    "943.476.5919",
    "943  476  5919",
    "943 - 476 - 5919",
    "９４３４７６５９１９",  # full-width
    "٩٤٣٤٧٦٥٩١٩",  # Arabic-Indic
    "943\u00a0476\u00a05919",  # no-break spaces
]


def digits_of(text: str) -> str:
    """Every decimal digit of a text, in any script, as ASCII, with nothing between."""
    return "".join(
        str(unicodedata.digit(c)) for c in text if unicodedata.decimal(c, None) is not None
    )


def assert_no_form_of(number: str, text: str) -> None:
    """No way of writing `number` is in `text`: checked value by value on its digits alone."""
    for form in V0_FORMS:
        assert form not in text
    assert number not in digits_of(text), text


# -- conforming ------------------------------------------------------------------------------------


def conform(raw: Path, warehouse: Path, source: str):
    found = check_raw_folder(raw, ())
    return conform_source(SOURCES[source], found[source], warehouse, KEY)


def quarantine_reasons(result) -> dict[int, str]:
    rows = query_rows(
        f"SELECT row_number, reason FROM read_parquet({sql_str(result.quarantine_path)})"
    )
    return dict(rows)


def only_entry(result):
    """The ledger entry of the one file conformed, checked to balance."""
    (entry,) = result.ledger
    assert entry.rows_read == entry.conformed + sum(entry.quarantined.values())
    assert entry.balanced
    return entry


def rows_of(path: Path, columns: str, order: str) -> list[tuple]:
    return query_rows(f"SELECT {columns} FROM read_parquet({sql_str(path)}) ORDER BY {order}")


# -- conformed tables and measures -----------------------------------------------------------------


def single_deficit_codes() -> dict[str, str]:
    """One SNOMED code per eFI deficit that belongs to that deficit only."""
    codes = efi_codes()
    counts = codes.groupby("snomed_code")["deficit_id"].nunique()
    unique = codes[codes["snomed_code"].map(counts) == 1]
    return unique.groupby("deficit_id")["snomed_code"].first().to_dict()


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


class Conformed:
    """Builds conformed tables directly (person ids already pseudonyms) for measure tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rows: dict[str, list[dict]] = {
            "gp_patients": [],
            "gp_events": [],
            "gp_medications": [],
            "hes_apc": [],
            "asc_cld": [],
        }

    @staticmethod
    def pid(person_id: str) -> str:
        return person_id.ljust(32, "0")

    def person(
        self,
        person_id: str,
        born: str = "1940-06-15",
        lsoa: str | None = "E01011949",
        start: str = "2000-01-01",
        end: str | None = None,
        died: str | None = None,
        sex: str = "2",
        practice: str = "A81001",
    ) -> Conformed:
        self.rows["gp_patients"].append(
            {
                "person_id": self.pid(person_id),
                "date_of_birth": _day(born),
                "sex": sex,
                "lsoa11_code": lsoa,
                "practice_code": practice,
                "registration_start": _day(start),
                "registration_end": _day(end),
                "date_of_death": _day(died),
            }
        )
        return self

    def event(self, person_id: str, on: str, code: str) -> Conformed:
        self.rows["gp_events"].append(
            {"person_id": self.pid(person_id), "event_date": _day(on), "snomed_code": code}
        )
        return self

    def issue(self, person_id: str, on: str, bnf: str) -> Conformed:
        self.rows["gp_medications"].append(
            {"person_id": self.pid(person_id), "issue_date": _day(on), "bnf_code": bnf}
        )
        return self

    def episode(self, person_id: str, start: str, *codes: str) -> Conformed:
        """A hospital episode with conformed (already normalised) diagnosis codes."""
        row = {"person_id": self.pid(person_id), "epikey": str(len(self.rows["hes_apc"]))}
        row["epistart"] = _day(start)
        row |= {f"diag_4_{i:02d}": code for i, code in enumerate(codes, start=1)}
        self.rows["hes_apc"].append(row)
        return self

    def care(
        self,
        person_id: str,
        start: str,
        end: str | None = None,
        service: str | None = "Long Term Support: Community",
        event_type: str = "Service",
    ) -> Conformed:
        self.rows["asc_cld"].append(
            {
                "la_code": "E06000001",
                "person_id": self.pid(person_id),
                "event_type": event_type,
                "event_start_date": _day(start),
                "event_end_date": _day(end),
                "service_type": service,
                "source_file": "asc_cld_E06000001_2025-03-31.csv",
            }
        )
        return self

    def write(self) -> Path:
        """Write every table with the conformed schema's columns (absent ones null)."""
        folder = self.root / "conformed"
        folder.mkdir(parents=True, exist_ok=True)
        for source, rows in self.rows.items():
            schema = conformed_schemas()[source]
            fields = []
            for name, column in schema.columns.items():
                kind = str(column.dtype)
                arrow_type = (
                    pa.date32()
                    if kind.startswith("datetime")
                    else pa.float64()
                    if kind == "float64"
                    else pa.int64()
                    if kind == "int64"
                    else pa.string()
                )
                fields.append(pa.field(name, arrow_type))
            arrow_schema = pa.schema(fields)
            columns = {f.name: [row.get(f.name) for row in rows] for f in fields}
            pq.write_table(pa.table(columns, schema=arrow_schema), folder / f"{source}.parquet")
        return self.root


def persons_table(conformed: Conformed, reference_date: date = D) -> dict[str, dict]:
    """Every person, with their measures, as the area counts see them: the persons table and
    the persons receiving long-term support, built the way the pipeline builds each part."""
    root = conformed.write()
    parts = {a: root / "measures" / f"{a}.parquet" for a in ("E06000001", UNLOCATED)}
    supported = root / "measures" / "lts.parquet"
    build_persons(root, reference_date, parts)  # the test LSOAs are Hartlepool's
    build_long_term_support(
        {"E06000001": root / "conformed" / "asc_cld.parquet"},
        reference_date,
        {"E06000001": supported},
    )
    query, parameters = person_measures_query(list(parts.values()), [supported])
    con_rows = query_rows(query, parameters)
    names = [r[0] for r in query_rows(f"DESCRIBE {query}", parameters)]
    return {row[0].rstrip("0"): dict(zip(names, row, strict=True)) for row in con_rows}


# -- releases and the catalog ----------------------------------------------------------------------


def table(n: int, shift: int = 0) -> pa.Table:
    codes = [f"E01{i:06d}" for i in range(n)]
    return pa.table({"lsoa11_code": codes, "rank": [(i + shift) % n + 1 for i in range(n)]})


def publish(root: Path, data: pa.Table, inputs: list[dict], dataset: str = "demo"):
    return publish_release(
        root,
        dataset,
        data,
        description="a test dataset",
        column_descriptions={"lsoa11_code": "area", "rank": "rank"},
        sort_by=["lsoa11_code"],
        reference_date=D,
        inputs=inputs,
    )


def raw_input(tmp_path: Path, content: str) -> list[dict]:
    path = tmp_path / "raw" / "gp_events_2025-03-31.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return [{"role": "raw/gp_events", "path": str(path), "sha256": file_sha256(path)}]


def catalog_agrees(root: Path) -> bool:
    """Whether the catalog lists every release the pointers name, the latest marked, and
    answers for each (read independently of the code that builds it)."""
    expected = {
        (dataset, version, version == versions[-1])
        for dataset in list_datasets(root)
        for versions in [list_versions(root, dataset)]
        for version in versions
    }
    try:
        con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
        rows = set(con.execute("SELECT dataset, version, is_latest FROM releases").fetchall())
        for dataset, version, latest in expected:
            for view in [f"{dataset}__{version}", *([dataset] if latest else [])]:
                con.execute(f'SELECT count(*) FROM "{view}"').fetchone()
        con.close()
    except duckdb.Error:
        return False
    return rows == expected


def catalog(publish_dir: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(publish_dir / "catalog.duckdb"), read_only=True)


def catalog_rows(settings: Settings, query: str) -> list[tuple]:
    """What a query of the run's published catalog answers."""
    con = duckdb.connect(str(settings.publish_dir / "catalog.duckdb"), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def analyst_query(publish_url: str, query: str, tmp_path: Path) -> list[tuple]:
    """What the README tells analysts: fetch the catalog, register the filesystem, query."""
    fs, _ = fsspec.core.url_to_fs(publish_url)
    local = tmp_path / f"catalog-{uuid.uuid4().hex}.duckdb"
    fs.get(f"{publish_url}/catalog.duckdb", str(local))
    con = duckdb.connect(str(local), read_only=True)
    con.register_filesystem(fs)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


# -- local servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- index specs on tiny tables (the composite engine's tests) ---------------------------------


def tiny_spec(**changes) -> dict:
    """A valid two-domain spec: index idx = a (x1, x2) and b (y), all weights explicit."""
    spec = {
        "name": "tiny",
        "title": "A tiny index",
        "unit": "u",
        "inputs": [{"path": "tiny.csv"}],
        "normalise": {"method": "minmax", "low": 0, "high": 100},
        "aggregate": {"method": "arithmetic"},
        "index": {
            "name": "idx",
            "children": [
                {
                    "name": "a",
                    "weight": 2,
                    "children": [
                        {"name": "x1", "column": "x1", "weight": 1},
                        {"name": "x2", "column": "x2", "weight": 3},
                    ],
                },
                {
                    "name": "b",
                    "weight": 1,
                    "children": [
                        {"name": "y", "column": "y", "direction": "higher_is_better", "weight": 1}
                    ],
                },
            ],
        },
    }
    return {**spec, **changes}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


TINY_CSV = "u,x1,x2,y,g\np,0,10,50,A\nq,5,20,30,A\nr,10,0,40,B\ns,2.5,30,10,B\nt,7.5,40,20,B\n"


def spec_on(tmp_path: Path, csv: str = TINY_CSV, **changes) -> IndexSpec:
    """The tiny spec (or with `changes`) in tmp_path, reading tiny.csv beside it."""
    write(tmp_path / "tiny.csv", csv)
    return load_spec(write(tmp_path / "tiny.yaml", yaml.safe_dump(tiny_spec(**changes))))


def frame(index: str = "u", **columns) -> pd.DataFrame:
    units = list("pqrstuvwxyz")[: len(next(iter(columns.values())))]
    return pd.DataFrame(columns, index=pd.Index(units, name=index))


def tiny_data() -> pd.DataFrame:
    return frame(x1=[0, 5, 10, 2.5, 7.5], x2=[10, 20, 0, 30, 40], y=[50, 30, 40, 10, 20])
