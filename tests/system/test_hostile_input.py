"""The reader on hostile input, as file permissions bind a process: an extract it cannot read is
one line naming it (the reader's other faults are in tests/unit/test_hostile_input.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO
from tests.helpers import PATIENT_COLUMNS, REGISTER, V0, register_row, write_csv


def run_unprivileged(code: str) -> str:
    """Run Python as file permissions bind it, with this worktree first on the path; what it
    printed. Root reads any file, so as root it runs without the capabilities that let it
    (util-linux `setpriv`)."""
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    done = subprocess.run(
        [*(prefix if os.geteuid() == 0 else []), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_unreadable_extract_is_one_line_naming_it(tmp_path):
    raw = tmp_path / "raw"
    path = write_csv(raw / "gp_patients" / REGISTER, PATIENT_COLUMNS, [register_row(V0)])
    path.chmod(0)
    lines = run_unprivileged(
        "from pathlib import Path\n"
        "from indices.sources.extracts import RawFolderError, check_raw_folder, "
        "current_extracts\n"
        "from pipelines.assets.raw import source_version\n"
        f"raw = Path({str(raw)!r})\n"
        "for check in (lambda: check_raw_folder(raw, ()), "
        "lambda: source_version(current_extracts(raw, 'gp_patients'))):\n"
        "    try:\n"
        "        check()\n"
        "    except RawFolderError as error:\n"
        "        print(error)\n"
    ).splitlines()
    assert lines == [f"{path}: cannot be read (permission denied)"] * 2
