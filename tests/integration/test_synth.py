"""Tests of the synthetic raw-extract generator (`indices.synth`)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from nhs_number import is_valid

from indices.core.reference import reference_path
from indices.synth import COLUMNS, FAULT_KINDS, SOURCES, generate

D = date(2024, 3, 31)
STAMP = D.isoformat()
# Hull (a comma in its name), Allerdale, Westminster
LADS = ["E06000010", "E07000026", "E09000033"]
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
UK = re.compile(r"^\d{2}/\d{2}/\d{4}$")


def _read(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    """All lines of a CSV extract as lists of fields (header first)."""
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    text = raw.decode(encoding)
    return list(csv.reader(io.StringIO(text, newline="")))


def _rows(out: Path, rel: str, meta: dict) -> tuple[list[str], list[list[str]]]:
    lines = _read(out / rel, meta["files"][rel].get("encoding", "utf-8"))
    return lines[0], lines[1:]


def _mod11_ok(value: str) -> bool:
    if not re.fullmatch(r"\d{10}", value):
        return False
    total = sum(int(c) * w for c, w in zip(value[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(value[9])


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if ISO.match(value) else None
    except ValueError:
        return None


def _uk_date(value: str) -> date | None:
    try:
        return date(int(value[6:]), int(value[3:5]), int(value[:2])) if UK.match(value) else None
    except ValueError:
        return None


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("clean")
    return out, generate(out, 3000, D, seed=5, lads=LADS)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("faulty")
    return out, generate(out, 3000, D, seed=5, lads=LADS, faults=0.03)


def test_deterministic_and_byte_identical(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", 1500, D, seed=3, lads=LADS, fmt="csv.gz", faults=0.02)
    b = generate(tmp_path / "b", 1500, D, seed=3, lads=LADS, fmt="csv.gz", faults=0.02)
    assert a == b
    root = tmp_path / "a"
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert len(files) == 4 + len(LADS) + 1 + 1
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    c = generate(tmp_path / "c", 1500, D, seed=4, lads=LADS, fmt="csv.gz", faults=0.02)
    rel = f"gp_events/gp_events_{STAMP}.csv.gz"
    assert (tmp_path / "c" / rel).read_bytes() != (tmp_path / "a" / rel).read_bytes()
    assert c["parameters"]["seed"] == 4


def test_files_and_columns_match_the_spec(clean: tuple[Path, dict]) -> None:
    out, meta = clean
    assert json.loads((out / "_synth.json").read_text()) == meta
    expected = {f"{s}/{s}_{STAMP}.csv" for s in SOURCES if s != "asc_cld"}
    expected |= {f"asc_cld/asc_cld_{lad}_{STAMP}.csv" for lad in LADS}
    assert set(meta["files"]) == expected
    for rel in expected:
        src = rel.split("/")[0]
        header, rows = _rows(out, rel, meta)
        assert [h.strip() for h in header] == COLUMNS[src]
        assert meta["files"][rel]["rows"] == len(rows)
        assert all(len(r) == len(header) for r in rows), rel
        assert set(meta["files"][rel]["faults"]) == set(FAULT_KINDS[src])
        assert not any(meta["files"][rel]["faults"].values())
    header, rows = _rows(out, f"fingertips/fingertips_{STAMP}.csv", meta)
    areas = {r[header.index("Area Code")] for r in rows}
    assert areas == {"E92000001", *LADS}
    assert "Kingston upon Hull, City of" in {r[header.index("Area Name")] for r in rows}
    notes = [r for r in rows if r[header.index("Value note")]]
    assert all(r[header.index("Value")] == "" for r in notes)


def test_parquet_is_all_strings(tmp_path: Path) -> None:
    meta = generate(tmp_path, 800, D, seed=1, lads=LADS[:1], fmt="parquet", faults=0.02)
    for rel, info in meta["files"].items():
        table = pq.read_table(tmp_path / rel)
        src = rel.split("/")[0]
        assert table.column_names == COLUMNS[src]
        assert all(str(t) == "string" for t in table.schema.types)
        assert table.num_rows == info["rows"]
        assert "malformed_row" not in info["faults"]
    events = pq.read_table(tmp_path / f"gp_events/gp_events_{STAMP}.parquet").to_pydict()
    info = meta["files"][f"gp_events/gp_events_{STAMP}.parquet"]["faults"]
    assert sum(v is None for v in events["nhs_number"]) == info["nhs_blank"]


def test_clean_run_is_valid(clean: tuple[Path, dict]) -> None:
    out, meta = clean
    header, pats = _rows(out, f"gp_patients/gp_patients_{STAMP}.csv", meta)
    dob_of: dict[str, str] = {}
    lsoas = set(re.findall(r"E01\d{6}", reference_path("geography/lsoa11_lad19.csv").read_text()))
    for r in pats:
        nhs, dob, sex, lsoa, practice, start, end, death = r
        assert is_valid(nhs) and _mod11_ok(nhs)
        assert dob_of.setdefault(nhs, dob) == dob
        assert sex in {"1", "2", "9", "X"} and lsoa in lsoas
        assert re.fullmatch(r"[A-Z]\d{5}", practice)
        assert _date(dob) <= _date(start) <= D
        assert end == "" or _date(start) <= _date(end) <= D
        assert death == "" or _date(dob) <= _date(death) <= D
    registered = set(dob_of)
    assert len(registered) == 3000
    seen = set()
    for src, date_col in (("gp_events", 1), ("gp_medications", 1), ("hes_apc", 3)):
        _, rows = _rows(out, f"{src}/{src}_{STAMP}.csv", meta)
        for r in rows:
            assert r[0] in registered
            assert date(1900, 1, 1) <= _date(r[date_col]) <= D
            assert _date(dob_of[r[0]]) <= _date(r[date_col])
        seen.add(src)
    _, events = _rows(out, f"gp_events/gp_events_{STAMP}.csv", meta)
    assert all(re.fullmatch(r"\d{6,18}", r[2]) for r in events)
    assert all((r[3] == "") == (r[4] == "") for r in events)
    _, meds = _rows(out, f"gp_medications/gp_medications_{STAMP}.csv", meta)
    assert all(re.fullmatch(r"\d{4}[0-9A-Z]{11}", r[2]) for r in meds)
    _, hes = _rows(out, f"hes_apc/hes_apc_{STAMP}.csv", meta)
    assert len({r[1] for r in hes}) == len(hes)
    admission_methods = set(
        pd.read_csv(reference_path("vocabularies/admission_methods.csv"), dtype=str)["code"]
    )
    for r in hes:
        assert _date(r[2]) <= _date(r[3]) and (r[4] == "" or _date(r[3]) <= _date(r[4]))
        assert r[6] in admission_methods
        diags = [c for c in r[7:] if c]
        assert (
            diags
            and r[7]
            and all(re.fullmatch(r"[A-Z]\d{2}", c.replace(".", "").upper()[:3]) for c in diags)
        )
    for lad in LADS:
        rel = f"asc_cld/asc_cld_{lad}_{STAMP}.csv"
        _, rows = _rows(out, rel, meta)
        assert all(r[1] in registered and r[0] == lad for r in rows)


def test_fault_counts_match_the_files(faulty: tuple[Path, dict]) -> None:
    out, meta = faulty
    rel = f"gp_events/gp_events_{STAMP}.csv"
    info = meta["files"][rel]["faults"]
    header, rows = _rows(out, rel, meta)
    assert (
        header != COLUMNS["gp_events"]
        and [h.strip().lower() for h in header] == COLUMNS["gp_events"]
    )
    assert info["header_variants"] == 1 and info["truncated_last_line"] == 1
    assert not (out / rel).read_bytes().endswith(b"\n")
    assert sum(len(r) != 5 for r in rows) == info["malformed_row"] + 1
    ok = [r for r in rows if len(r) == 5]
    assert sum(r[0] == "" for r in rows) == info["nhs_blank"]
    assert (
        sum(bool(re.fullmatch(r"\d{10}", r[0])) and not _mod11_ok(r[0]) for r in rows)
        == info["nhs_bad_check"]
    )
    assert (
        sum(bool(re.fullmatch(r"\d{3}[ -]\d{3}[ -]\d{4}", r[0])) for r in rows)
        == info["nhs_spaces"]
    )
    assert (
        sum(
            not re.fullmatch(r"\d{10}", r[0].replace(" ", "").replace("-", "")) and r[0] != ""
            for r in rows
        )
        == info["nhs_short"]
    )
    assert sum(not re.fullmatch(r"\d{6,18}", r[2]) for r in ok) == info["bad_snomed"]
    assert sum(bool(UK.match(r[1])) for r in ok) == info["iso_as_uk_date"]
    dates = [_date(r[1]) for r in ok if ISO.match(r[1])]
    assert (
        sum(d is None for d in dates) + sum(not ISO.match(r[1]) and not UK.match(r[1]) for r in ok)
        == info["unparseable_date"]
    )
    assert sum(d is not None and d > D for d in dates) == info["future_date"]
    assert sum(d is not None and d.year < 1900 for d in dates) == info["pre_1900_date"]
    n = meta["files"][rel]["rows"]
    for kind in FAULT_KINDS["gp_events"]:
        assert 0.015 * n < info[kind] < 0.045 * n, kind

    rel = f"gp_patients/gp_patients_{STAMP}.csv"
    info = meta["files"][rel]["faults"]
    _, rows = _rows(out, rel, meta)
    assert sum(a == b for a, b in zip(rows, rows[1:], strict=False)) == info["duplicate_row"]
    assert sum(len(r) != 8 for r in rows) == info["malformed_row"]
    ok = [r for r in rows if len(r) == 8]
    assert sum(r[3] == "" for r in ok) == info["blank_lsoa"]
    assert sum(r[3].startswith("E0199") for r in ok) == info["unknown_lsoa"]
    assert sum(r[2] not in {"1", "2", "9", "X"} for r in ok) == info["bad_sex_code"]
    dobs: dict[str, set[str]] = {}
    for r in ok:
        d = _date(r[1])
        if _mod11_ok(r[0]) and d is not None and d.year >= 1900:
            dobs.setdefault(r[0], set()).add(r[1])
    assert sum(len(v) - 1 for v in dobs.values()) == info["conflicting_identity"]

    rel = f"hes_apc/hes_apc_{STAMP}.csv"
    info = meta["files"][rel]["faults"]
    _, rows = _rows(out, rel, meta)
    ok = [r for r in rows if len(r) == 27]
    by_key: dict[str, list[list[str]]] = {}
    for r in ok:
        by_key.setdefault(r[1], []).append(r)
    pairs = [v for v in by_key.values() if len(v) > 1]
    assert sum(v[0] == v[1] for v in pairs) == info["duplicate_row"]
    assert sum(v[0] != v[1] for v in pairs) == info["conflicting_epikey"]
    sentinels = {"1800-01-01", "1801-01-01"}
    assert sum(bool(sentinels & {r[2], r[4], r[5]}) for r in ok) == info["hes_sentinel"]
    bad = sum(
        any(c and not re.fullmatch(r"[A-Z]\d{2}", c.replace(".", "").upper()[:3]) for c in r[7:])
        for r in ok
    )
    assert bad == info["bad_icd10"]

    rel = f"gp_medications/gp_medications_{STAMP}.csv"
    header, rows = _rows(out, rel, meta)
    assert header[-1] == "extract_batch" and meta["files"][rel]["faults"]["extra_column"] == 1
    assert sum(len(r) != 4 for r in rows) == meta["files"][rel]["faults"]["malformed_row"]

    for lad in LADS:
        rel = f"asc_cld/asc_cld_{lad}_{STAMP}.csv"
        info = meta["files"][rel]["faults"]
        _, rows = _rows(out, rel, meta)
        ok = [r for r in rows if len(r) == 9]
        assert sum(len(r) != 9 for r in rows) == info["malformed_row"]
        assert sum(r[1] == "" for r in ok) == info["asc_blank_nhs"]
        starts = [_uk_date(r[5]) for r in ok]
        assert sum(d is None for d in starts) == info["unparseable_date"]
        assert sum(d is not None and d > D for d in starts) == info["future_date"]
        assert sum(d is not None and d.year < 1900 for d in starts) == info["pre_1900_date"]


def test_efi_categories_among_65_plus(tmp_path: Path) -> None:
    generate(tmp_path, 20_000, D, seed=11)
    codes = reference_path("frailty/efi_snomed_codes.csv")
    con = duckdb.connect()
    con.execute(f"""
        create view pat as select * from read_csv('{tmp_path}/gp_patients/*.csv', all_varchar=true);
        create view ev as select * from read_csv('{tmp_path}/gp_events/*.csv', all_varchar=true);
        create view med as select * from read_csv('{tmp_path}/gp_medications/*.csv',
                                                  all_varchar=true);
        create view codes as select * from read_csv('{codes}', all_varchar=true);
    """)
    shares = dict(
        con.sql(f"""
        with reg as (
            select nhs_number, cast(date_of_birth as date) as dob from pat
            where cast(registration_start as date) <= date '{STAMP}'
              and (registration_end is null or cast(registration_end as date) > date '{STAMP}')
              and nhs_number not in (select nhs_number from pat where date_of_death is not null)
        ), old as (
            select nhs_number from reg
            where year(date '{STAMP}') - year(dob) - case when (month(dob), day(dob))
                  > ({D.month}, {D.day}) then 1 else 0 end >= 65
        ), coded as (
            select e.nhs_number, count(distinct c.deficit_id) as n from ev e
            join codes c using (snomed_code)
            where cast(e.event_date as date) <= date '{STAMP}' group by 1
        ), poly as (
            select nhs_number, 1 as n from med
            where cast(issue_date as date) > date '{STAMP}' - interval 1 year
              and cast(issue_date as date) <= date '{STAMP}'
            group by 1 having count(distinct left(bnf_code, 9)) >= 5
        ), counts as (
            select coalesce(c.n, 0) + coalesce(p.n, 0) as k from old
            left join coded c using (nhs_number) left join poly p using (nhs_number)
        )
        select case when k <= 4 then 'fit' when k <= 8 then 'mild' when k <= 12 then 'moderate'
                    else 'severe' end, count(*) / sum(count(*)) over ()
        from counts group by 1
    """).fetchall()
    )
    assert abs(shares["fit"] - 0.50) < 0.03
    assert abs(shares["mild"] - 0.35) < 0.03
    assert abs(shares["moderate"] - 0.12) < 0.025
    assert abs(shares["severe"] - 0.03) < 0.012


def test_asc_dates_and_encodings(clean: tuple[Path, dict], faulty: tuple[Path, dict]) -> None:
    out, meta = clean
    encodings = []
    for i, lad in enumerate(LADS):
        rel = f"asc_cld/asc_cld_{lad}_{STAMP}.csv"
        encoding = meta["files"][rel]["encoding"]
        encodings.append(encoding)
        raw = (out / rel).read_bytes()
        assert encoding == ("utf-8-sig" if i % 2 == 0 else "cp1252")
        assert raw.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
        _, rows = _rows(out, rel, meta)
        for r in rows:
            assert UK.match(r[5]) and (r[6] == "" or UK.match(r[6]))
            assert r[4] in {"Request", "Assessment", "Service", "Review"}
            assert r[3] in {"Male", "Female", "Other", "Unknown"}
            assert (r[7] == "") == (r[4] != "Service")
        if encoding == "cp1252" and any(ord(c) > 127 for r in rows for c in r[8]):
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
    assert set(encodings) == {"utf-8-sig", "cp1252"}
    out, meta = faulty
    variants = [
        meta["files"][f"asc_cld/asc_cld_{lad}_{STAMP}.csv"]["faults"].get("header_variants", 0)
        for lad in LADS
    ]
    assert variants == [0, 1, 0]


def test_long_term_support_share(clean: tuple[Path, dict]) -> None:
    out, meta = clean
    people = set()
    for lad in LADS:
        _, rows = _rows(out, f"asc_cld/asc_cld_{lad}_{STAMP}.csv", meta)
        people |= {
            r[1] for r in rows if r[4] == "Service" and r[7].startswith("Long Term") and r[6] == ""
        }
    _, pats = _rows(out, f"gp_patients/gp_patients_{STAMP}.csv", meta)
    old = {r[0] for r in pats if r[5] <= STAMP and r[6] == "" and _date(r[1]) <= date(1959, 3, 31)}
    assert 0.04 < len(people & old) / len(old) < 0.12


def test_unknown_lad_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="E07999999"):
        generate(tmp_path, 10, D, seed=1, lads=["E06000010", "E07999999"])
    with pytest.raises(ValueError):
        generate(tmp_path, 10, D, seed=1, fmt="xlsx")
    with pytest.raises(ValueError):
        generate(tmp_path, 10, D, seed=1, faults=0.5)
