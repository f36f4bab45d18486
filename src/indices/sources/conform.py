"""Conform raw extracts: decode, normalise quirks, pseudonymise, and account for every row.

Each data row of each raw file ends in exactly one place: the conformed table or the quarantine
(with its file, row number, reason and raw values, NHS numbers pseudonymised or masked). A file
that cannot be used at all is rejected whole with a one-line reason. The ledger counts it all.
Everything runs in DuckDB over the files, so memory stays bounded however large the extract.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from indices.core import leftovers, storage, warehouse
from indices.core.duck import connect, copy_to_parquet, ident, sql_str, write_json_atomic
from indices.core.reference import input_record, reference_path, vocabulary
from indices.core.storage import Location
from indices.sources.extracts import Extract
from indices.sources.layouts import Kind, RawColumn, SourceLayout
from indices.sources.pseudonym import (
    is_valid_nhs_number,
    mask_nhs_numbers,
    mask_nhs_numbers_sql,
    pseudonymise,
)
from indices.sources.schemas import conformed_schemas

EARLIEST_PLAUSIBLE = date(1900, 1, 1)
OLDEST_PLAUSIBLE_AGE = 120  # in whole years, at the extract date or at death
# How a typed date (Parquet DATE or TIMESTAMP) is written as text for each date kind, so it is
# read as the sender's own layout and not counted as a correction.
DATE_FORMATS = {Kind.DATE: "%Y-%m-%d", Kind.UK_DATE: "%d/%m/%Y"}
LOCAL_TIME_ZONE = "Europe/London"  # the day of a time-zone-aware timestamp is its day here
# Kinds whose malformed values make a row unusable (`invalid_code`); `_parsed_columns` gives
# each of them a `code_<column>` flag.
CODE_KINDS = frozenset({Kind.SNOMED, Kind.BNF, Kind.INTEGER, Kind.AREA_CODE})


class FileRejected(Exception):
    """A raw file that cannot be used at all; the message says why in one line."""


@dataclass
class FileLedger:
    """What happened to one raw file's rows."""

    source: str
    file: str
    rows_read: int = 0
    conformed: int = 0
    quarantined: Counter = field(default_factory=Counter)
    corrections: Counter = field(default_factory=Counter)
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    encoding: str | None = None
    rejected: str | None = None

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.conformed + sum(self.quarantined.values())


@dataclass
class SourceResult:
    """The outputs of conforming one source."""

    source: str
    conformed_path: Path
    quarantine_path: Path
    ledger: list[FileLedger]

    @property
    def rows_conformed(self) -> int:
        return sum(f.conformed for f in self.ledger)

    @property
    def rows_quarantined(self) -> int:
        return sum(sum(f.quarantined.values()) for f in self.ledger)


def conform_source(
    layout: SourceLayout,
    extracts: list[Extract],
    warehouse_dir: Location,
    key: bytes,
    part: str | None = None,
) -> SourceResult:
    """Conform the current extracts of one source (or of one `part` of it, e.g. one authority's
    social care extract) into the warehouse (a local folder or an object store: the work happens
    in a local DuckDB, the results are uploaded whole)."""
    return conform_parts(layout, {part: extracts}, warehouse_dir, key)[0]


def conform_parts(
    layout: SourceLayout,
    parts: dict[str | None, list[Extract]],
    warehouse_dir: Location,
    key: bytes,
    made_from: dict[str | None, str] | None = None,
) -> list[SourceResult]:
    """Conform the extracts of several parts of a source at once (one DuckDB session, however
    many authorities), writing each part's conformed table, quarantine and sidecar apart; one
    result per part, in order. Every check is within a file or against the register, so a part
    comes out as it would alone. `made_from` (per part) is recorded in the sidecars: what the
    run that conformed them decided to read (see `indices.sources.inputs`)."""
    extracts = [e for files in parts.values() for e in files]
    scratch = warehouse.scratch(warehouse_dir)
    con = connect(scratch)
    try:
        con.execute(
            "CREATE TEMP TABLE lsoa_ref AS SELECT lsoa11_code FROM read_csv("
            f"{sql_str(reference_path('geography/lsoa11_lad19.csv'))}, all_varchar = true)"
        )
        _create_row_tables(con, layout)
        ledger = []
        for number, extract in enumerate(extracts):
            entry = FileLedger(layout.name, extract.path.name)
            try:
                _load_file(con, layout, extract, number, entry, scratch)
            except FileRejected as reason:
                # A reason may quote the file (a DuckDB error, a header): mask NHS numbers.
                entry.rejected = mask_nhs_numbers(str(reason))
                con.execute("DELETE FROM raw_rows WHERE file = $f", {"f": extract.path.name})
                con.execute("DELETE FROM malformed WHERE file = $f", {"f": extract.path.name})
            ledger.append(entry)
        _parse_and_pseudonymise(con, layout, key)
        _cross_row_checks(con, layout, warehouse_dir)
        _fill_ledger(con, ledger)
        results = []
        for part, files in parts.items():
            names = [e.path.name for e in files]
            conformed_path = warehouse.conformed(warehouse_dir, layout.name, part)
            quarantine_path = warehouse.quarantine(warehouse_dir, layout.name, part)
            copy_to_parquet(con, _conformed_query(layout, names), conformed_path, scratch)
            copy_to_parquet(con, _quarantine_query(layout, names), quarantine_path, scratch)
            results.append(
                SourceResult(
                    layout.name,
                    conformed_path,
                    quarantine_path,
                    [entry for entry in ledger if entry.file in names],
                )
            )
    finally:
        con.close()
    for (part, files), result in zip(parts.items(), results, strict=True):
        sidecar = {
            "source": layout.name,
            "inputs": [input_record(e.path, f"raw/{layout.name}") for e in files],
            "ledger": ledger_frame(result.ledger).to_dict(orient="records"),
            "made_from": (made_from or {}).get(part),
        }
        write_json_atomic(warehouse.sidecar(warehouse_dir, layout.name, part), sidecar)
    return results


def read_sidecar(warehouse_dir: Location, source: str, part: str | None = None) -> dict:
    return json.loads(storage.read_text(warehouse.sidecar(warehouse_dir, source, part)))


def distinct_raw_values(extract: Extract, column: str) -> set[str]:
    """The distinct non-blank values of one column of a UTF-8 CSV or Parquet extract, the column
    matched as the reader matches it (case and surrounding spaces ignored). Empty when the file
    cannot be read that way: conforming it says why."""
    con = connect()
    try:
        if extract.fmt == "parquet":
            header = as_read = _parquet_schema(extract).names
        else:
            header = _csv_header(extract.path)
            as_read = [f"c{i}" for i in range(len(header))]  # CSV columns by position
        relation = _relation(extract.path, extract.fmt, 0, header)
        names = [r for h, r in zip(header, as_read, strict=True) if h.strip().lower() == column]
        if not names:
            return set()
        rows = con.execute(
            f"SELECT DISTINCT trim(CAST({ident(names[0])} AS VARCHAR)) FROM {relation}"
        ).fetchall()
        return {value for (value,) in rows if value}
    except (duckdb.Error, FileRejected, OSError, EOFError):
        return set()
    finally:
        con.close()


# -- reading -------------------------------------------------------------------------------------


def _relation(path: Path, fmt: str, number: int, header: list[str]) -> str:
    if fmt == "parquet":
        return f"read_parquet({sql_str(path)})"
    # No sniffing: the header was read already, every field is text, and lines with the wrong
    # field count go to the rejects table instead of failing the file.
    columns = ", ".join(f"{sql_str(f'c{i}')}: 'VARCHAR'" for i in range(len(header)))
    return (
        f"read_csv({sql_str(path)}, auto_detect = false, header = true, columns = {{{columns}}}, "
        "delim = ',', quote = '\"', escape = '\"', ignore_errors = true, store_rejects = true, "
        f"rejects_table = 'rejects_{number}', rejects_scan = 'rejects_scan_{number}')"
    )


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _csv_text(extract: Extract, layout: SourceLayout, spill_dir: Path) -> tuple[Path, str]:
    """The file to read and its encoding: the extract itself when it is UTF-8 (a byte-order
    mark allowed), else a UTF-8 copy when the source allows another encoding (Windows-1252 from
    local authorities), else rejected. The whole file is checked, in streamed chunks."""
    if extract.path.stat().st_size == 0:
        raise FileRejected(f"{extract.path.name}: empty file")
    expected = " or ".join(layout.encodings).upper()
    try:
        with _open_binary(extract.path) as handle:
            head = handle.read(4096)
    except (OSError, EOFError) as error:
        raise FileRejected(f"{extract.path.name}: cannot be read ({error})") from None
    wide = _wide_encoding(head)
    if wide:
        raise FileRejected(f"{extract.path.name}: {wide} text; expected {expected}")
    # A UTF-8 byte-order mark may begin a file in any encoding allowed (Windows-1252 files from
    # local authorities have one too): it is skipped, and the rest decoded.
    mark = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    first_error = None
    for encoding in layout.encodings:
        decoder = codecs.getincrementaldecoder(encoding)()
        offset = mark
        try:
            with _open_binary(extract.path) as handle:
                handle.read(mark)
                for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                    decoder.decode(chunk)
                    offset += len(chunk)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            first_error = first_error or (error, offset)
            continue
        except (OSError, EOFError) as error:
            raise FileRejected(f"{extract.path.name}: cannot be read ({error})") from None
        if offset == mark:
            raise FileRejected(f"{extract.path.name}: empty file")
        if encoding == "utf-8":
            return extract.path, "utf-8"
        return _transcoded_copy(extract.path, encoding, spill_dir, mark), encoding
    error, offset = first_error
    raise FileRejected(
        f"{extract.path.name}: not valid {expected} text "
        f"(byte 0x{error.object[error.start]:02x} near offset {offset + error.start})"
    )


def _wide_encoding(head: bytes) -> str | None:
    """UTF-32 or UTF-16, by the byte-order mark or, without one, by the NUL bytes beside every
    ASCII character (no 8-bit encoding of a CSV file looks like that); else None. Windows-1252
    would decode either into nonsense."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "UTF-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "UTF-16"
    pairs = len(head) // 2
    if pairs and max(head[0::2].count(0), head[1::2].count(0)) * 2 >= pairs:
        return "UTF-16"
    return None


def _transcoded_copy(path: Path, encoding: str, spill_dir: Path, skip: int = 0) -> Path:
    """A UTF-8 copy of a file in another encoding, its first `skip` bytes (a mark) left out."""
    copy = spill_dir / f"{path.name}.{leftovers.owner_tag()}.utf8.csv"
    with (
        _scratch_copy(copy),
        _open_binary(path) as raw,
        codecs.getreader(encoding)(raw) as text,
        open(copy, "w", encoding="utf-8", newline="") as target,
    ):
        raw.read(skip)
        for chunk in iter(lambda: text.read(1 << 20), ""):
            target.write(chunk)
    return copy


@contextmanager
def _scratch_copy(copy: Path) -> Iterator[None]:
    """Writing a temporary copy of a raw file: removed if writing fails (it may hold NHS
    numbers), and a full or read-only scratch folder is one line, not a rejected file."""
    with storage.writing(copy.parent):
        copy.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield
        except BaseException:
            copy.unlink(missing_ok=True)
            raise


def _csv_header(path: Path) -> list[str]:
    """The header row of a UTF-8 CSV file, without a byte-order mark."""
    with _open_binary(path) as handle:
        first_line = handle.readline(1 << 16).decode("utf-8-sig", errors="replace")
    # Read as a file, so a stray carriage return ends the record instead of failing the reader.
    return next(csv.reader(io.StringIO(first_line, newline="")), [])


def count_data_rows(extract: Extract) -> int:
    """The data rows of a raw file counted afresh, independently of the conform engine: the
    non-blank lines after the header (a last line without a newline counts), or Parquet's row
    count."""
    if extract.fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(extract.path).metadata.num_rows
    rows, carry = 0, b""
    with _open_binary(extract.path) as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()  # the last, possibly incomplete, line
            rows += sum(1 for line in lines if line.strip())
    rows += 1 if carry.strip() else 0
    return max(rows - 1, 0)  # blank lines hold no row; the header is not one


def _lf_copy(path: Path, spill_dir: Path) -> Path:
    """A plain copy of a CSV file with every CRLF turned into LF, streamed."""
    copy = spill_dir / f"{path.name}.{leftovers.owner_tag()}.lf.csv"
    with _scratch_copy(copy), _open_binary(path) as source, open(copy, "wb") as target:
        held = b""
        for chunk in iter(lambda: source.read(1 << 20), b""):
            chunk = held + chunk
            held = b"\r" if chunk.endswith(b"\r") else b""
            target.write(chunk[: len(chunk) - len(held)].replace(b"\r\n", b"\n"))
        target.write(held)
    return copy


def _parquet_schema(extract: Extract) -> pa.Schema:
    """A Parquet file's columns as written: names as they are (DuckDB would rename a repeated
    one), with their types."""
    try:
        return pq.read_schema(extract.path)
    except (pa.ArrowException, OSError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise FileRejected(f"{extract.path.name}: cannot be read ({first_line})") from None


def _as_text(column: RawColumn, name: str, arrow_type: pa.DataType | None) -> tuple[str, str]:
    """SQL for a raw column as text, and for whether a time of day was dropped from it. A
    typed date or timestamp (Parquet) becomes its date in the layout's own text layout; any
    other type its text."""
    source = ident(name)
    typed_date = arrow_type is not None and (
        pa.types.is_date(arrow_type) or pa.types.is_timestamp(arrow_type)
    )
    if column.kind not in DATE_FORMATS or not typed_date:
        return f"CAST({source} AS VARCHAR)", "false"
    if getattr(arrow_type, "tz", None):
        source = f"({source} AT TIME ZONE {sql_str(LOCAL_TIME_ZONE)})"
    text = f"strftime(CAST({source} AS DATE), {sql_str(DATE_FORMATS[column.kind])})"
    if pa.types.is_date(arrow_type):
        return text, "false"
    return text, f"coalesce(CAST({source} AS TIME) <> TIME '00:00:00', false)"


def _raw_names(layout: SourceLayout) -> list[str]:
    """The raw text columns of the row tables, named by their conformed names."""
    return [c.raw_name for c in layout.columns]


def _create_row_tables(con: duckdb.DuckDBPyConnection, layout: SourceLayout) -> None:
    raw_columns = ", ".join(f"{ident(n)} VARCHAR" for n in _raw_names(layout))
    # fix_time_dropped: a typed timestamp whose time of day was dropped (a correction)
    con.execute(
        f"CREATE TEMP TABLE raw_rows (file VARCHAR, extract_date DATE, row_number BIGINT, "
        f"{raw_columns}, fix_time_dropped BOOLEAN)"
    )
    con.execute("CREATE TEMP TABLE malformed (file VARCHAR, row_number BIGINT, raw_line VARCHAR)")


def _load_file(
    con: duckdb.DuckDBPyConnection,
    layout: SourceLayout,
    extract: Extract,
    number: int,
    entry: FileLedger,
    spill_dir: Path,
) -> None:
    copies: list[Path] = []
    types: dict[str, pa.DataType] = {}
    if extract.fmt == "parquet":
        schema = _parquet_schema(extract)
        path, header = extract.path, schema.names
        as_read = header
        types = dict(zip(header, schema.types, strict=True))
    else:
        path, entry.encoding = _csv_text(extract, layout, spill_dir)
        if path != extract.path:
            copies.append(path)
        header = _csv_header(path)
        as_read = [f"c{i}" for i in range(len(header))]  # CSV columns by position
    normalised = [name.strip().lower() for name in header]
    by_normalised = dict(zip(normalised, as_read, strict=True))
    wanted = {c.name.lower() for c in layout.columns}
    if not wanted & by_normalised.keys():
        # Most likely the first line is data: say so, and quote none of it.
        raise FileRejected(
            f"{extract.path.name}: header row missing or unrecognised "
            f"(it names no column of {layout.name})"
        )
    repeated = sorted({n for n in normalised if n in wanted and normalised.count(n) > 1})
    if repeated:
        raise FileRejected(
            f"{extract.path.name}: column(s) {', '.join(repeated)} named more than once in the "
            "header (names compared ignoring case and surrounding spaces)"
        )
    entry.extra_columns = sorted(mask_nhs_numbers(n) for n in by_normalised if n not in wanted)
    entry.missing_columns = [c.name for c in layout.columns if c.name.lower() not in by_normalised]
    missing_needed = [
        c.name for c in layout.columns if c.needed and c.name in entry.missing_columns
    ]
    if missing_needed:
        raise FileRejected(
            f"{extract.path.name}: missing column(s) {', '.join(missing_needed)} needed by a measure"
        )
    for column in layout.columns:
        arrow_type = types.get(by_normalised.get(column.name.lower(), ""))
        if arrow_type is not None and pa.types.is_nested(arrow_type):
            raise FileRejected(
                f"{extract.path.name}: column {column.name} holds nested values "
                f"({arrow_type}), not text"
            )

    texts = [
        _as_text(c, by_normalised[c.name.lower()], types.get(by_normalised[c.name.lower()]))
        if c.name.lower() in by_normalised
        else ("CAST(NULL AS VARCHAR)", "false")
        for c in layout.columns
    ]
    selected = ", ".join(text for text, _ in texts)
    time_dropped = " OR ".join(dropped for _, dropped in texts if dropped != "false") or "false"
    relation = _relation(path, extract.fmt, number, header)
    staged = f"staged_{number}"
    stage = (
        f"CREATE TEMP TABLE {staged} AS SELECT row_number() OVER () AS accepted_no, {selected}, "
        f"{time_dropped} AS fix_time_dropped FROM {{relation}}"
    )
    try:
        try:
            con.execute(stage.format(relation=relation))
        except duckdb.InvalidInputException as error:
            if "state machine" not in str(error):
                raise
            # Mixed line endings (CRLF and LF in one file) defeat DuckDB's strict parser: read a
            # copy with LF endings instead, so wrong field counts are still caught line by line.
            copy = _lf_copy(path, spill_dir)
            copies.append(copy)
            con.execute(f"DROP TABLE IF EXISTS rejects_{number}")
            con.execute(f"DROP TABLE IF EXISTS rejects_scan_{number}")
            con.execute(stage.format(relation=relation.replace(sql_str(path), sql_str(copy))))
    except duckdb.Error as error:
        if storage.write_failure(error):  # the scratch folder is full or read-only, not the file
            raise storage.CannotWrite(
                f"cannot write to {spill_dir}: {storage.write_failure(error)}"
            ) from error
        first_line = str(error).strip().splitlines()[0]
        raise FileRejected(f"{extract.path.name}: cannot be read ({first_line})") from None
    finally:
        for copy in copies:
            copy.unlink(missing_ok=True)

    if extract.fmt == "parquet":
        con.execute(
            f"CREATE TEMP TABLE marks_{number} (accepted_before BIGINT, rejected_so_far BIGINT)"
        )
    else:
        # Rejected lines (wrong field count, truncated) are quarantined as malformed. An accepted
        # row's data-row number is its rank plus the rejected lines that came before it: each
        # rejected line follows `accepted_before` accepted rows, and an as-of join finds, for
        # every accepted row, how many rejected lines precede it (no per-row subquery).
        con.execute(
            f"INSERT INTO malformed SELECT {sql_str(extract.path.name)}, line - 1, "
            f"first(csv_line) FROM rejects_{number} GROUP BY line"
        )
        con.execute(
            f"CREATE TEMP TABLE marks_{number} AS "
            "SELECT accepted_before, sum(count(*)) OVER (ORDER BY accepted_before) AS rejected_so_far "
            "FROM (SELECT line - 1 - row_number() OVER (ORDER BY line) AS accepted_before "
            f"FROM (SELECT DISTINCT line FROM rejects_{number})) GROUP BY accepted_before"
        )
    con.execute(
        f"INSERT INTO raw_rows SELECT {sql_str(extract.path.name)}, DATE "
        f"{sql_str(extract.extract_date)}, s.accepted_no + coalesce(m.rejected_so_far, 0), "
        f"s.* EXCLUDE (accepted_no) FROM {staged} s "
        f"ASOF LEFT JOIN marks_{number} m ON s.accepted_no > m.accepted_before"
    )
    con.execute(f"DROP TABLE {staged}")
    rows = con.execute(
        "SELECT (SELECT count(*) FROM raw_rows WHERE file = $f) "
        "+ (SELECT count(*) FROM malformed WHERE file = $f)",
        {"f": extract.path.name},
    ).fetchone()[0]
    if rows == 0 and not layout.allow_no_rows:
        raise FileRejected(f"{extract.path.name}: no data rows")


# -- parsing -------------------------------------------------------------------------------------


def _text(name: str) -> str:
    return f"nullif(trim({ident(name)}), '')"


def _parsed_columns(column: RawColumn) -> list[str]:
    """SQL select items giving a raw column's parsed value `v_<name>` and its flags: `bad_`
    (a date that is not a date), `code_` (an invalid code), `fix_` (a value corrected)."""
    n = column.output
    t = _text(column.raw_name)
    if column.kind is Kind.NHS_NUMBER:
        clean = f"regexp_replace({t}, '[ -]', '', 'g')"
        return [
            f"{clean} AS nhs_clean",
            f"{t} IS NULL AS nhs_blank",
            f"{t} <> {clean} AS fix_nhs_normalised",
        ]
    if column.kind in (Kind.DATE, Kind.UK_DATE):
        expected, other = ("%Y-%m-%d", "%d/%m/%Y")
        if column.kind is Kind.UK_DATE:
            expected, other = other, expected
        first, second = f"try_strptime({t}, '{expected}')", f"try_strptime({t}, '{other}')"
        value, fix = (
            f"CAST(coalesce({first}, {second}) AS DATE)",
            f"fix_{'iso' if column.kind is Kind.UK_DATE else 'uk'}_date_{n}",
        )
        items = []
        if column.sentinels:
            sentinel = f"{t} IN ('1800-01-01', '1801-01-01')"
            value = f"CASE WHEN {sentinel} THEN NULL ELSE {value} END"
            items.append(f"coalesce({sentinel}, false) AS fix_sentinel_date_{n}")
            t = f"CASE WHEN {sentinel} THEN NULL ELSE {t} END"
        missing = f"{t} IS NULL" if column.required_value else "false"
        return items + [
            f"{value} AS v_{n}",
            f"({missing} OR ({t} IS NOT NULL AND {value} IS NULL)) AS bad_{n}",
            f"coalesce({first} IS NULL AND {second} IS NOT NULL, false) AS {fix}",
        ]
    if column.kind is Kind.SNOMED:
        return [
            f"{t} AS v_{n}",
            f"coalesce(NOT regexp_full_match({t}, '[0-9]{{6,18}}'), true) AS code_{n}",
        ]
    if column.kind is Kind.BNF:
        return [
            f"upper({t}) AS v_{n}",
            f"coalesce(NOT regexp_full_match(upper({t}), '[0-9A-Z]{{9,15}}'), true) AS code_{n}",
        ]
    if column.kind is Kind.INTEGER:
        whole = f"coalesce(regexp_full_match({t}, '[0-9]{{1,18}}'), false)"
        return [
            f"CASE WHEN {whole} THEN CAST({t} AS BIGINT) END AS v_{n}",
            f"NOT {whole} AS code_{n}",
        ]
    if column.kind is Kind.AREA_CODE:
        return [
            f"upper({t}) AS v_{n}",
            f"coalesce(NOT regexp_full_match(upper({t}), 'E[0-9]{{8}}'), true) AS code_{n}",
        ]
    if column.kind is Kind.ICD10:
        # As the HFRS definition normalises: no dots or spaces, upper case, a letter and two
        # digits; a fourth character is kept only when it is a digit (R54X, I10- → R54, I10).
        clean = f"upper(regexp_replace({t}, '[ .]', '', 'g'))"
        valid = f"regexp_full_match(substr({clean}, 1, 3), '[A-Z][0-9]{{2}}')"
        fourth = f"CASE WHEN regexp_full_match(substr({clean}, 4, 1), '[0-9]') THEN substr({clean}, 4, 1) ELSE '' END"
        return [
            f"CASE WHEN {valid} THEN substr({clean}, 1, 3) || {fourth} END AS v_{n}",
            f"coalesce({t} IS NOT NULL AND NOT {valid}, false) AS fix_icd10_emptied_{n}",
        ]
    if column.kind is Kind.LSOA:
        known = f"upper({t}) IN (SELECT lsoa11_code FROM lsoa_ref)"
        # Wales's LSOAs and Scotland's data zones: the person lives outside England.
        elsewhere = f"regexp_full_match(upper({t}), '[WS]01[0-9]{{6}}')"
        return [
            f"CASE WHEN {known} THEN upper({t}) END AS v_{n}",
            f"NOT coalesce({known}, false) AS fix_unknown_lsoa",
            f"coalesce({elsewhere}, false) AS outside_england",
        ]
    if column.kind is Kind.VOCABULARY:
        # Matched ignoring case (`male` is Male). Blank is "not given", not out of vocabulary,
        # unless the vocabulary has a value for "not known".
        match = " ".join(
            f"WHEN {sql_str(v.lower())} THEN {sql_str(v)}" for v in vocabulary(column.vocabulary)
        )
        match = f"CASE lower({t}) {match} END"
        fallback = sql_str(column.unknown_value) if column.unknown_value else "NULL"
        unknown = f"({t} IS NOT NULL OR {fallback} IS NOT NULL) AND {match} IS NULL"
        return [
            f"coalesce({match}, {fallback}) AS v_{n}",
            f"coalesce({unknown}, false) AS fix_unknown_{n}",
        ]
    if column.kind is Kind.DECIMAL:
        # NaN, Infinity and overflowing numbers are no measurement: invalid, like text.
        number = f"TRY_CAST({t} AS DOUBLE)"
        finite = f"CASE WHEN isfinite({number}) THEN {number} END"
        items = [
            f"{finite} AS v_{n}",
            f"({t} IS NOT NULL AND {finite} IS NULL) AS fix_invalid_value_{n}",
        ]
        if column.non_negative:
            items.append(f"coalesce({finite} < 0, false) AS negative_{n}")
        return items
    return [f"{t} AS v_{n}"]


def _reason_sql(layout: SourceLayout) -> str:
    """The first fault of a row, in a fixed order of precedence; null for a usable row."""
    columns = layout.columns
    dates = [c for c in columns if c.kind in (Kind.DATE, Kind.UK_DATE)]
    codes = [c.output for c in columns if c.kind in CODE_KINDS]
    non_negative = [c.output for c in columns if c.non_negative]
    required_text = [c.output for c in columns if c.required_value and c.kind is Kind.TEXT]
    any_of = " OR ".join
    cases = ["WHEN duplicate_rank > 1 THEN 'duplicate'"]
    if layout.nhs_column:
        cases.append(f"WHEN nhs_blank THEN {sql_str(layout.blank_nhs_reason)}")
        cases.append("WHEN NOT nhs_valid THEN 'invalid_nhs_number'")
    if required_text:
        cases.append(f"WHEN {any_of(f'v_{c} IS NULL' for c in required_text)} THEN 'missing_value'")
    if dates:
        cases.append(f"WHEN {any_of(f'bad_{d.output}' for d in dates)} THEN 'invalid_date'")
        rules = [
            f"v_{d.output} < DATE {sql_str(EARLIEST_PLAUSIBLE)}"
            + ("" if d.may_be_future else f" OR v_{d.output} > extract_date")
            for d in dates
        ]
        rules += [f"v_{later} < v_{earlier}" for earlier, later in layout.date_order]
        if layout.lifespan:
            birth, death = layout.lifespan
            rules.append(
                f"v_{birth} <= coalesce(v_{death}, extract_date) "
                f"- INTERVAL {OLDEST_PLAUSIBLE_AGE + 1} YEAR"
            )
        cases.append(f"WHEN coalesce({any_of(rules)}, false) THEN 'implausible_date'")
    if codes:
        cases.append(f"WHEN {any_of(f'code_{c}' for c in codes)} THEN 'invalid_code'")
    if non_negative:
        cases.append(f"WHEN {any_of(f'negative_{c}' for c in non_negative)} THEN 'negative_value'")
    if any(c.kind is Kind.LSOA for c in columns):
        cases.append("WHEN outside_england THEN 'resident_outside_england'")
    return "CASE " + " ".join(cases) + " END"


def _parse_and_pseudonymise(
    con: duckdb.DuckDBPyConnection, layout: SourceLayout, key: bytes
) -> None:
    """Parse every row, find its first fault, and swap each valid NHS number for its pseudonym."""
    raw_list = ", ".join(ident(c) for c in _raw_names(layout))
    parsed = ", ".join(item for c in layout.columns for item in _parsed_columns(c))
    con.execute(
        f"CREATE TEMP TABLE parsed AS SELECT *, {parsed}, row_number() OVER "
        f"(PARTITION BY file, {raw_list} ORDER BY row_number) AS duplicate_rank FROM raw_rows"
    )
    if layout.nhs_column is None:
        con.execute(
            f"CREATE TEMP TABLE rows AS SELECT *, CAST(NULL AS VARCHAR) AS person_id, "
            f"{_reason_sql(layout)} AS reason FROM parsed"
        )
    else:
        # Each distinct number is checked (Modulus 11) and pseudonymised once, not once per row:
        # an events extract has tens of rows per person.
        numbers = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT nhs_clean FROM parsed WHERE nhs_clean IS NOT NULL ORDER BY 1"
            ).fetchall()
            if is_valid_nhs_number(r[0])
        ]
        mapping = pa.table(
            {
                "nhs_clean": pa.array(numbers, pa.string()),
                "person_id": pa.array(pseudonymise(key, numbers), pa.string()),
            }
        )
        con.register("pseudonym_map", mapping)
        con.execute(
            f"CREATE TEMP TABLE rows AS SELECT *, {_reason_sql(layout)} AS reason FROM ("
            "SELECT p.* EXCLUDE (nhs_clean), m.person_id, m.person_id IS NOT NULL AS nhs_valid "
            "FROM parsed p LEFT JOIN pseudonym_map m USING (nhs_clean))"
        )
        con.unregister("pseudonym_map")
    con.execute("DROP TABLE parsed")


def _cross_row_checks(
    con: duckdb.DuckDBPyConnection, layout: SourceLayout, warehouse_dir: Location
) -> None:
    """Faults that need other rows: versions of one episode that disagree, conflicting
    identities, persons in no register."""
    if layout.episode_key:
        key = f"v_{layout.episode_key}"
        # Every version of a key whose versions differ (exact copies aside) is set aside.
        con.execute(
            f"UPDATE rows SET reason = 'conflicting_duplicate' WHERE reason IS NULL AND "
            f"{key} IN (SELECT {key} FROM rows WHERE duplicate_rank = 1 AND {key} IS NOT NULL "
            f"GROUP BY {key} HAVING count(*) > 1)"
        )
    if layout.nhs_column is None:
        return
    if layout.is_register:
        con.execute(
            "UPDATE rows SET reason = 'conflicting_identity' WHERE reason IS NULL AND person_id IN "
            "(SELECT person_id FROM rows WHERE reason IS NULL GROUP BY person_id "
            "HAVING count(DISTINCT v_date_of_birth) > 1)"
        )
        return
    register = warehouse.conformed(warehouse_dir, "gp_patients")
    register_quarantine = warehouse.quarantine(warehouse_dir, "gp_patients")
    if not storage.exists(register):
        raise FileNotFoundError(f"conform gp_patients before {layout.name}: {register} is missing")
    # Known persons: any valid NHS number in the register, even on a registration set aside.
    con.execute(
        "UPDATE rows SET reason = 'unknown_person' WHERE reason IS NULL AND person_id NOT IN ("
        f"SELECT person_id FROM read_parquet({sql_str(register)}) UNION "
        f"SELECT person_id FROM read_parquet({sql_str(register_quarantine)}) "
        "WHERE person_id IS NOT NULL)"
    )


# -- writing -------------------------------------------------------------------------------------


def _of_files(files: list[str]) -> str:
    """SQL: the row comes from one of these files."""
    return f"file IN ({', '.join(map(sql_str, files))})" if files else "false"


def _conformed_query(layout: SourceLayout, files: list[str]) -> str:
    """The conformed rows of some files."""
    schema = conformed_schemas()[layout.name]
    derived = {"person_id": "person_id", "source_file": "file"}
    items = [f"{derived.get(name, f'v_{name}')} AS {name}" for name in schema.columns]
    return (
        f"SELECT {', '.join(items)} FROM rows WHERE reason IS NULL AND {_of_files(files)} "
        "ORDER BY file, row_number"
    )


def _quarantine_query(layout: SourceLayout, files: list[str]) -> str:
    """Quarantined rows of some files with their raw values; an NHS number is kept only as its
    pseudonym, or, when invalid, as its shape (every digit of any script masked), and anything
    like an NHS number in any other value or line is masked, so no NHS number is stored."""
    masked = []
    for column in layout.columns:
        value = ident(column.raw_name)
        if column.kind is Kind.NHS_NUMBER:
            value = f"coalesce(person_id, regexp_replace({value}, '\\p{{Nd}}', 'n', 'g'))"
        else:
            value = mask_nhs_numbers_sql(value)
        masked.append(f"{ident(column.name)} := {value}")
    return f"""
        SELECT {sql_str(layout.name)} AS source, file, row_number, reason, person_id,
               to_json(struct_pack({", ".join(masked)}))::VARCHAR AS raw_values
        FROM rows WHERE reason IS NOT NULL AND {_of_files(files)}
        UNION ALL
        SELECT {sql_str(layout.name)}, file, row_number, 'malformed_row', NULL,
               to_json(struct_pack(line := {mask_nhs_numbers_sql("raw_line")}))::VARCHAR
        FROM malformed WHERE {_of_files(files)}
        ORDER BY file, row_number"""


def _fill_ledger(con: duckdb.DuckDBPyConnection, ledger: list[FileLedger]) -> None:
    """Count each file's rows by outcome, and the values corrected in its conformed rows."""
    fixes = [r[0] for r in con.execute("DESCRIBE rows").fetchall() if r[0].startswith("fix_")]
    fix_sums = ", ".join(f"sum(CAST({ident(f)} AS INTEGER)) AS {ident(f)}" for f in fixes)
    outcomes = con.execute(
        "SELECT file, coalesce(reason, '') AS reason, count(*) FROM rows GROUP BY ALL "
        "UNION ALL SELECT file, 'malformed_row', count(*) FROM malformed GROUP BY ALL"
    ).fetchall()
    corrections = (
        con.execute(
            f"SELECT file, {fix_sums} FROM rows WHERE reason IS NULL GROUP BY file"
        ).fetchall()
        if fixes
        else []
    )
    by_file = {entry.file: entry for entry in ledger}
    for file, reason, rows in outcomes:
        entry = by_file[file]
        entry.rows_read += rows
        if reason:
            entry.quarantined[reason] += rows
        else:
            entry.conformed += rows
    for file, *counts in corrections:
        for fix, count in zip(fixes, counts, strict=True):
            # fix_uk_date_<column> and fix_invalid_value_<column> add up per kind
            kind = fix.removeprefix("fix_")
            for prefix in (
                "uk_date",
                "iso_date",
                "sentinel_date",
                "icd10_emptied",
                "invalid_value",
            ):
                if kind.startswith(prefix + "_"):
                    kind = prefix
            if count:
                by_file[file].corrections[kind] += count


def ledger_frame(ledger: list[FileLedger]) -> pd.DataFrame:
    """The ingest ledger in long format: source, file, outcome, reason, rows (counts only)."""
    records = []
    for entry in ledger:
        if entry.rejected:
            records.append((entry.source, entry.file, "rejected", entry.rejected, 0))
            continue
        records.append((entry.source, entry.file, "conformed", "", entry.conformed))
        records += [
            (entry.source, entry.file, "quarantined", reason, rows)
            for reason, rows in sorted(entry.quarantined.items())
        ]
        records += [
            (entry.source, entry.file, "corrected", kind, rows)
            for kind, rows in sorted(entry.corrections.items())
        ]
    return pd.DataFrame.from_records(
        records, columns=["source", "file", "outcome", "reason", "rows"]
    )
