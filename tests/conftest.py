"""Shared fixtures: hand-built extracts and conformed tables, written to temporary folders."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest

from indices.core.reference import efi_codes
from indices.sources.registry import SOURCES

REPO = Path(__file__).resolve().parents[1]


def raw_header(source: str) -> list[str]:
    """A source's raw columns as its declaration names them, in order."""
    return [column.name for column in SOURCES[source].columns]


PATIENT_COLUMNS = raw_header("gp_patients")
ASC_HEADER = raw_header("asc_cld")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """A raw CSV extract as a sender writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def single_deficit_codes() -> dict[str, str]:
    """One SNOMED code per eFI deficit that belongs to that deficit only."""
    codes = efi_codes()
    counts = codes.groupby("snomed_code")["deficit_id"].nunique()
    unique = codes[codes["snomed_code"].map(counts) == 1]
    return unique.groupby("deficit_id")["snomed_code"].first().to_dict()


@pytest.fixture()
def deficit_codes() -> dict[str, str]:
    return single_deficit_codes()


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
        import pyarrow as pa
        import pyarrow.parquet as pq

        from indices.sources.schemas import conformed_schemas

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


@pytest.fixture()
def conformed(tmp_path: Path) -> Conformed:
    return Conformed(tmp_path / "warehouse")
