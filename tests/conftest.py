"""Shared fixtures: hand-built extracts and conformed tables, written to temporary folders."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from indices.reference import efi_codes

REPO = Path(__file__).resolve().parents[1]
PATIENT_COLUMNS = [
    "nhs_number",
    "date_of_birth",
    "sex",
    "lsoa11_code",
    "practice_code",
    "registration_start",
    "registration_end",
    "date_of_death",
]


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


class Conformed:
    """Builds conformed tables directly (person ids already pseudonyms) for measure tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.patients: list[dict] = []
        self.events: list[dict] = []
        self.medications: list[dict] = []

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
        self.patients.append(
            {
                "person_id": person_id.ljust(32, "0"),
                "date_of_birth": date.fromisoformat(born),
                "sex": sex,
                "lsoa11_code": lsoa,
                "practice_code": practice,
                "registration_start": date.fromisoformat(start),
                "registration_end": date.fromisoformat(end) if end else None,
                "date_of_death": date.fromisoformat(died) if died else None,
            }
        )
        return self

    def event(self, person_id: str, on: str, code: str) -> Conformed:
        self.events.append(
            {
                "person_id": person_id.ljust(32, "0"),
                "event_date": date.fromisoformat(on),
                "snomed_code": code,
                "value": None,
                "unit": None,
            }
        )
        return self

    def issue(self, person_id: str, on: str, bnf: str) -> Conformed:
        self.medications.append(
            {
                "person_id": person_id.ljust(32, "0"),
                "issue_date": date.fromisoformat(on),
                "bnf_code": bnf,
            }
        )
        return self

    def write(self) -> Path:
        folder = self.root / "conformed"
        folder.mkdir(parents=True, exist_ok=True)
        frames = {
            "gp_patients": (self.patients, PATIENT_COLUMNS[1:]),
            "gp_events": (self.events, ["event_date", "snomed_code", "value", "unit"]),
            "gp_medications": (self.medications, ["issue_date", "bnf_code"]),
        }
        for name, (rows, columns) in frames.items():
            frame = pd.DataFrame(rows, columns=["person_id", *columns])
            for column in frame.columns:
                if "date" in column or column.startswith("registration"):
                    frame[column] = pd.to_datetime(frame[column]).dt.date
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        return self.root


@pytest.fixture()
def conformed(tmp_path: Path) -> Conformed:
    return Conformed(tmp_path / "warehouse")
