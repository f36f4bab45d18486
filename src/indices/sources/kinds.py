"""Column kinds: how a raw value of each kind is read, and how its conformed value is checked.

Each rule (a code's pattern, a date's layouts, a vocabulary, the LSOA list, the earliest
plausible date) is written once here and yields both halves: the DuckDB SQL that parses the raw
text into its value `v_<column>` and its flags, and the pandera column that checks the conformed
value. Values reach the SQL as bound parameters (`Params`) and reference tables as relations
registered on the connection, never as pasted literals.

The flags the conform engine reads (`indices.sources.conform`): `bad_<column>` a date that is not
one (or a required one blank), `code_<column>` a malformed code (`invalid_code`),
`negative_<column>` a negative count, `fix_<what>_<column>` a value corrected (counted in the
ledger), and for the NHS number and the LSOA the flags named in their kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

import pandas as pd
import pandera.pandas as pa
import pyarrow

from indices.core.duck import Params
from indices.core.reference import lsoa_lookup, vocabulary
from indices.sources.pseudonym import PSEUDONYM_PATTERN


class Column(Protocol):
    """What a kind reads of a declared column (`indices.sources.registry.Column`)."""

    @property
    def output(self) -> str: ...

    description: str
    required_value: bool
    sentinels: bool
    non_negative: bool
    vocabulary: str | None
    unknown_value: str | None


EARLIEST_PLAUSIBLE = date(1900, 1, 1)  # a date before it is `implausible_date`
DATE_LAYOUTS = {"iso": "%Y-%m-%d", "uk": "%d/%m/%Y"}
SENTINEL_DATES = ["1800-01-01", "1801-01-01"]  # HES: no date


def full_match(pattern: str) -> pa.Check:
    """The pandera check of a pattern SQL applies with `regexp_full_match`."""
    return pa.Check.str_matches(rf"^(?:{pattern})\Z")


@dataclass(frozen=True)
class Kind:
    """Text: read as written, blank as null."""

    name: str
    conformed_type = "text"  # as the data dictionary and Dagster's table schema name it

    def parse(self, column: Column, text: str, params: Params) -> list[str]:
        """SQL select items for a raw column whose trimmed text (blank: null) is `text`."""
        return [f"{text} AS v_{column.output}"]

    def checks(self, column: Column) -> list[pa.Check]:
        return []

    def nullable(self, column: Column) -> bool:
        """Whether the conformed value may be null: by default unless a blank is a fault."""
        return not column.required_value

    def relations(self, column: Column) -> dict[str, pyarrow.Table]:
        """Reference tables the parsing SQL reads, by name (registered once per connection)."""
        return {}

    def description(self, column: Column) -> str:
        return column.description

    def pandera(self, column: Column) -> pa.Column:
        """The conformed column's pandera definition."""
        description = self.description(column)
        nullable = self.nullable(column)
        if self.conformed_type == "date":
            # Checked, not coerced: pandera coerces to nanosecond timestamps, which end in 2262,
            # and a conformed date may be as late as 9999-12-31 (an open end). Dates arrive as
            # datetime64[ms].
            return pa.Column(
                "datetime64[ms]",
                self.checks(column),
                nullable=nullable,
                coerce=False,
                description=description,
            )
        dtype = {"text": str, "double": float, "integer": int}[self.conformed_type]
        return pa.Column(
            dtype,
            self.checks(column),
            nullable=nullable,
            coerce=dtype is not str,
            description=description,
        )


@dataclass(frozen=True)
class NhsNumber(Kind):
    """Validated (Modulus 11, by the engine), then replaced by the keyed pseudonym `person_id`.
    Spaces and hyphens are dropped first (`fix_nhs_normalised`)."""

    separators: str = "[ -]"

    def parse(self, column: Column, text: str, params: Params) -> list[str]:
        clean = f"regexp_replace({text}, {params.bind('nhs_separators', self.separators)}, '', 'g')"
        return [
            f"{clean} AS nhs_clean",
            f"{text} IS NULL AS nhs_blank",
            f"{text} <> {clean} AS fix_nhs_normalised",
        ]

    def checks(self, column: Column) -> list[pa.Check]:
        return [full_match(PSEUDONYM_PATTERN)]

    def nullable(self, column: Column) -> bool:
        return False  # a row without a valid NHS number is quarantined

    def description(self, column: Column) -> str:
        return "keyed pseudonym of the NHS number (HMAC-SHA256, 32 hex characters)"


@dataclass(frozen=True)
class Date(Kind):
    """A date in the sender's layout (`own`); the other layout is read too and counted
    (`fix_<other>_date`). Blank is no date, a fault when the column requires a value; the HES
    sentinels mean no date where the column has them (`fix_sentinel_date`)."""

    own: str = "iso"
    other: str = "uk"
    conformed_type = "date"

    @property
    def layout(self) -> str:
        """The strftime layout a typed (Parquet) date is written in, as the sender would."""
        return DATE_LAYOUTS[self.own]

    def parse(self, column: Column, text: str, params: Params) -> list[str]:
        n = column.output
        own = params.bind(f"{self.own}_layout", self.layout)
        other = params.bind(f"{self.other}_layout", DATE_LAYOUTS[self.other])
        first, second = f"try_strptime({text}, {own})", f"try_strptime({text}, {other})"
        value = f"CAST(coalesce({first}, {second}) AS DATE)"
        items = []
        if column.sentinels:
            sentinel = f"list_contains({params.bind('sentinel_dates', SENTINEL_DATES)}, {text})"
            value = f"CASE WHEN {sentinel} THEN NULL ELSE {value} END"
            items.append(f"coalesce({sentinel}, false) AS fix_sentinel_date_{n}")
            text = f"CASE WHEN {sentinel} THEN NULL ELSE {text} END"
        missing = f"{text} IS NULL" if column.required_value else "false"
        return items + [
            f"{value} AS v_{n}",
            f"({missing} OR ({text} IS NOT NULL AND {value} IS NULL)) AS bad_{n}",
            f"coalesce({first} IS NULL AND {second} IS NOT NULL, false) AS fix_{self.other}_date_{n}",
        ]

    def checks(self, column: Column) -> list[pa.Check]:
        return [pa.Check.ge(pd.Timestamp(EARLIEST_PLAUSIBLE))]


@dataclass(frozen=True)
class Code(Kind):
    """A code of a fixed pattern, upper-cased first where the code has letters; malformed or
    blank, the row is `invalid_code`."""

    pattern: str = ""
    upper: bool = False

    def value(self, text: str) -> str:
        return f"upper({text})" if self.upper else text

    def malformed(self, text: str, params: Params) -> str:
        pattern = params.bind(f"{self.name}_pattern", self.pattern)
        return f"coalesce(NOT regexp_full_match({self.value(text)}, {pattern}), true)"

    def parse(self, column: Column, text: str, params: Params) -> list[str]:
        n = column.output
        return [f"{self.value(text)} AS v_{n}", f"{self.malformed(text, params)} AS code_{n}"]

    def checks(self, column: Column) -> list[pa.Check]:
        return [full_match(self.pattern)]

    def nullable(self, column: Column) -> bool:
        return False


@dataclass(frozen=True)
class Integer(Code):
    """An identifier that must be a whole number of at most `digits` digits."""

    digits: int = 18
    conformed_type = "integer"

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", f"[0-9]{{1,{self.digits}}}")

    def parse(self, column: Column, text: str, params: Params) -> list[str]:
        n = column.output
        malformed = self.malformed(text, params)
        return [
            f"CASE WHEN NOT {malformed} THEN CAST({text} AS BIGINT) END AS v_{n}",
            f"{malformed} AS code_{n}",
        ]

    def checks(self, column: Column) -> list[pa.Check]:
        return [pa.Check.in_range(0, 10**self.digits - 1)]


@dataclass(frozen=True)
class Icd10(Kind):
    """A diagnosis position, normalised as the HFRS definition does: no dots or spaces, upper
    case, a letter and two digits, a fourth character kept only when it is a digit (R54X, I10-
    → R54, I10). Not a code after that: emptied and counted (`fix_icd10_emptied`)."""

    separators: str = "[ .]"
    category: str = "[A-Z][0-9]{2}"
    subdivision: str = "[0-9]"

    def parse(self, column: Column, text: str, params: Params) -> list[str]:
        n = column.output
        separators = params.bind("icd10_separators", self.separators)
        clean = f"upper(regexp_replace({text}, {separators}, '', 'g'))"
        category = params.bind("icd10_category", self.category)
        subdivision = params.bind("icd10_subdivision", self.subdivision)
        valid = f"regexp_full_match(substr({clean}, 1, 3), {category})"
        fourth = (
            f"CASE WHEN regexp_full_match(substr({clean}, 4, 1), {subdivision}) "
            f"THEN substr({clean}, 4, 1) ELSE '' END"
        )
        return [
            f"CASE WHEN {valid} THEN substr({clean}, 1, 3) || {fourth} END AS v_{n}",
            f"coalesce({text} IS NOT NULL AND NOT {valid}, false) AS fix_icd10_emptied_{n}",
        ]

    def checks(self, column: Column) -> list[pa.Check]:
        return [full_match(f"{self.category}(?:{self.subdivision})?")]

    def nullable(self, column: Column) -> bool:
        return True


@dataclass(frozen=True)
class Lsoa(Kind):
    """An LSOA 2011 code, kept when in the reference lookup (`fix_unknown_lsoa` when blank or
    not); a Welsh LSOA or a Scottish data zone means the person lives outside England
    (`outside_england`)."""

    elsewhere: str = "[WS]01[0-9]{6}"
    relation = "lsoa_reference"

    def parse(self, column: Column, text: str, params: Params) -> list[str]:
        n = column.output
        known = f"upper({text}) IN (SELECT lsoa11_code FROM {self.relation})"
        elsewhere = params.bind("outside_england_pattern", self.elsewhere)
        return [
            f"CASE WHEN {known} THEN upper({text}) END AS v_{n}",
            f"NOT coalesce({known}, false) AS fix_unknown_lsoa",
            f"coalesce(regexp_full_match(upper({text}), {elsewhere}), false) AS outside_england",
        ]

    def relations(self, column: Column) -> dict[str, pyarrow.Table]:
        codes = lsoa_lookup()["lsoa11_code"]
        return {
            self.relation: pyarrow.table({"lsoa11_code": pyarrow.array(codes, pyarrow.string())})
        }

    def checks(self, column: Column) -> list[pa.Check]:
        return [pa.Check.isin(set(lsoa_lookup()["lsoa11_code"]))]

    def nullable(self, column: Column) -> bool:
        return True


@dataclass(frozen=True)
class Vocabulary(Kind):
    """One value of a reference list (`column.vocabulary`), matched ignoring case (`male` is
    Male). Outside it: `column.unknown_value`, or null, counted (`fix_unknown_<column>`). Blank
    is "not given", not out of vocabulary, unless the vocabulary has a value for "not known"."""

    def relation(self, column: Column) -> str:
        return f"vocabulary_{column.output}"

    def parse(self, column: Column, text: str, params: Params) -> list[str]:
        n = column.output
        match = f"(SELECT value FROM {self.relation(column)} WHERE key = lower({text}))"
        if column.unknown_value is None:
            return [
                f"{match} AS v_{n}",
                f"coalesce({text} IS NOT NULL AND {match} IS NULL, false) AS fix_unknown_{n}",
            ]
        fallback = params.bind(f"unknown_{n}", column.unknown_value)
        return [f"coalesce({match}, {fallback}) AS v_{n}", f"{match} IS NULL AS fix_unknown_{n}"]

    def relations(self, column: Column) -> dict[str, pyarrow.Table]:
        keys: dict[str, str] = {}
        for value in vocabulary(column.vocabulary):
            keys.setdefault(value.lower(), value)  # the first of two spellings wins
        return {
            self.relation(column): pyarrow.table(
                {"key": list(keys), "value": list(keys.values())},
                schema=pyarrow.schema([("key", pyarrow.string()), ("value", pyarrow.string())]),
            )
        }

    def checks(self, column: Column) -> list[pa.Check]:
        return [pa.Check.isin(vocabulary(column.vocabulary))]

    def nullable(self, column: Column) -> bool:
        return column.unknown_value is None

    def description(self, column: Column) -> str:
        return f"{column.description} (one of {', '.join(vocabulary(column.vocabulary))})"


@dataclass(frozen=True)
class Decimal(Kind):
    """A measurement: not a finite number (text, NaN, Infinity, an overflow), null and counted
    (`fix_invalid_value`); negative, where the column is a count, `negative_value`."""

    conformed_type = "double"

    def parse(self, column: Column, text: str, params: Params) -> list[str]:
        n = column.output
        number = f"TRY_CAST({text} AS DOUBLE)"
        finite = f"CASE WHEN isfinite({number}) THEN {number} END"
        items = [
            f"{finite} AS v_{n}",
            f"({text} IS NOT NULL AND {finite} IS NULL) AS fix_invalid_value_{n}",
        ]
        if column.non_negative:
            items.append(f"coalesce({finite} < 0, false) AS negative_{n}")
        return items

    def checks(self, column: Column) -> list[pa.Check]:
        return [pa.Check.ge(0)] if column.non_negative else []

    def nullable(self, column: Column) -> bool:
        return True


NHS_NUMBER = NhsNumber("nhs_number")
DATE = Date("date")  # YYYY-MM-DD; DD/MM/YYYY is read as a UK date and counted
UK_DATE = Date("uk_date", own="uk", other="iso")  # DD/MM/YYYY; YYYY-MM-DD read and counted
TEXT = Kind("text")
SNOMED = Code("snomed", pattern="[0-9]{6,18}")  # SNOMED CT concept id
BNF = Code("bnf", pattern="[0-9A-Z]{9,15}", upper=True)  # at least the 9-character substance
AREA_CODE = Code("area_code", pattern="E[0-9]{8}", upper=True)  # an ONS code in England
INTEGER = Integer("integer")
ICD10 = Icd10("icd10")
LSOA = Lsoa("lsoa")
VOCABULARY = Vocabulary("vocabulary")
DECIMAL = Decimal("decimal")
