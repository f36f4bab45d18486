"""Releases and the warehouse on a full, read-only or crash-littered disk: one clear line, the
previous release and catalog intact, the catalog rebuilt from the pointers, and what dead runs
left cleaned without touching a live run's files (a catalog that disagrees or fails its check:
tests/unit/test_release_safety.py; a step that cannot write, in Dagster:
tests/integration/test_release_safety.py).

A full disk is real: a small tmpfs mounted in a user and mount namespace of the scenario's own
(`unshare`, no root needed where user namespaces are allowed), and, everywhere, a file size limit
(RLIMIT_FSIZE, EFBIG). A read-only folder is `chmod a-w` seen by a process that cannot override
it: as root, one with every capability dropped (`setpriv`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indices.core import leftovers
from indices.core.duck import connect, copy_to_parquet
from indices.core.published import list_versions
from indices.sources.pseudonym import load_key
from tests.conftest import DEMO_RAW
from tests.helpers import publish, raw_input, table


def _namespaces_work() -> bool:
    command = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


# tmpfs where a mount namespace of our own can be had; a file size limit works everywhere.
DISKS = ["file-size-limit", *(["tmpfs"] if _namespaces_work() else [])]
CAUSE = {"tmpfs": "no space left on device", "file-size-limit": "file too large"}

SCENARIO = r"""
import json, os, resource, signal, sys
from datetime import date
from pathlib import Path
import duckdb
import pyarrow as pa
from indices.core.published import list_versions
from indices.releases.publish import publish_release

disk, how = Path(sys.argv[1]), sys.argv[2]
root = disk / "published"
filler = disk / "filler"
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)


def fill(room):
    # Leave `room` bytes: fill the tmpfs then give back `room`, or cap every file at `room`.
    if how == "tmpfs":
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, bytes(1 << 16))
        except OSError:
            pass
        os.close(fd)
        os.truncate(filler, max(filler.stat().st_size - room, 0))
    else:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, hard))


def free():
    if how == "tmpfs":
        filler.unlink()
    else:
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))


def data(n, shift=0):
    return pa.table({"lsoa11_code": [f"E01{i:06d}" for i in range(n)],
                     "rank": [(i + shift) % n + 1 for i in range(n)]})


def release(n, shift=0, source="a"):
    inputs = [{"role": "raw/gp_events", "path": "gp_events.csv", "sha256": source}]
    return publish_release(root, "demo", data(n, shift), description="d", column_descriptions={},
                           sort_by=["lsoa11_code"], reference_date=date(2025, 3, 31),
                           inputs=inputs)


def state():
    found = {"versions": list_versions(root, "demo")}
    try:
        con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
        found["catalog"] = [v for (v,) in con.execute(
            "SELECT version FROM releases WHERE dataset = 'demo' ORDER BY version").fetchall()]
        found["rows"] = con.execute("SELECT count(*) FROM demo").fetchone()[0]
        con.close()
    except Exception as error:
        found["catalog"] = f"unreadable: {error}"
    found["leftovers"] = sorted(
        str(p.relative_to(root)) for p in root.rglob("*")
        if p.name.endswith((".tmp", ".wal")) or p.parent.name == ".staging")
    return found


def attempt(step):
    try:
        outcome = "published" if step().published else "unchanged"
    except Exception as error:
        outcome = f"{type(error).__name__}: {error}"
    return {"outcome": outcome, **state()}


results = []
"""


def run_on_small_disk(tmp_path: Path, how: str, steps: str) -> tuple[list, str]:
    """Run a scenario on a disk that can be filled (see SCENARIO); what each step recorded, and
    what the scenario wrote to stderr."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = SCENARIO + steps + "\nprint(json.dumps(results))\n"
    command = [sys.executable, "-c", script, str(disk), how]
    if how == "tmpfs":
        mount = f'mount -t tmpfs -o size=4m tmpfs {disk} && exec "$@"'
        command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount, "sh"]
        command += [sys.executable, "-c", script, str(disk), how]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.parametrize("how", DISKS)
def test_a_full_publish_folder_keeps_the_release_and_the_catalog(tmp_path, how):
    steps = """
results.append(attempt(lambda: release(10)))
fill(64 * 1024)  # room for a small release, not for a catalog (about 0.5 MB)
results.append(attempt(lambda: release(10, shift=1, source="b")))
results.append(attempt(lambda: release(10, shift=1, source="b")))  # unchanged: catalog again
free()
results.append(attempt(lambda: release(10, shift=1, source="b")))
fill(0)  # no room even to stage a release
results.append(attempt(lambda: release(5000, shift=2, source="c")))
free()
"""
    (first, full, rerun, freed, no_room), _ = run_on_small_disk(tmp_path, how, steps)
    line = f"CannotWrite: cannot write to {tmp_path / 'disk' / 'published'}: {CAUSE[how]}"
    assert first == {
        "outcome": "published",
        "versions": ["v000001"],
        "catalog": ["v000001"],
        "rows": 10,
        "leftovers": [],
    }
    # The release is whole and visible (its pointer came after its data); the catalog could not
    # be rebuilt, so the old one stays, readable, and nothing temporary is left.
    assert full == {
        "outcome": line,
        "versions": ["v000001", "v000002"],
        "catalog": ["v000001"],
        "rows": 10,
        "leftovers": [],
    }
    assert rerun == full  # an unchanged rerun tries the catalog again, and keeps the old one
    assert freed == {
        "outcome": "unchanged",
        "versions": ["v000001", "v000002"],
        "catalog": ["v000001", "v000002"],
        "rows": 10,
        "leftovers": [],
    }
    assert no_room == {**freed, "outcome": line}


SCRIPT_PUBLISH = """
import sys
from datetime import date
from pathlib import Path
import pyarrow as pa
from indices.releases.publish import publish_release
data = pa.table({"lsoa11_code": ["E01000001", "E01000002"], "rank": [2, 1]})
try:
    publish_release(Path(sys.argv[1]), "demo", data, description="d", column_descriptions={},
                    sort_by=["lsoa11_code"], reference_date=date(2025, 3, 31), inputs=[])
except Exception as error:
    print(f"{type(error).__name__}: {error}")
"""


def unprivileged(command: list[str]) -> list[str]:
    """A command that file permissions stop: as root, run with every capability dropped."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *command]


def read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)


def writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def cli(*args: str) -> subprocess.CompletedProcess:
    command = unprivileged([sys.executable, "-m", "indices.cli", *args])
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_a_read_only_publish_folder_is_one_line_and_changes_nothing(tmp_path):
    root = tmp_path / "published"
    publish(root, table(10), raw_input(tmp_path, "a"))
    catalog = (root / "catalog.duckdb").read_bytes()
    read_only(root)
    try:
        line = f"cannot write to {root}: permission denied"
        done = subprocess.run(
            unprivileged([sys.executable, "-c", SCRIPT_PUBLISH, str(root)]),
            capture_output=True,
            text=True,
        )
        assert (done.stdout, done.stderr) == (f"CannotWrite: {line}\n", "")
        for command in (["prune", "demo", "--keep", "1"], ["catalog", "--rebuild"]):
            done = cli(*command, "--publish-dir", str(root))
            assert (done.returncode, done.stderr) == (2, f"indices: error: {line}\n")
        done = cli(
            "run",
            "--raw-dir",
            str(DEMO_RAW),
            "--warehouse-dir",
            str(tmp_path / "warehouse"),
            "--publish-dir",
            str(root),
        )
        assert (done.returncode, done.stderr) == (2, f"indices: error: {line}\n")
    finally:
        writable(root)
    assert list_versions(root, "demo") == ["v000001"]
    assert (root / "catalog.duckdb").read_bytes() == catalog


def test_a_read_only_warehouse_is_one_line(tmp_path):
    warehouse = tmp_path / "warehouse"
    (warehouse / "tmp").mkdir(parents=True)
    read_only(warehouse)
    try:
        done = cli(
            "run",
            "--raw-dir",
            str(DEMO_RAW),
            "--warehouse-dir",
            str(warehouse),
            "--publish-dir",
            str(tmp_path / "published"),
        )
        line = f"indices: error: cannot write to {warehouse}: permission denied\n"
        assert (done.returncode, done.stderr) == (2, line)
        # What the steps meet when the warehouse turns read-only during a run.
        script = f"""
from pathlib import Path
from indices.core.duck import connect, copy_to_parquet, write_json_atomic
from indices.sources.pseudonym import load_key
warehouse = Path({str(warehouse)!r})
for write in (
    lambda: copy_to_parquet(connect(), "SELECT 1 AS x", warehouse / "measures" / "x.parquet"),
    lambda: copy_to_parquet(connect(), "SELECT 1 AS x", warehouse / "tmp" / "x.parquet"),
    lambda: write_json_atomic(warehouse / "tmp" / "x.json", {{}}),
    lambda: connect(warehouse / "spill"),
    lambda: load_key(warehouse),
):
    try:
        write()
    except Exception as error:
        print(f"{{type(error).__name__}}: {{error}}")
"""
        env = {k: v for k, v in os.environ.items() if k != "INDICES_PSEUDONYM_KEY"}
        done = subprocess.run(
            unprivileged([sys.executable, "-c", script]), capture_output=True, text=True, env=env
        )
        assert done.stderr == ""
        assert done.stdout.splitlines() == [
            f"CannotWrite: cannot write to {warehouse / 'measures'}: permission denied",
            f"CannotWrite: cannot write to {warehouse / 'tmp'}: permission denied",
            f"CannotWrite: cannot write to {warehouse / 'tmp'}: permission denied",
            f"CannotWrite: cannot write to {warehouse / 'spill'}: permission denied",
            f"CannotWrite: cannot write to {warehouse}: permission denied",
        ]
    finally:
        writable(warehouse)


@pytest.mark.parametrize("how", DISKS)
def test_a_full_warehouse_is_one_line_and_leaves_no_temporary_file(tmp_path, how):
    steps = f"""
from indices.core.duck import connect, copy_to_parquet
from indices.cli import _cause, main
warehouse = disk / "warehouse"
con = connect(warehouse / "tmp")
copy_to_parquet(con, "SELECT 1 AS x", warehouse / "measures" / "small.parquet")
fill(64 * 1024)
try:
    query = "SELECT range AS x, hash(range) AS h FROM range(1000000)"
    copy_to_parquet(con, query, warehouse / "measures" / "big.parquet")
    results.append("written")
except Exception as error:
    results.append(f"{{type(error).__name__}}: {{error}}")
results.append(sorted(p.name for p in (warehouse / "measures").iterdir()))
fill(0)
results.append(main(["run", "--raw-dir", {str(DEMO_RAW)!r}, "--warehouse-dir", str(warehouse),
                     "--publish-dir", str(disk / "published")]))
free()
"""
    (written, listing, code), stderr = run_on_small_disk(tmp_path, how, steps)
    warehouse = tmp_path / "disk" / "warehouse"
    assert written == f"CannotWrite: cannot write to {warehouse / 'measures'}: {CAUSE[how]}"
    assert listing == ["small.parquet"]
    assert (code, stderr) == (2, f"indices: error: cannot write to {warehouse}: {CAUSE[how]}\n")


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def tag(pid: int, host: str | None = None) -> str:
    """The owner part of a temporary file's name (see `leftovers.owner_tag`)."""
    return f"{pid}@{host or leftovers.HOST}@0123abcd"


def test_leftovers_of_dead_runs_are_removed_and_a_live_runs_kept(tmp_path, monkeypatch):
    root = tmp_path / "published"
    publish(root, table(10), raw_input(tmp_path, "a"))
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        dead, alive, elsewhere = tag(dead_pid()), tag(live.pid), tag(1, "another-host")
        two_days_ago = time.time() - 2 * 24 * 3600
        staging = root / ".staging"
        made = {
            "dead": [
                staging / f"demo.{dead}",
                root / f".catalog.duckdb.{dead}.tmp",
                root / f".catalog.duckdb.{dead}.tmp.wal",
                root / "demo" / "_releases" / f".v000002.json.{dead}.tmp",
                staging / "demo-0123456789abcdef0123456789abcdef",  # an older name, old
                staging / f"demo.{elsewhere}-old",  # another host's, old
            ],
            "kept": [
                staging / f"demo.{alive}",
                root / f".catalog.duckdb.{alive}.tmp",
                staging / "demo-fedcba9876543210fedcba9876543210",  # an older name, recent
                staging / f"demo.{elsewhere}",  # another host's, recent: it may be running
            ],
        }
        for path in made["dead"] + made["kept"]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir() if path.parent == staging else path.write_bytes(b"x")
        for path in made["dead"][-2:]:
            os.utime(path, (two_days_ago, two_days_ago))
        assert not publish(root, table(10), raw_input(tmp_path, "a")).published
        assert [p for p in made["dead"] if p.exists()] == []
        assert [p for p in made["kept"] if not p.exists()] == []

        warehouse = tmp_path / "warehouse"
        scratch = warehouse / "tmp"
        target = warehouse / "measures" / "x.parquet"
        made = {
            "dead": [
                scratch / f"duckdb-{dead}",
                scratch / f".{dead}.parquet",
                scratch / f"gp_events.csv.{dead}.utf8.csv",
                target.with_name(f".x.parquet.{dead}.tmp"),
                warehouse / f".pseudonym.key.{dead}.tmp",
            ],
            "kept": [
                scratch / f"duckdb-{alive}",
                scratch / f"gp_events.csv.{alive}.lf.csv",
                target.with_name(f".x.parquet.{alive}.tmp"),
                # Beside another file: cleared when that one is written, not by every write.
                target.with_name(f".y.parquet.{dead}.tmp"),
            ],
        }
        for path in made["dead"] + made["kept"]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir() if path.name.startswith("duckdb-") else path.write_bytes(b"x")
        con = connect(scratch)
        copy_to_parquet(con, "SELECT 1 AS x", target)
        con.close()
        monkeypatch.delenv("INDICES_PSEUDONYM_KEY", raising=False)
        load_key(warehouse)
        assert [p for p in made["dead"] if p.exists()] == []
        assert [p for p in made["kept"] if not p.exists()] == []
    finally:
        live.kill()
        live.wait()
