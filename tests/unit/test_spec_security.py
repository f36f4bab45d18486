"""A spec is data, not code (issue 11, item 5).

A spec's `where` is one boolean expression over its input's columns, parsed by DuckDB's parser
and checked against an allow-list; the engine loads the declared inputs and then turns DuckDB's
external access off and locks its configuration before any spec text runs. A spec reads only
files beside it, `reference:` files, `published:` datasets and the warehouse's area-level
aggregates. Hostile YAML (aliases, depth, size, huge numbers) is one clear line. Whatever a spec
computes, the audit refuses a release holding person-level content.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import yaml

from indices.cli import main
from indices.composite import engine
from indices.composite.spec import SpecError, load_spec, parse_spec
from indices.core.published import list_versions
from indices.core.reference import reference_dir
from indices.releases.audit import AuditFailed, audit_table
from indices.releases.index_release import publish_index
from indices.releases.publish import publish_release

TINY_CSV = "u,x1,x2,y,g\np,0,10,50,A\nq,5,20,30,A\nr,10,0,40,B\ns,2.5,30,10,B\nt,7.5,40,20,B\n"


def tiny_spec(**changes) -> dict:
    spec = {
        "name": "tiny",
        "title": "A tiny index",
        "unit": "u",
        "inputs": [{"path": "tiny.csv"}],
        "normalise": {"method": "minmax"},
        "index": {
            "name": "idx",
            "children": [
                {"name": "x1", "column": "x1", "weight": 1},
                {"name": "y", "column": "y", "weight": 1},
            ],
        },
    }
    return {**spec, **changes}


def write_spec(folder: Path, spec: dict | str, name: str = "tiny.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.csv").write_text(TINY_CSV)
    path = folder / name
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return path


def run_cli(capsys, spec_path: Path, *extra: str) -> str:
    """Run `indices composite` on a hostile spec: it must exit 2 with one error line."""
    out = spec_path.parent / "out.parquet"
    status = main(["composite", str(spec_path), "--output", str(out), *extra])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("indices: error: "), err
    assert "Traceback" not in err
    assert not out.exists()
    return lines[0]


def refused(spec: dict) -> str:
    with pytest.raises(SpecError) as error:
        parse_spec(spec, "tiny.yaml")
    message = str(error.value)
    assert len(message.splitlines()) == 1, message
    return message


# -- filters -------------------------------------------------------------------------------------


def test_the_copy_attack_fails_with_one_line_and_writes_nothing(tmp_path: Path, capsys):
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    (warehouse / "pseudonym.key").write_text("s3cr3t-key\n")
    stolen = tmp_path / "k.csv"
    where = (
        f"true; COPY (SELECT content FROM read_text('{warehouse}/pseudonym.key')) TO '{stolen}'; --"
    )
    spec = write_spec(tmp_path / "specs", tiny_spec(inputs=[{"path": "tiny.csv", "where": where}]))
    line = run_cli(capsys, spec, "--warehouse-dir", str(warehouse))
    assert "inputs.0" in line and "tiny.csv" in line and "where" in line
    assert not stolen.exists()


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("length(read_text('/etc/hostname')) > 0", "read_text"),
        ("x1 IN (SELECT content FROM read_text('/etc/hostname'))", "subquery"),
        ("(SELECT count(*) FROM read_csv('/etc/passwd')) > 0", "subquery"),
        ("EXISTS (SELECT 1 FROM glob('/*'))", "subquery"),
        ("length(glob('/*')) > 0", "glob"),
        ("read_parquet('x.parquet') IS NULL", "read_parquet"),
        ("current_setting('memory_limit') = '1'", "current_setting"),
        ("getvariable('x') IS NULL", "getvariable"),
        ("main.lower(g) = 'a'", "lower"),
        ("x1 = ?", "parameter"),
        ("x1 > 0 ORDER BY 1", "one expression"),
        ("x1 > 0 LIMIT 1", "one expression"),
        ("x1 > 0 GROUP BY g", "one expression"),
        ("true UNION SELECT * FROM read_csv('/etc/passwd')", "one expression"),
        ("true; SELECT 1", "one expression"),
        ("true; SET enable_external_access = true", "one expression"),
        ("tiny.x1 > 0", "column"),
        ("sum(x1) OVER () > 0", "window"),
        ("x1 >", "does not parse"),
        ("(" * 200 + "x1 > 0" + ")" * 200, "deep"),
        ("x1 > 0 OR " * 200 + "true", "characters"),
    ],
)
def test_a_filter_that_is_not_a_plain_expression_is_refused(where: str, reason: str):
    message = refused(tiny_spec(inputs=[{"path": "tiny.csv", "where": where}]))
    assert message.startswith("tiny.yaml: inputs.0: ") and "tiny.csv" in message
    assert reason in message


def test_read_text_from_a_where_is_refused_through_the_cli(tmp_path: Path, capsys):
    # Unchecked, this filter keeps the units whose group is the file's content: it reads it.
    secret = tmp_path / "secret.txt"
    secret.write_text("A")
    where = f"g IN (SELECT content FROM read_text('{secret}'))"
    spec = write_spec(tmp_path / "specs", tiny_spec(inputs=[{"path": "tiny.csv", "where": where}]))
    line = run_cli(capsys, spec)
    assert "subquery" in line


@pytest.mark.parametrize(
    ("where", "units"),
    [
        ("g = 'A'", ["p", "q"]),
        ("x1 > 2 AND g IN ('A', 'B')", ["q", "r", "s", "t"]),
        ("lower(g) = 'b' OR x2 BETWEEN 15 AND 25", ["q", "r", "s", "t"]),
        ("NOT (g = 'A') AND y IS NOT NULL", ["r", "s", "t"]),
        ("g LIKE 'A%' AND x1 + x2 >= 25", ["q"]),
        ("CAST(x1 AS INTEGER) = 10 -- a comment", ["r"]),
        ("coalesce(x1, 0) < 3 AND CASE WHEN g = 'A' THEN true ELSE false END", ["p"]),
    ],
)
def test_plain_filters_still_select_their_rows(tmp_path: Path, where: str, units: list[str]):
    path = write_spec(tmp_path, tiny_spec(inputs=[{"path": "tiny.csv", "where": where}]))
    assert list(engine.load_inputs(load_spec(path)).index) == units


def test_the_engine_locks_its_connection_before_spec_text_runs(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t\n")
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE kept AS SELECT 1 AS x")
    engine.lock_down(con)
    assert con.execute("SELECT x FROM kept").fetchall() == [(1,)]  # loaded tables stay readable
    for statement in (
        f"SELECT content FROM read_text('{secret}')",
        f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        f"ATTACH '{tmp_path / 'other.db'}'",
    ):
        with pytest.raises(duckdb.Error):
            con.execute(statement)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.db").exists()


# -- what a spec may read ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("warehouse:measures/persons/E06000001.parquet", "private"),
        ("warehouse:pseudonym.key", "private"),
        ("warehouse:conformed/gp_patients/E06000001.parquet", "private"),
        ("warehouse:quarantine/gp_events.parquet", "private"),
        ("warehouse:measures/../pseudonym.key", ".."),
        ("reference:../../warehouse/pseudonym.key", ".."),
        ("../elsewhere/data.csv", ".."),
        ("/etc/passwd", "absolute"),
        ("reference:/etc/passwd", "absolute"),
        ("published:../frailty_lsoa", "dataset"),
        ("published:Frailty", "dataset"),
        ("s3://bucket/private.parquet", "kind"),
        ("file:/etc/passwd", "kind"),
    ],
)
def test_a_spec_may_not_name_private_or_outside_inputs(tmp_path: Path, path: str, reason: str):
    spec = write_spec(tmp_path, tiny_spec(inputs=[{"path": path}]))
    with pytest.raises(SpecError) as error:
        load_spec(spec)
    message = str(error.value)
    assert message.startswith("tiny.yaml: inputs.0.path: ") and path in message, message
    assert reason in message and len(message.splitlines()) == 1


def test_a_spec_reading_person_level_measures_is_refused_at_load(tmp_path: Path, capsys):
    warehouse = tmp_path / "warehouse"
    persons = warehouse / "measures" / "persons"
    persons.mkdir(parents=True)
    duckdb.sql(
        "COPY (SELECT 'E01000001' AS lsoa11_code, 'ab' || repeat('0', 30) AS pseudonym, "
        f"1 AS x1, 2 AS y) TO '{persons / 'E06000001.parquet'}'"
    )
    spec = write_spec(
        tmp_path / "specs",
        tiny_spec(
            unit="pseudonym", inputs=[{"path": "warehouse:measures/persons/E06000001.parquet"}]
        ),
    )
    line = run_cli(capsys, spec, "--warehouse-dir", str(warehouse))
    assert "warehouse:measures/persons/E06000001.parquet" in line and "private" in line


def test_the_area_counts_are_the_one_warehouse_table_a_spec_may_read():
    spec = load_spec(reference_dir() / "indices" / "frailty_index.yaml")
    assert spec.inputs[0].path == "warehouse:measures/area_counts.parquet"
    assert spec.inputs[0].where == "level = 'lsoa'"


def test_a_symlink_out_of_the_spec_folder_is_refused(tmp_path: Path, capsys):
    secret = tmp_path / "secret.csv"
    secret.write_text(TINY_CSV)
    spec_path = write_spec(tmp_path / "specs", tiny_spec(inputs=[{"path": "data/link.csv"}]))
    (tmp_path / "specs" / "data").mkdir()
    (tmp_path / "specs" / "data" / "link.csv").symlink_to(secret)
    with pytest.raises(SpecError, match=r"^tiny: input data/link\.csv leads outside"):
        engine.load_inputs(load_spec(spec_path))
    assert "leads outside" in run_cli(capsys, spec_path)
    # a link that stays inside the folder is an ordinary file
    (tmp_path / "specs" / "data" / "link.csv").unlink()
    (tmp_path / "specs" / "data" / "link.csv").symlink_to(tmp_path / "specs" / "tiny.csv")
    assert list(engine.load_inputs(load_spec(spec_path)).index) == list("pqrst")


def test_a_spec_not_read_from_a_file_has_no_folder_to_read_from():
    spec = parse_spec(tiny_spec())
    with pytest.raises(SpecError, match=r"^tiny: input tiny\.csv: .*not read from a file"):
        engine.load_inputs(spec)


def test_the_input_override_reads_the_file_the_user_names(tmp_path: Path, capsys):
    mine = tmp_path / "elsewhere" / "mine.csv"
    mine.parent.mkdir()
    mine.write_text(TINY_CSV)
    spec = write_spec(tmp_path / "specs", tiny_spec(inputs=[{"path": "absent.csv"}]))
    out = tmp_path / "out.parquet"
    assert main(["composite", str(spec), "--input", str(mine), "--output", str(out)]) == 0
    assert out.exists()


def publish_areas(publish_dir: Path, values: list[float]) -> None:
    codes = [f"E0100000{i}" for i in range(len(values))]
    publish_release(
        publish_dir,
        "demo_areas",
        pa.table({"lsoa11_code": codes, "x1": values, "y": values[::-1]}),
        description="areas",
        column_descriptions={},
        sort_by=["lsoa11_code"],
        reference_date=date(2025, 3, 31),
        inputs=[],
    )


def test_a_spec_reads_the_latest_release_of_a_published_dataset(tmp_path: Path, capsys):
    publish_dir = tmp_path / "published"
    publish_areas(publish_dir, [1.0, 2.0, 3.0])
    publish_areas(publish_dir, [1.0, 2.0, 3.0, 4.0])
    assert list_versions(publish_dir, "demo_areas") == ["v000001", "v000002"]
    spec = write_spec(
        tmp_path / "specs", tiny_spec(unit="lsoa11_code", inputs=[{"path": "published:demo_areas"}])
    )
    data = engine.load_inputs(load_spec(spec), publish_dir=publish_dir)
    assert list(data.index) == [f"E0100000{i}" for i in range(4)]
    out = tmp_path / "out.parquet"
    argv = ["composite", str(spec), "--output", str(out), "--publish-dir", str(publish_dir)]
    assert main(argv) == 0 and out.exists()
    # no release of the dataset: one line
    empty = tmp_path / "empty"
    line = run_cli(capsys, spec, "--publish-dir", str(empty))
    assert "published:demo_areas" in line and "no release" in line


# -- hostile YAML and sizes ----------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
name: tiny
title: *i
"""


def deep_tree(levels: int) -> dict:
    node: dict = {"name": "leaf", "column": "x1"}
    for level in range(levels):
        node = {"name": f"n{level}", "children": [node]}
    return tiny_spec(index=node)


def deep_tree_yaml(levels: int) -> str:
    """A tree `levels` nodes deep above its leaf, written by hand (a YAML dumper would recurse)."""
    head = yaml.safe_dump(tiny_spec(index=None)).replace("index: null\n", "")
    tree = "{name: n, children: [" * levels + "{name: leaf, column: x1}" + "]}" * levels
    return head + f"index: {tree}\n"


def test_yaml_aliases_are_refused_before_anything_expands(tmp_path: Path, capsys):
    started = time.monotonic()
    line = run_cli(capsys, write_spec(tmp_path, BILLION_LAUGHS))
    assert "tiny.yaml" in line and "aliases" in line and "line 1" in line
    assert time.monotonic() - started < 5
    # an anchor alone, or a merge key, is refused just the same
    anchored = yaml.safe_dump(tiny_spec()).replace("title: A tiny index", "title: &t A tiny index")
    assert "anchors" in run_cli(capsys, write_spec(tmp_path, anchored))


def test_a_tree_too_deep_is_one_line(tmp_path: Path, capsys):
    assert parse_spec(deep_tree(19)).name == "tiny"  # 20 levels with the leaf
    message = refused(deep_tree(20))
    assert message == "tiny.yaml: index: the tree is deeper than 20 levels"
    # a thousand levels: the YAML nesting is refused before anything recurses that deep
    line = run_cli(capsys, write_spec(tmp_path, deep_tree_yaml(1000)))
    assert "nested deeper than" in line
    assert "deeper than 20 levels" in run_cli(capsys, write_spec(tmp_path, deep_tree_yaml(21)))


def test_deeply_nested_yaml_is_one_line(tmp_path: Path, capsys):
    line = run_cli(capsys, write_spec(tmp_path, "name: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert "nested deeper than" in line


def test_too_many_nodes_or_inputs(tmp_path: Path):
    many = tiny_spec(index={"name": "idx", "children": [
        {"name": f"x{i}", "column": "x1"} for i in range(1001)
    ]})  # fmt: skip
    assert "at most 1000 nodes and indicators" in refused(many)
    inputs = tiny_spec(inputs=[{"path": "tiny.csv"}] * 21)
    assert "at most 20 inputs" in refused(inputs)


def test_a_spec_file_too_large_is_refused_unread(tmp_path: Path, capsys):
    text = yaml.safe_dump(tiny_spec(description="x" * (1 << 20)))
    line = run_cli(capsys, write_spec(tmp_path, text))
    assert "tiny.yaml" in line and "larger than 1 MiB" in line


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        ("1e8", "uncertainty.runs: Input should be a valid integer"),
        ("1.0e+8", "uncertainty.runs: Input should be a valid integer"),
        ("100.0", "uncertainty.runs: Input should be a valid integer"),
        ("true", "uncertainty.runs: Input should be a valid integer"),
        ("100000", "uncertainty.runs: Input should be less than or equal to 10000"),
    ],
)
def test_uncertainty_runs_must_be_a_sensible_integer(tmp_path: Path, capsys, runs, expected):
    text = yaml.safe_dump(tiny_spec()) + f"uncertainty: {{runs: {runs}, seed: 1}}\n"
    assert expected in run_cli(capsys, write_spec(tmp_path, text))


def test_runs_times_units_is_capped_before_anything_is_allocated(tmp_path: Path, capsys):
    rows = "".join(f"u{i},{i},{i % 7},{i % 11},A\n" for i in range(2000))
    spec = tiny_spec(uncertainty={"runs": 10_000, "seed": 1})
    path = write_spec(tmp_path, spec)
    (tmp_path / "tiny.csv").write_text("u,x1,x2,y,g\n" + rows)
    line = run_cli(capsys, path)
    assert "uncertainty.runs 10000 × 2000 units" in line and "10,000,000" in line


def test_the_shipped_specs_keep_loading():
    for name in ("frailty_index.yaml", "imd2019.yaml"):
        assert load_spec(reference_dir() / "indices" / name).inputs


# -- the audit of every release ------------------------------------------------------------------

PSEUDONYMS = ["3f9a0c7e12b44d8a9e01", "a1b2c3d4e5f60718293a", "00ff00ff00ff00ff00ff"]


def publish(tmp_path: Path, table: pa.Table, sort_by: list[str]) -> None:
    publish_release(
        tmp_path / "published",
        "leak",
        table,
        description="d",
        column_descriptions={},
        sort_by=sort_by,
        reference_date=None,
        inputs=[],
    )


def test_a_table_of_pseudonyms_with_innocent_names_is_refused(tmp_path: Path):
    table = pa.table({"area": PSEUDONYMS, "score": [1.0, 2.0, 3.0]})
    with pytest.raises(AuditFailed, match=r"leak: area: 3 value\(s\) look like pseudonyms"):
        publish(tmp_path, table, ["area"])
    assert list_versions(tmp_path / "published", "leak") == []


@pytest.mark.parametrize(
    "values",
    [
        ["943 476 5919", "E01000001"],
        ["943-476-5919", "E01000001"],
        ["9434765919", "E01000001"],
        [9434765919, 1],
        [9434765919.0, None],
    ],
    ids=["spaced", "hyphened", "plain", "integer", "float"],
)
def test_nhs_numbers_in_any_form_are_refused_and_never_echoed(tmp_path: Path, values):
    table = pa.table({"lsoa11_code": ["E01000001", "E01000002"], "ref": values})
    with pytest.raises(AuditFailed) as error:
        publish(tmp_path, table, ["lsoa11_code"])
    message = str(error.value)
    assert "ref: 1 value(s) look like NHS numbers" in message
    assert "943" not in message and "5919" not in message


def test_area_code_columns_must_hold_area_codes(tmp_path: Path):
    table = pa.table({"lsoa11_code": ["E01000001", "person-17", None], "x": [1, 2, 3]})
    with pytest.raises(AuditFailed, match=r"lsoa11_code: 1 value\(s\) are not area codes"):
        publish(tmp_path, table, ["lsoa11_code"])


def test_ordinary_area_releases_pass_the_audit():
    table = pa.table(
        {
            "lsoa11_code": ["E01000001", "W01000002", None],
            "lad19_code": ["E06000001", "W06000002", "S12000033"],
            "country_code": ["E92000001"] * 3,
            "file": ["gp_events_2025-03-31.csv", "deadbeef.csv", "a"],
            "rank": [1, 2, 3],
            "score": [0.5, 1.5, 2.5],
        }
    )
    assert audit_table(table, []) == []


def test_an_index_release_is_one_row_per_area(tmp_path: Path):
    # the tiny index's units are letters, not areas: nothing of it is published
    spec = tiny_spec()
    path = write_spec(tmp_path / "specs", spec)
    result = engine.compute(load_spec(path), engine.load_inputs(load_spec(path)))
    with pytest.raises(AuditFailed, match=r"u: 5 value\(s\) are not area codes"):
        publish_index(result, tmp_path / "published", [], None)
    assert list_versions(tmp_path / "published", "tiny_u") == []
    # the same index on area codes publishes
    areas = TINY_CSV
    for letter, code in zip("pqrst", range(1, 6), strict=True):
        areas = areas.replace(f"\n{letter},", f"\nE0100000{code},")
    (tmp_path / "specs" / "tiny.csv").write_text(areas)
    result = engine.compute(load_spec(path), engine.load_inputs(load_spec(path)))
    releases = publish_index(result, tmp_path / "published", [], None)
    assert releases["units"].published
