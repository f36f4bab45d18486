"""`indices run` before any run: a bad raw folder is a one-line error, and the folders come from
the environment (the whole job on the demo extracts: tests/integration/test_pipeline.py)."""

from __future__ import annotations

import os

import pytest

from indices.cli import main
from indices.core.settings import Settings


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda raw: None, "does not exist"),
        (lambda raw: raw.mkdir(), "has no extract of gp_patients, gp_events, gp_medications"),
        (
            lambda raw: (
                (raw / "gp_patients").mkdir(parents=True)
                or (raw / "gp_patients" / "patients.csv").write_text("x")
            ),
            "not an extract of gp_patients",
        ),
    ],
)
def test_a_bad_raw_folder_is_a_one_line_error(tmp_path, capsys, setup, message):
    raw = tmp_path / "raw"
    setup(raw)
    status = main(
        [
            "run",
            "--raw-dir",
            str(raw),
            "--warehouse-dir",
            str(tmp_path / "w"),
            "--publish-dir",
            str(tmp_path / "p"),
        ]
    )
    error = capsys.readouterr().err
    assert status == 2
    assert message in error and error.count("\n") == 1


def test_folders_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INDICES_RAW_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("INDICES_PUBLISH_DIR", str(tmp_path / "p"))
    monkeypatch.delenv("INDICES_WAREHOUSE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings.resolve()
    assert settings.raw_dir == tmp_path / "r"
    assert settings.publish_dir == tmp_path / "p"
    assert settings.warehouse_dir == tmp_path / "data" / "warehouse"
    assert os.path.isabs(settings.raw_dir)
