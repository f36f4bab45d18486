"""The audit every release passes before it is published: nothing that identifies a person,
only area codes where areas are named, and only counts disclosure control could produce."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

# Columns that identify a person: none may reach a published table.
PERSON_COLUMNS = frozenset({"person_id", "nhs_number", "pseudonym", "date_of_birth"})


class AuditFailed(Exception):
    """A staged release failed its audit and was not published."""


# Values that identify a person whatever their column is called: a pseudonym is 16 or more hex
# digits; an NHS number 10 digits, alone or as 3-3-4 with spaces or hyphens, or an integer of 10
# digits (no published count, rank or score comes near 10^9).
PSEUDONYM_LIKE = r"^[0-9A-Fa-f]{16,}$"


NHS_NUMBER_LIKE = r"^[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}$"


# An area release is keyed by ONS area codes: a column named as an area holds nothing else.
AREA_CODE = r"^[EWSN][0-9]{8}$"


AREA_COLUMN = re.compile(r"(lsoa|msoa|oa|lad|ltla|utla|ward|region|country|area)\d*_code")


def _count_matching(column: pa.ChunkedArray, pattern: str) -> int:
    text = column.cast(pa.large_string())
    return pc.sum(pc.match_substring_regex(text, pattern)).as_py() or 0


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _ten_digit_numbers(column: pa.ChunkedArray) -> int:
    """Whole numbers of 10 digits, as integers or as floats (pandas makes an integer column
    with gaps a float one)."""
    kind = column.type
    if pa.types.is_unsigned_integer(kind) and kind.bit_width >= 32:
        values = column.cast(pa.uint64())
    elif pa.types.is_integer(kind) and kind.bit_width >= 32:
        values = pc.abs(column.cast(pa.int64()))
    elif pa.types.is_floating(kind):
        values = pc.abs(column.cast(pa.float64()))
        values = pc.if_else(pc.equal(values, pc.floor(values)), values, 0.0)
    else:
        return 0  # text, or too narrow to hold 10 digits
    low, high = pa.scalar(10**9, values.type), pa.scalar(10**10, values.type)
    inside = pc.and_(pc.greater_equal(values, low), pc.less(values, high))
    return pc.sum(inside).as_py() or 0


def person_value_problems(table: pa.Table) -> list[str]:
    """Columns holding values that look like pseudonyms or NHS numbers. The values themselves are
    never named: a message may not carry an NHS number."""
    problems = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if _is_text(column.type):
            found = {
                "pseudonyms (16 or more hex digits)": _count_matching(column, PSEUDONYM_LIKE),
                "NHS numbers (10 digits)": _count_matching(column, NHS_NUMBER_LIKE),
            }
        else:
            found = {"NHS numbers (10-digit numbers)": _ten_digit_numbers(column)}
        problems += [f"{name}: {n} value(s) look like {what}" for what, n in found.items() if n]
    return problems


def area_code_problems(table: pa.Table, columns: list[str]) -> list[str]:
    """Columns that should hold ONS area codes (e.g. E01000001) but hold something else; nulls
    pass (a total row has no area)."""
    problems = []
    for name in columns:
        column = table.column(name)
        present = column.length() - column.null_count
        codes = _count_matching(column, AREA_CODE) if _is_text(column.type) else 0
        if present - codes:
            problems.append(
                f"{name}: {present - codes} value(s) are not area codes (ONS, e.g. E01000001)"
            )
    return problems


def audit_table(table: pa.Table, count_columns: list[str], method: str = "rounding") -> list[str]:
    """The generic audit of any release: no person columns, no value that looks like a
    pseudonym or an NHS number in any column, only area codes in a column named as an area
    (`lsoa11_code`, `lad19_code`, `area_code` ...), and counts that the disclosure control
    `method` could have produced (see `indices.areas.disclosure.is_publishable`). Returns the problems
    found."""
    from indices.areas.disclosure import is_publishable

    problems = [f"person-level column {c!r}" for c in table.column_names if c in PERSON_COLUMNS]
    problems += person_value_problems(table)
    problems += area_code_problems(
        table, [c for c in table.column_names if AREA_COLUMN.fullmatch(c)]
    )
    for column in count_columns:
        bad = [v for v in table.column(column).to_pylist() if not is_publishable(v, method)]
        if bad:
            problems.append(
                f"{column}: {len(bad)} value(s) not disclosure controlled, e.g. {bad[0]}"
            )
    return problems
