"""What a run reads, decided once when it starts: the reference date and the extracts in force.

A run's steps may start minutes or hours apart, in other processes or on other machines, while
new extracts keep arriving in the raw folder. Were each step to look at the raw folder afresh, a
register arriving mid-run would give one release two reference dates or two registers. So the
launcher (`indices run`, the schedule, the sensor, or for a run started in the UI its first step)
decides the inputs once, saves them in the private warehouse under their digest
(`runs/inputs-<digest>.json`) and records the digest, the reference date and the register on the
run as tags; every step of the run reads that record. Each extract is recorded with its size and
modification time, so a file replaced in place during the run is noticed, not half-read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from indices.core import storage, warehouse
from indices.core.settings import Settings
from indices.sources.extracts import (
    Extract,
    RawFolderError,
    check_raw_folder,
    current_extracts,
    parse_extract_name,
)
from indices.sources.registry import REGISTER, REQUIRED_SOURCES, SOURCES

REFERENCE_DATE_TAG = "indices/reference_date"
INPUTS_TAG = "indices/inputs"
REGISTER_TAG = "indices/register"


class InputsChanged(RawFolderError):
    """An extract a run decided to read changed or vanished during the run; one line."""


@dataclass(frozen=True)
class RunInputs:
    """The reference date and, per source, the extracts in force with their size and
    modification time when the run decided them."""

    raw_dir: Path
    reference_date: date
    extracts: dict[str, tuple[Extract, ...]]
    stamps: dict[str, tuple[int, int]]  # "<source>/<file name>" -> (bytes, mtime in ns)

    def of(self, source: str) -> list[Extract]:
        """The extracts in force of one source (for asc_cld, one per authority)."""
        return list(self.extracts.get(source, ()))

    def record(self) -> dict:
        """The JSON form: what the digest covers."""
        return {
            "raw_dir": str(self.raw_dir),
            "reference_date": self.reference_date.isoformat(),
            "extracts": [
                {"source": source, "file": e.path.name, "bytes": size, "mtime_ns": mtime}
                for source in SOURCES
                for e in self.extracts.get(source, ())
                for size, mtime in [self.stamps[f"{source}/{e.path.name}"]]
            ],
        }

    @property
    def digest(self) -> str:
        text = json.dumps(self.record(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def source_digest(self, source: str, extracts: list[Extract] | None = None) -> str:
        """A digest of what a conformed table (or one part of it: `extracts`) is made from, for
        the sidecar: the raw folder, and each file's name, size and modification time."""
        chosen = self.of(source) if extracts is None else extracts
        lines = [str(self.raw_dir)] + [
            f"{e.path.name} {self.stamps[f'{source}/{e.path.name}']}" for e in chosen
        ]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:20]

    def tags(self) -> dict[str, str]:
        """What a run records of its inputs, shown with the run in the Dagster UI."""
        register = self.of(REGISTER)
        return {
            REFERENCE_DATE_TAG: self.reference_date.isoformat(),
            INPUTS_TAG: self.digest,
            REGISTER_TAG: register[-1].path.name if register else "",
        }

    def check_unchanged(self, extracts: list[Extract]) -> None:
        """Raise `InputsChanged` if any of these extracts is gone or was rewritten since the
        run decided its inputs."""
        for extract in extracts:
            key = f"{extract.source}/{extract.path.name}"
            try:
                stat = extract.path.stat()
            except OSError as error:
                raise InputsChanged(
                    f"{extract.path}: cannot be read any more ({error.strerror}) although this "
                    "run decided to read it; start a new run"
                ) from None
            if (stat.st_size, stat.st_mtime_ns) != self.stamps[key]:
                raise InputsChanged(
                    f"{extract.path}: changed since this run decided its inputs (a file must not "
                    "be rewritten in place; send a new extract under a new date); start a new run"
                )


def decide(raw_dir: Path, reference_date: date | None, required: tuple[str, ...] = ()) -> RunInputs:
    """The inputs of a run starting now: the extracts in force of every source (the raw folder
    checked as `check_raw_folder` does) and the reference date, the one given or else the
    extract date of the register in force."""
    raw_dir = Path(raw_dir)
    found = check_raw_folder(raw_dir, required)
    stamps = {}
    for source, extracts in found.items():
        for extract in extracts:
            try:
                stat = extract.path.stat()
            except OSError as error:
                raise RawFolderError(f"{extract.path}: cannot be read ({error.strerror})") from None
            stamps[f"{source}/{extract.path.name}"] = (stat.st_size, stat.st_mtime_ns)
    if reference_date is None:
        register = found.get(REGISTER) or []
        if not register:
            raise RawFolderError(f"raw folder {raw_dir} has no extract of {REGISTER}")
        reference_date = register[-1].extract_date
    extracts = {source: tuple(found[source]) for source in SOURCES}
    return RunInputs(raw_dir, reference_date, extracts, stamps)


def from_record(record: dict) -> RunInputs:
    raw_dir = Path(record["raw_dir"])
    extracts: dict[str, list[Extract]] = {source: [] for source in SOURCES}
    stamps = {}
    for item in record["extracts"]:
        source = item["source"]
        extracts[source].append(parse_extract_name(raw_dir / source / item["file"], source))
        stamps[f"{source}/{item['file']}"] = (item["bytes"], item["mtime_ns"])
    return RunInputs(
        raw_dir,
        date.fromisoformat(record["reference_date"]),
        {source: tuple(found) for source, found in extracts.items()},
        stamps,
    )


def save(warehouse_dir: storage.Location, inputs: RunInputs) -> str:
    """Keep a run's inputs in the private warehouse under their digest (the same inputs, the
    same file: saving twice is harmless); the digest."""
    path = warehouse.run_record(warehouse_dir, f"inputs-{inputs.digest}")
    with contextlib.suppress(FileExistsError):
        storage.write_text(path, json.dumps(inputs.record(), indent=2) + "\n", exclusive=True)
    return inputs.digest


def load(warehouse_dir: storage.Location, digest: str) -> RunInputs:
    path = warehouse.run_record(warehouse_dir, f"inputs-{digest}")
    if not storage.exists(path):
        raise RawFolderError(f"this run's inputs record {path} is missing from the warehouse")
    return from_record(json.loads(storage.read_text(path)))


def claim(
    warehouse_dir: storage.Location, run_id: str, decide_now: Callable[[], RunInputs]
) -> tuple[RunInputs, bool]:
    """The inputs of a run that was started without them (from the UI): the first step to ask
    decides them (`decide_now()`) and records them under the run id, atomically; every other
    step reads that record. The inputs, and whether this call decided them."""
    path = warehouse.run_record(warehouse_dir, f"run-{run_id}")
    if not storage.exists(path):
        inputs = decide_now()
        save(warehouse_dir, inputs)
        try:
            storage.write_text(path, inputs.digest, exclusive=True)
            return inputs, True
        except FileExistsError:
            pass  # another step of the run decided first: its record holds
    return load(warehouse_dir, storage.read_text(path).strip()), False


# -- within a run: what every step reads -----------------------------------------------------


def decide_inputs(settings: Settings) -> RunInputs:
    """The inputs of a run starting now (see `indices.sources.inputs.decide`)."""
    return decide(settings.raw_dir, settings.reference_date, REQUIRED_SOURCES)


def start_run(settings: Settings) -> Settings:
    """Decide a run's inputs now, as its launcher does (the CLI, the schedule, the sensor), and
    keep them in the warehouse; the settings of the run (`settings.inputs.tags()` are the tags
    that hand the same inputs to every step of it)."""
    inputs = decide_inputs(settings)
    save(settings.warehouse_dir, inputs)
    return settings.with_inputs(inputs)


def inputs_of(settings: Settings) -> RunInputs:
    """The extracts and the reference date this run reads."""
    return settings.inputs or decide_inputs(settings)


def in_force(settings: Settings, source: str) -> list[Extract]:
    """The extracts in force of a source, as the run decided them (for asc_cld, one per
    authority); without a run, as the raw folder has them now."""
    if settings.inputs:
        return settings.inputs.of(source)
    return current_extracts(settings.raw_dir, source)


def reference_date(settings: Settings) -> date:
    """The run's reference date: the one set, else the register in force's extract date."""
    return settings.reference_date or inputs_of(settings).reference_date
