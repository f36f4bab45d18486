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
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from indices.core import leftovers, storage, warehouse
from indices.core.duck import Params, connect, copy_to_parquet, ident, write_json_atomic
from indices.core.reference import input_record
from indices.core.storage import Location
from indices.sources import kinds
from indices.sources.extracts import Extract
from indices.sources.pseudonym import (
    is_valid_nhs_number,
    mask_nhs_numbers,
    mask_nhs_numbers_sql,
    pseudonymise,
)
from indices.sources.registry import REGISTER, AddedColumn, Column, Source

OLDEST_PLAUSIBLE_AGE = 120  # in whole years, at the extract date or at death
LOCAL_TIME_ZONE = "Europe/London"  # the day of a time-zone-aware timestamp is its day here


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


@dataclass(frozen=True)
class Query:
    """One statement and the values bound to it."""

    sql: str
    params: Params


def _run(con: duckdb.DuckDBPyConnection, query: Query) -> None:
    con.execute(query.sql, query.params or None)


def conform_source(
    source: Source,
    extracts: list[Extract],
    warehouse_dir: Location,
    key: bytes,
    part: str | None = None,
) -> SourceResult:
    """Conform the current extracts of one source (or of one `part` of it, e.g. one authority's
    social care extract) into the warehouse (a local folder or an object store: the work happens
    in a local DuckDB, the results are uploaded whole)."""
    return conform_parts(source, {part: extracts}, warehouse_dir, key)[0]


def conform_parts(
    source: Source,
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
        _register_references(con, source)
        _create_row_tables(con, source)
        ledger = []
        for number, extract in enumerate(extracts):
            entry = FileLedger(source.name, extract.path.name)
            try:
                _load_file(con, source, extract, number, entry, scratch)
            except FileRejected as reason:
                # A reason may quote the file (a DuckDB error, a header): mask NHS numbers.
                entry.rejected = mask_nhs_numbers(str(reason))
                con.execute("DELETE FROM raw_rows WHERE file = $f", {"f": extract.path.name})
                con.execute("DELETE FROM malformed WHERE file = $f", {"f": extract.path.name})
            ledger.append(entry)
        _parse_and_pseudonymise(con, source, key)
        _cross_row_checks(con, source, warehouse_dir)
        _fill_ledger(con, ledger)
        results = []
        for part, files in parts.items():
            names = [e.path.name for e in files]
            conformed_path = warehouse.conformed(warehouse_dir, source.name, part)
            quarantine_path = warehouse.quarantine(warehouse_dir, source.name, part)
            for query, path in (
                (_conformed_query(source, names), conformed_path),
                (_quarantine_query(source, names), quarantine_path),
            ):
                copy_to_parquet(con, query.sql, path, scratch, query.params)
            results.append(
                SourceResult(
                    source.name,
                    conformed_path,
                    quarantine_path,
                    [entry for entry in ledger if entry.file in names],
                )
            )
    finally:
        con.close()
    for (part, files), result in zip(parts.items(), results, strict=True):
        sidecar = {
            "source": source.name,
            "inputs": [input_record(e.path, f"raw/{source.name}") for e in files],
            "ledger": ledger_frame(result.ledger).to_dict(orient="records"),
            "made_from": (made_from or {}).get(part),
        }
        write_json_atomic(warehouse.sidecar(warehouse_dir, source.name, part), sidecar)
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
        params = Params()
        relation = _relation(params, extract.path, extract.fmt, 0, len(header))
        names = [r for h, r in zip(header, as_read, strict=True) if h.strip().lower() == column]
        if not names:
            return set()
        rows = con.execute(
            f"SELECT DISTINCT trim(CAST({ident(names[0])} AS VARCHAR)) FROM {relation}", params
        ).fetchall()
        return {value for (value,) in rows if value}
    except (duckdb.Error, FileRejected, OSError, EOFError):
        return set()
    finally:
        con.close()


# -- reading -------------------------------------------------------------------------------------


def _relation(params: Params, path: Path, fmt: str, number: int, width: int) -> str:
    """SQL reading a raw file (its path bound as `$path`): Parquet as it is; CSV with no
    sniffing (the header was read already), `width` columns `c0`, `c1` ... all text, and lines
    with the wrong field count kept in the rejects tables of `number` instead of failing."""
    path_param = params.bind("path", str(path))
    if fmt == "parquet":
        return f"read_parquet({path_param})"
    columns = params.bind("columns", {f"c{i}": "VARCHAR" for i in range(width)})
    rejects = params.bind("rejects_table", f"rejects_{number}")
    rejects_scan = params.bind("rejects_scan", f"rejects_scan_{number}")
    return (
        f"read_csv({path_param}, auto_detect = false, header = true, columns = {columns}, "
        """delim = ',', quote = '"', escape = '"', ignore_errors = true, store_rejects = true, """
        f"rejects_table = {rejects}, rejects_scan = {rejects_scan})"
    )


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _csv_text(extract: Extract, source: Source, spill_dir: Path) -> tuple[Path, str]:
    """The file to read and its encoding: the extract itself when it is UTF-8 (a byte-order
    mark allowed), else a UTF-8 copy when the source allows another encoding (Windows-1252 from
    local authorities), else rejected. The whole file is checked, in streamed chunks."""
    if extract.path.stat().st_size == 0:
        raise FileRejected(f"{extract.path.name}: empty file")
    expected = " or ".join(source.encodings).upper()
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
    for encoding in source.encodings:
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


def _as_text(
    params: Params, column: Column, name: str, arrow_type: pa.DataType | None
) -> tuple[str, str]:
    """SQL for a raw column as text, and for whether a time of day was dropped from it. A
    typed date or timestamp (Parquet) becomes its date in the layout's own text layout, so it
    is read as the sender's own and not counted as a correction; any other type its text."""
    value = ident(name)
    typed_date = arrow_type is not None and (
        pa.types.is_date(arrow_type) or pa.types.is_timestamp(arrow_type)
    )
    if not isinstance(column.kind, kinds.Date) or not typed_date:
        return f"CAST({value} AS VARCHAR)", "false"
    if getattr(arrow_type, "tz", None):
        value = f"({value} AT TIME ZONE {params.bind('local_time_zone', LOCAL_TIME_ZONE)})"
    layout = params.bind(f"{column.kind.own}_layout", column.kind.layout)
    text = f"strftime(CAST({value} AS DATE), {layout})"
    if pa.types.is_date(arrow_type):
        return text, "false"
    return text, f"coalesce(CAST({value} AS TIME) <> TIME '00:00:00', false)"


def _raw_names(source: Source) -> list[str]:
    """The raw text columns of the row tables, named by their conformed names."""
    return [c.raw_name for c in source.columns]


def _register_references(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """The reference tables the source's kinds read (the LSOA list, vocabularies), registered
    once on the connection as relations."""
    for column in source.columns:
        for name, table in column.kind.relations(column).items():
            con.register(name, table)


def _create_row_tables(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    raw_columns = ", ".join(f"{ident(n)} VARCHAR" for n in _raw_names(source))
    # fix_time_dropped: a typed timestamp whose time of day was dropped (a correction)
    con.execute(
        f"CREATE TEMP TABLE raw_rows (file VARCHAR, extract_date DATE, row_number BIGINT, "
        f"{raw_columns}, fix_time_dropped BOOLEAN)"
    )
    con.execute("CREATE TEMP TABLE malformed (file VARCHAR, row_number BIGINT, raw_line VARCHAR)")


@dataclass
class _Opened:
    """A raw file ready to read: the file DuckDB reads (the extract, or a UTF-8 copy), its
    header as written, each header column's name as read, and Parquet's column types."""

    path: Path
    header: list[str]
    as_read: list[str]
    types: dict[str, pa.DataType]
    copies: list[Path]


def _open(extract: Extract, source: Source, entry: FileLedger, spill_dir: Path) -> _Opened:
    if extract.fmt == "parquet":
        schema = _parquet_schema(extract)
        types = dict(zip(schema.names, schema.types, strict=True))
        return _Opened(extract.path, schema.names, schema.names, types, [])
    path, entry.encoding = _csv_text(extract, source, spill_dir)
    header = _csv_header(path)
    as_read = [f"c{i}" for i in range(len(header))]  # CSV columns by position
    return _Opened(path, header, as_read, {}, [path] if path != extract.path else [])


def _match_header(
    extract: Extract, source: Source, opened: _Opened, entry: FileLedger
) -> dict[str, str]:
    """The header's columns by normalised name (lower case, no surrounding spaces), as read;
    the file rejected when the header cannot be used. Extra and missing columns are noted."""
    normalised = [name.strip().lower() for name in opened.header]
    by_normalised = dict(zip(normalised, opened.as_read, strict=True))
    wanted = {c.name.lower() for c in source.columns}
    if not wanted & by_normalised.keys():
        # Most likely the first line is data: say so, and quote none of it.
        raise FileRejected(
            f"{extract.path.name}: header row missing or unrecognised "
            f"(it names no column of {source.name})"
        )
    repeated = sorted({n for n in normalised if n in wanted and normalised.count(n) > 1})
    if repeated:
        raise FileRejected(
            f"{extract.path.name}: column(s) {', '.join(repeated)} named more than once in the "
            "header (names compared ignoring case and surrounding spaces)"
        )
    entry.extra_columns = sorted(mask_nhs_numbers(n) for n in by_normalised if n not in wanted)
    entry.missing_columns = [c.name for c in source.columns if c.name.lower() not in by_normalised]
    missing_needed = [
        c.name for c in source.columns if c.needed and c.name in entry.missing_columns
    ]
    if missing_needed:
        raise FileRejected(
            f"{extract.path.name}: missing column(s) {', '.join(missing_needed)} needed by a measure"
        )
    for column in source.columns:
        arrow_type = opened.types.get(by_normalised.get(column.name.lower(), ""))
        if arrow_type is not None and pa.types.is_nested(arrow_type):
            raise FileRejected(
                f"{extract.path.name}: column {column.name} holds nested values "
                f"({arrow_type}), not text"
            )
    return by_normalised


def _stage_query(
    source: Source, extract: Extract, opened: _Opened, by_normalised: dict[str, str], number: int
) -> Query:
    """Every row of a file as text, in the layout's columns (a missing one null), numbered in
    the order read (`accepted_no`), into `staged_<number>`."""
    params = Params()
    texts = []
    for column in source.columns:
        name = by_normalised.get(column.name.lower())
        if name is None:  # a missing column nothing needs: null
            texts.append(("CAST(NULL AS VARCHAR)", "false"))
        else:
            texts.append(_as_text(params, column, name, opened.types.get(name)))
    selected = ", ".join(text for text, _ in texts)
    time_dropped = " OR ".join(dropped for _, dropped in texts if dropped != "false") or "false"
    relation = _relation(params, opened.path, extract.fmt, number, len(opened.header))
    return Query(
        f"CREATE TEMP TABLE staged_{number} AS SELECT row_number() OVER () AS accepted_no, "
        f"{selected}, {time_dropped} AS fix_time_dropped FROM {relation}",
        params,
    )


def _stage(
    con: duckdb.DuckDBPyConnection,
    extract: Extract,
    query: Query,
    number: int,
    opened: _Opened,
    spill_dir: Path,
) -> None:
    try:
        try:
            _run(con, query)
        except duckdb.InvalidInputException as error:
            if "state machine" not in str(error):
                raise
            # Mixed line endings (CRLF and LF in one file) defeat DuckDB's strict parser: read a
            # copy with LF endings instead, so wrong field counts are still caught line by line.
            copy = _lf_copy(opened.path, spill_dir)
            opened.copies.append(copy)
            con.execute(f"DROP TABLE IF EXISTS rejects_{number}")
            con.execute(f"DROP TABLE IF EXISTS rejects_scan_{number}")
            _run(con, Query(query.sql, Params(query.params, path=str(copy))))
    except duckdb.Error as error:
        if storage.write_failure(error):  # the scratch folder is full or read-only, not the file
            raise storage.CannotWrite(
                f"cannot write to {spill_dir}: {storage.write_failure(error)}"
            ) from error
        first_line = str(error).strip().splitlines()[0]
        raise FileRejected(f"{extract.path.name}: cannot be read ({first_line})") from None
    finally:
        for copy in opened.copies:
            copy.unlink(missing_ok=True)


def _append_rows(con: duckdb.DuckDBPyConnection, extract: Extract, number: int) -> None:
    """Move a staged file's rows into `raw_rows`, each with its data-row number, and its
    rejected lines into `malformed`."""
    file = {"file": extract.path.name}
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
            "INSERT INTO malformed SELECT $file, line - 1, first(csv_line) "
            f"FROM rejects_{number} GROUP BY line",
            file,
        )
        con.execute(
            f"CREATE TEMP TABLE marks_{number} AS "
            "SELECT accepted_before, sum(count(*)) OVER (ORDER BY accepted_before) AS rejected_so_far "
            "FROM (SELECT line - 1 - row_number() OVER (ORDER BY line) AS accepted_before "
            f"FROM (SELECT DISTINCT line FROM rejects_{number})) GROUP BY accepted_before"
        )
    con.execute(
        "INSERT INTO raw_rows SELECT $file, $extract_date, "
        "s.accepted_no + coalesce(m.rejected_so_far, 0), s.* EXCLUDE (accepted_no) "
        f"FROM staged_{number} s ASOF LEFT JOIN marks_{number} m ON s.accepted_no > m.accepted_before",
        file | {"extract_date": extract.extract_date},
    )
    con.execute(f"DROP TABLE staged_{number}")


def _load_file(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    extract: Extract,
    number: int,
    entry: FileLedger,
    spill_dir: Path,
) -> None:
    """Read one raw file's rows as text into `raw_rows` (and `malformed`), or reject it."""
    opened = _open(extract, source, entry, spill_dir)
    try:
        by_normalised = _match_header(extract, source, opened, entry)
    except FileRejected:
        for copy in opened.copies:
            copy.unlink(missing_ok=True)
        raise
    _stage(
        con,
        extract,
        _stage_query(source, extract, opened, by_normalised, number),
        number,
        opened,
        spill_dir,
    )
    _append_rows(con, extract, number)
    rows = con.execute(
        "SELECT (SELECT count(*) FROM raw_rows WHERE file = $f) "
        "+ (SELECT count(*) FROM malformed WHERE file = $f)",
        {"f": extract.path.name},
    ).fetchone()[0]
    if rows == 0 and not source.allow_no_rows:
        raise FileRejected(f"{extract.path.name}: no data rows")


# -- parsing -------------------------------------------------------------------------------------


def _text(name: str) -> str:
    return f"nullif(trim({ident(name)}), '')"


def _reason_sql(source: Source, params: Params) -> str:
    """The first fault of a row, in a fixed order of precedence; null for a usable row."""
    columns = source.columns
    dates = [c for c in columns if isinstance(c.kind, kinds.Date)]
    codes = [c.output for c in columns if isinstance(c.kind, kinds.Code)]
    non_negative = [c.output for c in columns if c.non_negative]
    required_text = [c.output for c in columns if c.required_value and c.kind is kinds.TEXT]
    any_of = " OR ".join
    cases = ["WHEN duplicate_rank > 1 THEN 'duplicate'"]
    if source.nhs_column:
        cases.append(
            f"WHEN nhs_blank THEN {params.bind('blank_nhs_reason', source.blank_nhs_reason)}"
        )
        cases.append("WHEN NOT nhs_valid THEN 'invalid_nhs_number'")
    if required_text:
        cases.append(f"WHEN {any_of(f'v_{c} IS NULL' for c in required_text)} THEN 'missing_value'")
    if dates:
        cases.append(f"WHEN {any_of(f'bad_{d.output}' for d in dates)} THEN 'invalid_date'")
        earliest = params.bind("earliest_plausible", kinds.EARLIEST_PLAUSIBLE)
        rules = [
            f"v_{d.output} < {earliest}"
            + ("" if d.may_be_future else f" OR v_{d.output} > extract_date")
            for d in dates
        ]
        rules += [f"v_{later} < v_{earlier}" for earlier, later in source.date_order]
        if source.lifespan:
            birth, death = source.lifespan
            years = params.bind("implausible_age", OLDEST_PLAUSIBLE_AGE + 1)
            rules.append(
                f"v_{birth} <= coalesce(v_{death}, extract_date) - INTERVAL ({years}) YEAR"
            )
        cases.append(f"WHEN coalesce({any_of(rules)}, false) THEN 'implausible_date'")
    if codes:
        cases.append(f"WHEN {any_of(f'code_{c}' for c in codes)} THEN 'invalid_code'")
    if non_negative:
        cases.append(f"WHEN {any_of(f'negative_{c}' for c in non_negative)} THEN 'negative_value'")
    if any(c.kind is kinds.LSOA for c in columns):
        cases.append("WHEN outside_england THEN 'resident_outside_england'")
    return "CASE " + " ".join(cases) + " END"


def _parse_query(source: Source) -> Query:
    """Every raw row with its parsed values and flags (see `indices.sources.kinds`), and its rank
    among exact copies within its file, into `parsed`."""
    params = Params()
    parsed = ", ".join(
        item for c in source.columns for item in c.kind.parse(c, _text(c.raw_name), params)
    )
    raw_list = ", ".join(ident(c) for c in _raw_names(source))
    return Query(
        f"CREATE TEMP TABLE parsed AS SELECT *, {parsed}, row_number() OVER "
        f"(PARTITION BY file, {raw_list} ORDER BY row_number) AS duplicate_rank FROM raw_rows",
        params,
    )


def _rows_query(source: Source) -> Query:
    """The parsed rows with their pseudonym (from `pseudonym_map`) and first fault, into `rows`."""
    params = Params()
    reason = _reason_sql(source, params)
    if source.nhs_column is None:
        sql = (
            "CREATE TEMP TABLE rows AS SELECT *, CAST(NULL AS VARCHAR) AS person_id, "
            f"{reason} AS reason FROM parsed"
        )
    else:
        sql = (
            f"CREATE TEMP TABLE rows AS SELECT *, {reason} AS reason FROM ("
            "SELECT p.* EXCLUDE (nhs_clean), m.person_id, m.person_id IS NOT NULL AS nhs_valid "
            "FROM parsed p LEFT JOIN pseudonym_map m USING (nhs_clean))"
        )
    return Query(sql, params)


def _parse_and_pseudonymise(con: duckdb.DuckDBPyConnection, source: Source, key: bytes) -> None:
    """Parse every row, find its first fault, and swap each valid NHS number for its pseudonym."""
    _run(con, _parse_query(source))
    if source.nhs_column is not None:
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
    _run(con, _rows_query(source))
    if source.nhs_column is not None:
        con.unregister("pseudonym_map")
    con.execute("DROP TABLE parsed")


def _cross_row_checks(
    con: duckdb.DuckDBPyConnection, source: Source, warehouse_dir: Location
) -> None:
    """Faults that need other rows: versions of one episode that disagree, conflicting
    identities, persons in no register."""
    if source.episode_key:
        key = f"v_{source.episode_key}"
        # Every version of a key whose versions differ (exact copies aside) is set aside.
        con.execute(
            f"UPDATE rows SET reason = 'conflicting_duplicate' WHERE reason IS NULL AND "
            f"{key} IN (SELECT {key} FROM rows WHERE duplicate_rank = 1 AND {key} IS NOT NULL "
            f"GROUP BY {key} HAVING count(*) > 1)"
        )
    if source.nhs_column is None:
        return
    if source.is_register:
        birth = f"v_{source.lifespan[0]}"
        con.execute(
            "UPDATE rows SET reason = 'conflicting_identity' WHERE reason IS NULL AND person_id IN "
            "(SELECT person_id FROM rows WHERE reason IS NULL GROUP BY person_id "
            f"HAVING count(DISTINCT {birth}) > 1)"
        )
        return
    register = warehouse.conformed(warehouse_dir, REGISTER)
    if not storage.exists(register):
        raise FileNotFoundError(f"conform {REGISTER} before {source.name}: {register} is missing")
    # Known persons: any valid NHS number in the register, even on a registration set aside.
    con.execute(
        "UPDATE rows SET reason = 'unknown_person' WHERE reason IS NULL AND person_id NOT IN ("
        "SELECT person_id FROM read_parquet($register) UNION "
        "SELECT person_id FROM read_parquet($register_quarantine) WHERE person_id IS NOT NULL)",
        {
            "register": str(register),
            "register_quarantine": str(warehouse.quarantine(warehouse_dir, REGISTER)),
        },
    )


# -- writing -------------------------------------------------------------------------------------


def _of_files(params: Params, files: list[str]) -> str:
    """SQL: the row comes from one of these files."""
    return f"list_contains(CAST({params.bind('files', files)} AS VARCHAR[]), file)"


def _conformed_value(column: Column) -> str:
    """The column of `rows` a conformed column is taken from."""
    if isinstance(column, AddedColumn):
        return column.origin
    return "person_id" if column.kind is kinds.NHS_NUMBER else f"v_{column.output}"


def _conformed_query(source: Source, files: list[str]) -> Query:
    """The conformed rows of some files, in the declared columns."""
    params = Params()
    items = [f"{_conformed_value(c)} AS {c.output}" for c in source.conformed_columns]
    return Query(
        f"SELECT {', '.join(items)} FROM rows WHERE reason IS NULL AND {_of_files(params, files)} "
        "ORDER BY file, row_number",
        params,
    )


def _quarantine_query(source: Source, files: list[str]) -> Query:
    """Quarantined rows of some files with their raw values; an NHS number is kept only as its
    pseudonym, or, when invalid, as its shape (every digit of any script masked), and anything
    like an NHS number in any other value or line is masked, so no NHS number is stored."""
    params = Params()
    masked = []
    for column in source.columns:
        value = ident(column.raw_name)
        if column.kind is kinds.NHS_NUMBER:
            digit = params.bind("any_digit", r"\p{Nd}")
            value = f"coalesce(person_id, regexp_replace({value}, {digit}, 'n', 'g'))"
        else:
            value = mask_nhs_numbers_sql(value)
        masked.append(f"{ident(column.name)} := {value}")
    name, of_files = params.bind("source", source.name), _of_files(params, files)
    return Query(
        f"""
        SELECT {name} AS source, file, row_number, reason, person_id,
               to_json(struct_pack({", ".join(masked)}))::VARCHAR AS raw_values
        FROM rows WHERE reason IS NOT NULL AND {of_files}
        UNION ALL
        SELECT {name}, file, row_number, 'malformed_row', NULL,
               to_json(struct_pack(line := {mask_nhs_numbers_sql("raw_line")}))::VARCHAR
        FROM malformed WHERE {of_files}
        ORDER BY file, row_number""",
        params,
    )


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
