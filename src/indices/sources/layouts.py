"""The raw layouts as the senders write them (`specs/raw-extracts.md`), declared once.

Each column has a kind that says how it is read and checked; the conform engine turns kinds into
DuckDB SQL. A file missing a `needed` column (one a measure uses) is rejected whole; a missing
column that nothing uses is reported and the file is used. The conformed tables' own columns,
types and descriptions are declared in `indices.sources.schemas`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    NHS_NUMBER = "nhs_number"  # validated, then replaced by the keyed pseudonym `person_id`
    DATE = "date"  # YYYY-MM-DD; DD/MM/YYYY is read as a UK date and counted
    UK_DATE = "uk_date"  # DD/MM/YYYY; YYYY-MM-DD is read too and counted
    TEXT = "text"
    SNOMED = "snomed"  # SNOMED CT concept id, 6 to 18 digits
    BNF = "bnf"  # BNF presentation code; at least the 9-character substance
    ICD10 = "icd10"  # a diagnosis position; not a code after normalisation: emptied, counted
    LSOA = "lsoa"  # LSOA 2011 code, checked against the reference lookup; W01/S01: not England
    VOCABULARY = "vocabulary"  # one of a reference list; outside it: `unknown_value`, counted
    INTEGER = "integer"  # an identifier that must be a whole number
    AREA_CODE = "area_code"  # an ONS area code, E and eight digits
    DECIMAL = "decimal"  # a measurement; unparseable or not finite: null, counted


@dataclass(frozen=True)
class RawColumn:
    name: str  # as the sender writes it (matched ignoring case and surrounding spaces)
    kind: Kind
    needed: bool = True
    required_value: bool = False  # blank is a fault
    may_be_future: bool = False  # dates only: else after the extract date is a fault
    sentinels: bool = False  # dates only: HES 1800-01-01 and 1801-01-01 mean no date
    non_negative: bool = False  # decimals only: a negative value is a fault (a count)
    vocabulary: str | None = None  # reference file and column, "file.csv:column"
    unknown_value: str | None = None  # what an out-of-vocabulary value becomes

    @property
    def raw_name(self) -> str:
        """The column's name in the engine's raw text tables."""
        return "nhs_number" if self.kind is Kind.NHS_NUMBER else self.output

    @property
    def output(self) -> str:
        """The conformed column name: lower snake case (`Lower CI 95.0 limit` → lower_ci_95_0_limit)."""
        if self.kind is Kind.NHS_NUMBER:
            return "person_id"
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


@dataclass(frozen=True)
class SourceLayout:
    name: str
    columns: tuple[RawColumn, ...]
    is_register: bool = False  # the register defines who is a known person
    encodings: tuple[str, ...] = ("utf-8",)  # tried in order
    episode_key: str | None = None  # a key whose versions must agree (HES epikey)
    blank_nhs_reason: str = "invalid_nhs_number"
    # A header-only file is a real answer for an authority with no events; a national extract
    # with no rows is a broken delivery.
    allow_no_rows: bool = False
    # Dates of one row that must come in order, (earlier, later) by conformed name: out of
    # order, the row is `implausible_date`.
    date_order: tuple[tuple[str, str], ...] = ()
    # (date of birth, date of death): older than the oldest plausible age at the extract date,
    # or at death, is `implausible_date`.
    lifespan: tuple[str, str] | None = None

    @property
    def nhs_column(self) -> RawColumn | None:
        return next((c for c in self.columns if c.kind is Kind.NHS_NUMBER), None)


def _diagnoses() -> tuple[RawColumn, ...]:
    return tuple(RawColumn(f"diag_4_{i:02d}", Kind.ICD10, needed=i == 1) for i in range(1, 21))


SEX = "vocabularies/sex_codes.csv:code"
LAYOUTS: dict[str, SourceLayout] = {
    layout.name: layout
    for layout in (
        SourceLayout(
            "gp_patients",
            (
                RawColumn("nhs_number", Kind.NHS_NUMBER),
                RawColumn("date_of_birth", Kind.DATE, required_value=True),
                RawColumn("sex", Kind.VOCABULARY, vocabulary=SEX, unknown_value="X"),
                RawColumn("lsoa11_code", Kind.LSOA),
                RawColumn("practice_code", Kind.TEXT, needed=False),
                RawColumn("registration_start", Kind.DATE, required_value=True),
                RawColumn("registration_end", Kind.DATE, may_be_future=True),
                RawColumn("date_of_death", Kind.DATE),
            ),
            is_register=True,
            date_order=(
                ("date_of_birth", "registration_start"),
                ("date_of_birth", "date_of_death"),
            ),
            lifespan=("date_of_birth", "date_of_death"),
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
        SourceLayout(
            "hes_apc",
            (
                RawColumn("nhs_number", Kind.NHS_NUMBER),
                RawColumn("epikey", Kind.TEXT, required_value=True),
                RawColumn("admidate", Kind.DATE, needed=False, sentinels=True),
                # An episode with no start cannot be placed in the HFRS window: a blank or
                # sentinel start is a fault, where the other HES dates may be missing.
                RawColumn("epistart", Kind.DATE, required_value=True),
                RawColumn("epiend", Kind.DATE, needed=False, sentinels=True, may_be_future=True),
                RawColumn("disdate", Kind.DATE, needed=False, sentinels=True, may_be_future=True),
                RawColumn(
                    "admimeth",
                    Kind.VOCABULARY,
                    needed=False,
                    vocabulary="vocabularies/admission_methods.csv:code",
                ),
                *_diagnoses(),
            ),
            episode_key="epikey",
        ),
        SourceLayout(
            "asc_cld",
            (
                RawColumn("LA_Code", Kind.TEXT),
                RawColumn("NHS_Number", Kind.NHS_NUMBER),
                RawColumn("Client_ID", Kind.TEXT, needed=False),
                RawColumn(
                    "Gender",
                    Kind.VOCABULARY,
                    needed=False,
                    vocabulary="vocabularies/asc_genders.csv:gender",
                    unknown_value="Unknown",
                ),
                RawColumn(
                    "Event_Type",
                    Kind.VOCABULARY,
                    vocabulary="vocabularies/asc_event_types.csv:event_type",
                ),
                RawColumn("Event_Start_Date", Kind.UK_DATE, required_value=True),
                # Planned end dates may lie after the extract date.
                RawColumn("Event_End_Date", Kind.UK_DATE, may_be_future=True),
                RawColumn(
                    "Service_Type",
                    Kind.VOCABULARY,
                    vocabulary="vocabularies/asc_service_types.csv:service_type",
                ),
                RawColumn("Primary_Support_Reason", Kind.TEXT, needed=False),
            ),
            encodings=("utf-8", "cp1252"),
            blank_nhs_reason="no_nhs_number",
            allow_no_rows=True,
        ),
        SourceLayout(
            "fingertips",
            (
                RawColumn("Indicator ID", Kind.INTEGER),
                RawColumn("Indicator Name", Kind.TEXT, needed=False),
                RawColumn("Area Code", Kind.AREA_CODE),
                RawColumn("Area Type", Kind.TEXT, needed=False),
                RawColumn("Sex", Kind.TEXT, needed=False),
                RawColumn("Age", Kind.TEXT, needed=False),
                RawColumn("Time period", Kind.TEXT, required_value=True),
                RawColumn("Value", Kind.DECIMAL),
                RawColumn("Lower CI 95.0 limit", Kind.DECIMAL, needed=False),
                RawColumn("Upper CI 95.0 limit", Kind.DECIMAL, needed=False),
                RawColumn("Count", Kind.DECIMAL, needed=False, non_negative=True),
                RawColumn("Denominator", Kind.DECIMAL, needed=False, non_negative=True),
                RawColumn("Value note", Kind.TEXT, needed=False),
            ),
        ),
    )
}
