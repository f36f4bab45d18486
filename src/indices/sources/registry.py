"""The sources, each declared once: everything the pipeline knows about a source is here.

A `Source` gives its name and descriptions, how its files are named (national, or one per local
authority), whether a run needs it, which measures it feeds, how its files are decoded and
checked, and its columns as the sender writes them (`specs/raw-extracts.md`), each with a kind
(`indices.sources.kinds`) that says how it is read and checked. Derived from these declarations:
the reader's parsing and checks (`conform.py`), the conformed tables' pandera schemas
(`schemas.py`), extract discovery (`extracts.py`), the Dagster raw and conformed assets with
their descriptions, dependencies, partitions and table schemas (`pipelines/assets/`), which
figures are withheld when a source is missing (`indices.areas.availability`), the data
dictionary and the test fixtures' headers. The synthetic generator (`indices.synth`) keeps its
own copy of the layouts on purpose, as an independent check of the reader.

A file missing a `needed` column (one a measure uses) is rejected whole; a missing column that
nothing uses is reported and the file is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandera.pandas as pa

from indices.sources import kinds
from indices.sources.kinds import Kind

MEASURES = ("population", "efi", "hfrs", "lts")  # what a source may feed (`Source.feeds`)


@dataclass(frozen=True)
class Column:
    """A raw column as the sender writes it, and the conformed column it becomes."""

    name: str  # as the sender writes it (matched ignoring case and surrounding spaces)
    kind: Kind
    description: str = ""  # of the conformed column (an NHS number's is its kind's)
    needed: bool = True  # a measure uses it: a file without it is rejected
    required_value: bool = False  # blank is a fault
    may_be_future: bool = False  # dates only: else after the extract date is a fault
    sentinels: bool = False  # dates only: HES 1800-01-01 and 1801-01-01 mean no date
    non_negative: bool = False  # decimals only: a negative value is a fault (a count)
    vocabulary: str | None = None  # reference file and column, "file.csv:column"
    unknown_value: str | None = None  # what an out-of-vocabulary value becomes

    @property
    def raw_name(self) -> str:
        """The column's name in the engine's raw text tables."""
        return "nhs_number" if self.kind is kinds.NHS_NUMBER else self.output

    @property
    def output(self) -> str:
        """The conformed column name: lower snake case (`Lower CI 95.0 limit` → lower_ci_95_0_limit)."""
        if self.kind is kinds.NHS_NUMBER:
            return "person_id"
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")

    def pandera(self) -> pa.Column:
        return self.kind.pandera(self)


@dataclass(frozen=True)
class AddedColumn(Column):
    """A conformed column the conform engine adds, not read from the file: copied from the
    engine's own column `origin` (`file`: the raw file's name)."""

    origin: str = "file"


@dataclass(frozen=True)
class Source:
    name: str
    raw_description: str  # the extracts as sent
    description: str  # the conformed table
    columns: tuple[Column, ...]
    feeds: tuple[str, ...] = ()  # measures withheld when it is rejected or missing (MEASURES)
    required: bool = False  # a run does not start without an extract of it
    # One extract per local authority, `<name>_<LAD code>_<date>`, conformed and partitioned by
    # authority; else one national extract, `<name>_<date>`.
    by_authority: bool = False
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
    # or at death, is `implausible_date`; two dates of birth for one person in the register are
    # `conflicting_identity`.
    lifespan: tuple[str, str] | None = None
    added: tuple[AddedColumn, ...] = ()  # conformed columns not read from the file

    def __post_init__(self) -> None:
        unknown = set(self.feeds) - set(MEASURES)
        if unknown:
            raise ValueError(f"{self.name} feeds {sorted(unknown)}: not one of {MEASURES}")

    @property
    def nhs_column(self) -> Column | None:
        return next((c for c in self.columns if c.kind is kinds.NHS_NUMBER), None)

    @property
    def person_level(self) -> bool:
        """Rows about persons (pseudonymised), as opposed to areas."""
        return self.nhs_column is not None

    @property
    def linked_to_register(self) -> bool:
        """Keeps only persons the register knows, so it is conformed after the register."""
        return self.person_level and not self.is_register

    @property
    def file_pattern(self) -> str:
        lad = "<LAD code>_" if self.by_authority else ""
        return f"{self.name}_{lad}<YYYY-MM-DD>"

    @property
    def conformed_columns(self) -> tuple[Column, ...]:
        """The conformed table's columns, in order."""
        return (*self.columns, *self.added)

    def pandera_schema(self) -> pa.DataFrameSchema:
        return pa.DataFrameSchema(
            {c.output: c.pandera() for c in self.conformed_columns},
            name=self.name,
            description=self.description,
        )


def _diagnoses() -> tuple[Column, ...]:
    return tuple(
        Column(
            f"diag_4_{i:02d}",
            kinds.ICD10,
            f"ICD-10 diagnosis position {i}, normalised: upper case, no dot, three characters "
            "and a fourth only when it is a digit; null when blank or not a code",
            needed=i == 1,
        )
        for i in range(1, 21)
    )


def _declared(*sources: Source) -> dict[str, Source]:
    return {source.name: source for source in sources}


SOURCES: dict[str, Source] = _declared(
    Source(
        "gp_patients",
        "GP patient register extracts, as sent: one full snapshot per extract date.",
        "GP patient register, one row per registration, NHS numbers pseudonymised.",
        (
            Column("nhs_number", kinds.NHS_NUMBER),
            Column("date_of_birth", kinds.DATE, "date of birth", required_value=True),
            Column(
                "sex",
                kinds.VOCABULARY,
                "NHS person stated gender code; X (not known) also for a code outside the "
                "vocabulary",
                vocabulary="vocabularies/sex_codes.csv:code",
                unknown_value="X",
            ),
            Column(
                "lsoa11_code",
                kinds.LSOA,
                "LSOA 2011 of residence; null when blank or not in the reference lookup",
            ),
            Column("practice_code", kinds.TEXT, "ODS code of the GP practice", needed=False),
            Column(
                "registration_start",
                kinds.DATE,
                "start of the registration",
                required_value=True,
            ),
            Column(
                "registration_end",
                kinds.DATE,
                "end of the registration; null while registered",
                may_be_future=True,
            ),
            Column("date_of_death", kinds.DATE, "date of death; null if alive"),
        ),
        feeds=("population",),
        required=True,
        is_register=True,
        date_order=(
            ("date_of_birth", "registration_start"),
            ("date_of_birth", "date_of_death"),
        ),
        lifespan=("date_of_birth", "date_of_death"),
    ),
    Source(
        "gp_events",
        "GP coded clinical event extracts (SNOMED CT), as sent.",
        "GP coded clinical events (SNOMED CT), one row per entry, pseudonymised.",
        (
            Column("nhs_number", kinds.NHS_NUMBER),
            Column("event_date", kinds.DATE, "date of the coded entry", required_value=True),
            Column("snomed_code", kinds.SNOMED, "SNOMED CT concept id (6 to 18 digits)"),
            Column("value", kinds.DECIMAL, "value, if the code has one", needed=False),
            Column("unit", kinds.TEXT, "unit of the value", needed=False),
        ),
        feeds=("efi",),
        required=True,
    ),
    Source(
        "gp_medications",
        "GP prescription issue extracts (BNF), as sent.",
        "GP prescription issues (BNF), one row per issue, pseudonymised.",
        (
            Column("nhs_number", kinds.NHS_NUMBER),
            Column(
                "issue_date",
                kinds.DATE,
                "date the prescription was issued",
                required_value=True,
            ),
            Column(
                "bnf_code",
                kinds.BNF,
                "BNF presentation code; its first 9 characters name the chemical substance",
            ),
        ),
        feeds=("efi",),
        required=True,
    ),
    Source(
        "hes_apc",
        "Hospital Episode Statistics admitted patient care extracts, as sent.",
        "Hospital admitted patient care episodes (HES APC), ICD-10 normalised, pseudonymised.",
        (
            Column("nhs_number", kinds.NHS_NUMBER),
            Column("epikey", kinds.TEXT, "unique episode key", required_value=True),
            Column(
                "admidate",
                kinds.DATE,
                "admission date; null for none or a HES sentinel",
                needed=False,
                sentinels=True,
            ),
            # An episode with no start cannot be placed in the HFRS window: a blank or sentinel
            # start is a fault, where the other HES dates may be missing.
            Column("epistart", kinds.DATE, "episode start", required_value=True),
            Column(
                "epiend",
                kinds.DATE,
                "episode end; null for none or a HES sentinel",
                needed=False,
                sentinels=True,
                may_be_future=True,
            ),
            Column(
                "disdate",
                kinds.DATE,
                "discharge date; null while in hospital or a sentinel",
                needed=False,
                sentinels=True,
                may_be_future=True,
            ),
            Column(
                "admimeth",
                kinds.VOCABULARY,
                "admission method; null when outside the list",
                needed=False,
                vocabulary="vocabularies/admission_methods.csv:code",
            ),
            *_diagnoses(),
        ),
        feeds=("hfrs",),
        episode_key="epikey",
    ),
    Source(
        "asc_cld",
        "Adult social care client level data, one extract per local authority, as sent.",
        "Adult social care client level data, one row per event, from every local authority's "
        "current extract, pseudonymised.",
        (
            Column("LA_Code", kinds.TEXT, "the sending local authority's code"),
            Column("NHS_Number", kinds.NHS_NUMBER),
            Column(
                "Client_ID",
                kinds.TEXT,
                "the authority's own person identifier",
                needed=False,
            ),
            Column(
                "Gender",
                kinds.VOCABULARY,
                "gender as the authority records it",
                needed=False,
                vocabulary="vocabularies/asc_genders.csv:gender",
                unknown_value="Unknown",
            ),
            Column(
                "Event_Type",
                kinds.VOCABULARY,
                "event type; null when outside the list",
                vocabulary="vocabularies/asc_event_types.csv:event_type",
            ),
            Column(
                "Event_Start_Date",
                kinds.UK_DATE,
                "start of the event",
                required_value=True,
            ),
            # Planned end dates may lie after the extract date.
            Column(
                "Event_End_Date",
                kinds.UK_DATE,
                "end of the event; null while open",
                may_be_future=True,
            ),
            Column(
                "Service_Type",
                kinds.VOCABULARY,
                "service type; null when blank or unknown",
                vocabulary="vocabularies/asc_service_types.csv:service_type",
            ),
            Column(
                "Primary_Support_Reason",
                kinds.TEXT,
                "primary support reason",
                needed=False,
            ),
        ),
        feeds=("lts",),
        by_authority=True,
        encodings=("utf-8", "cp1252"),
        blank_nhs_reason="no_nhs_number",
        allow_no_rows=True,
        added=(
            AddedColumn(
                "source_file",
                kinds.TEXT,
                "the authority's extract file this row came from",
                required_value=True,
                origin="file",
            ),
        ),
    ),
    Source(
        "fingertips",
        "Public health profile indicator extracts (Fingertips), as sent.",
        "Public health profile indicators per area (Fingertips), long format.",
        (
            Column("Indicator ID", kinds.INTEGER, "indicator id"),
            Column("Indicator Name", kinds.TEXT, "indicator name", needed=False),
            Column(
                "Area Code",
                kinds.AREA_CODE,
                "ONS area code (E92 England, E12 region, E06-E10 authorities)",
            ),
            Column("Area Type", kinds.TEXT, "area type", needed=False),
            Column("Sex", kinds.TEXT, "Persons, Male or Female", needed=False),
            Column("Age", kinds.TEXT, "age band, e.g. 65+ yrs", needed=False),
            Column(
                "Time period",
                kinds.TEXT,
                "time period, e.g. 2022/23",
                required_value=True,
            ),
            Column(
                "Value",
                kinds.DECIMAL,
                "indicator value; null when suppressed or missing",
            ),
            Column(
                "Lower CI 95.0 limit",
                kinds.DECIMAL,
                "lower 95% confidence limit",
                needed=False,
            ),
            Column(
                "Upper CI 95.0 limit",
                kinds.DECIMAL,
                "upper 95% confidence limit",
                needed=False,
            ),
            Column(
                "Count",
                kinds.DECIMAL,
                "numerator count",
                needed=False,
                non_negative=True,
            ),
            Column(
                "Denominator",
                kinds.DECIMAL,
                "denominator",
                needed=False,
                non_negative=True,
            ),
            Column(
                "Value note",
                kinds.TEXT,
                "note on the value, e.g. suppressed for disclosure control",
                needed=False,
            ),
        ),
    ),
)
"""Every source, by name, in the order the pipeline lists them."""

# Derived views of the declarations (names, in declaration order).
REGISTER = next(s.name for s in SOURCES.values() if s.is_register)
PERSON_SOURCES = tuple(s.name for s in SOURCES.values() if s.person_level)  # what measures read
NATIONAL_PERSON_SOURCES = tuple(  # national extracts the persons are made of
    s.name for s in SOURCES.values() if s.person_level and not s.by_authority
)
AUTHORITY_SOURCES = tuple(s.name for s in SOURCES.values() if s.by_authority)
REQUIRED_SOURCES = tuple(s.name for s in SOURCES.values() if s.required)
