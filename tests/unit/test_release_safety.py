"""The catalog of a publish folder: one that disagrees with the release pointers (what a publisher
killed between its pointer and its catalog leaves, a deleted, empty or foreign file) is rebuilt
by the next publish; one that fails its check is not replaced; `indices catalog` checks and
rebuilds (the full and read-only disks are in tests/system/test_release_safety.py)."""

from __future__ import annotations

import shutil

import duckdb

from indices.cli import main
from indices.releases.catalog import rebuild_catalog
from tests.helpers import catalog_agrees, publish, raw_input, table


def test_a_catalog_that_disagrees_is_rebuilt_by_a_publish_that_publishes_nothing(tmp_path):
    root = tmp_path / "published"
    publish(root, table(10), raw_input(tmp_path, "a"))
    pointer = root / "demo" / "_releases" / "v000002.json"
    publish(root, table(10, shift=1), raw_input(tmp_path, "b"))
    # The catalog a publisher killed between its pointer and its catalog leaves: v000001 only.
    saved, stale = pointer.read_bytes(), tmp_path / "stale.duckdb"
    pointer.unlink()
    rebuild_catalog(root)
    pointer.write_bytes(saved)
    catalog = root / "catalog.duckdb"
    shutil.copy(catalog, stale)
    for spoil in (
        lambda: None,
        lambda: catalog.unlink(),
        lambda: (catalog.unlink(), duckdb.connect(str(catalog)).close()),  # an empty database
        lambda: catalog.write_bytes(b"not a database"),
        lambda: shutil.copy(stale, catalog),
    ):
        spoil()
        assert not catalog_agrees(root)
        assert not publish(root, table(10, shift=1), raw_input(tmp_path, "b")).published
        assert catalog_agrees(root)
        con = duckdb.connect(str(catalog), read_only=True)
        assert con.execute("SELECT list(version ORDER BY version) FROM releases").fetchone() == (
            ["v000001", "v000002"],
        )
        assert con.execute("SELECT list(rank ORDER BY lsoa11_code)[1] FROM demo").fetchone() == (2,)
        con.close()
    assert [p.name for p in root.glob("*") if p.name.endswith((".tmp", ".wal"))] == []
    # A publish folder moved elsewhere: the catalog's views named the old place.
    moved = tmp_path / "moved"
    root.rename(moved)
    assert not publish(moved, table(10, shift=1), raw_input(tmp_path, "b")).published
    con = duckdb.connect(str(moved / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM demo").fetchone() == (10,)
    con.close()


def test_a_catalog_that_fails_its_check_is_not_replaced(tmp_path, capsys):
    root = tmp_path / "published"
    publish(root, table(10), [])
    publish(root, table(7), [], dataset="other")
    catalog = (root / "catalog.duckdb").read_bytes()
    # A release whose data holds other rows than its manifest says, then none at all.
    other = root / "other" / "v000001" / "data.parquet"
    other.chmod(0o644)
    shutil.copy(root / "demo" / "v000001" / "data.parquet", other)
    assert main(["catalog", "--rebuild", "--publish-dir", str(root)]) == 2
    assert capsys.readouterr().err == (
        f"indices: error: {root / 'catalog.duckdb'} not replaced: "
        "view other__v000001 has 10 rows, its manifest says 7\n"
    )
    assert (root / "catalog.duckdb").read_bytes() == catalog
    other.unlink()
    assert main(["catalog", "--rebuild", "--publish-dir", str(root)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"indices: error: {root / 'catalog.duckdb'} not replaced: IO Error")
    assert str(other) in error and len(error.splitlines()) == 1
    assert (root / "catalog.duckdb").read_bytes() == catalog
    assert [p.name for p in root.glob("*") if p.name.endswith((".tmp", ".wal"))] == []


def test_the_catalog_command_checks_and_rebuilds(tmp_path, capsys):
    root = tmp_path / "published"
    publish(root, table(10), [])
    catalog = root / "catalog.duckdb"
    assert main(["catalog", "--publish-dir", str(root)]) == 0
    assert capsys.readouterr().out == f"{catalog}: agrees with the releases, kept (1 datasets)\n"
    catalog.unlink()
    assert main(["catalog", "--publish-dir", str(root)]) == 0
    assert capsys.readouterr().out == f"{catalog}: rebuilt (1 datasets)\n"
    assert catalog_agrees(root)
    assert not list(root.glob("*.wal"))
