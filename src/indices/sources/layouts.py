"""The raw layouts as the senders write them (`specs/raw-extracts.md`), declared once.

Each column has a kind that says how it is read and checked; the conform engine turns kinds into
DuckDB SQL. A file missing a `needed` column (one a measure uses) is rejected whole; a missing
column that nothing uses is reported and the file is used. The conformed columns themselves are
declared in `indices.schemas`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    NHS_NUMBER = "nhs_number"  # validated, then replaced by the keyed pseudonym `person_id`
    DATE = "date"  # YYYY-MM-DD; DD/MM/YYYY is read as a UK date and counted
    TEXT = "text"
    SNOMED = "snomed"  # SNOMED CT concept id, 6 to 18 digits
    BNF = "bnf"  # BNF presentation code; at least the 9-character substance
    LSOA = "lsoa"  # LSOA 2011 code, checked against the reference lookup
    SEX = "sex"  # NHS person stated gender code
    DECIMAL = "decimal"


@dataclass(frozen=True)
class RawColumn:
    name: str
    kind: Kind
    needed: bool = True
    required_value: bool = False  # blank is a fault (a date that must be there)


@dataclass(frozen=True)
class SourceLayout:
    name: str
    columns: tuple[RawColumn, ...]
    is_register: bool = False  # the register defines who is a known person


LAYOUTS: dict[str, SourceLayout] = {
    layout.name: layout
    for layout in (
        SourceLayout(
            "gp_patients",
            (
                RawColumn("nhs_number", Kind.NHS_NUMBER),
                RawColumn("date_of_birth", Kind.DATE, required_value=True),
                RawColumn("sex", Kind.SEX),
                RawColumn("lsoa11_code", Kind.LSOA),
                RawColumn("practice_code", Kind.TEXT, needed=False),
                RawColumn("registration_start", Kind.DATE, required_value=True),
                RawColumn("registration_end", Kind.DATE),
                RawColumn("date_of_death", Kind.DATE),
            ),
            is_register=True,
        ),
        SourceLayout(
            "gp_events",
            (
                RawColumn("nhs_number", Kind.NHS_NUMBER),
                RawColumn("event_date", Kind.DATE, required_value=True),
                RawColumn("snomed_code", Kind.SNOMED),
                RawColumn("value", Kind.DECIMAL, needed=False),
                RawColumn("unit", Kind.TEXT, needed=False),
            ),
        ),
        SourceLayout(
            "gp_medications",
            (
                RawColumn("nhs_number", Kind.NHS_NUMBER),
                RawColumn("issue_date", Kind.DATE, required_value=True),
                RawColumn("bnf_code", Kind.BNF),
            ),
        ),
    )
}
