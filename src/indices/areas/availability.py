"""Which published figures can be trusted: a count whose inputs were rejected or never arrived
is withheld (null, with a stated reason), never published as a silently low number.

Measures and the sources they need: the population needs the GP register; the eFI needs GP
events and medications; the HFRS needs hospital episodes; long-term support needs each local
authority's social care extract, so it is withheld per authority. England's long-term support
depends on every sender's extract (a person may be supported by an authority they do not live
in, even one with no resident in the register), so any social care extract rejected or missing
withholds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from indices.core import storage, warehouse
from indices.sources.conform import read_sidecar
from indices.sources.extracts import parse_extract_name
from indices.sources.registry import MEASURES, SOURCES

# From the source declarations (`Source.feeds`): the national sources each measure needs, and
# the source sent by each local authority a measure needs, withheld per authority.
NATIONAL_SOURCES = {
    measure: needed
    for measure in MEASURES
    if (
        needed := tuple(
            s.name for s in SOURCES.values() if measure in s.feeds and not s.by_authority
        )
    )
}
PER_AUTHORITY = {measure: s.name for s in SOURCES.values() if s.by_authority for measure in s.feeds}


@dataclass
class Withheld:
    """Reasons, per measure, for withholding it everywhere, in some local authorities (their
    LSOAs and England with them), or for England alone (a rejected extract of an authority
    with no resident in the register: it may support residents of any other)."""

    everywhere: dict[str, str] = field(default_factory=dict)
    by_lad: dict[str, dict[str, str]] = field(default_factory=dict)
    england: dict[str, dict[str, str]] = field(default_factory=dict)

    def rules(self) -> pa.Table:
        """Where each measure is withheld and why, one rule a row in the order the reasons are
        given (`order`): `scope` everywhere, lad (that authority, its LSOAs and England) or
        england. The area counts join it as a table (`indices.areas.counts`)."""
        rows = [(m, "everywhere", None, r) for m, r in sorted(self.everywhere.items())]
        rows += [
            (m, "lad", lad, r)
            for m, lads in sorted(self.by_lad.items())
            for lad, r in sorted(lads.items())
        ]
        rows += [
            (m, "england", None, r)
            for m, senders in sorted(self.england.items())
            for _, r in sorted(senders.items())
        ]
        measures, scopes, lads, reasons = zip(*rows, strict=True) if rows else ((), (), (), ())
        return pa.table(
            {
                "order": pa.array(range(len(rows)), pa.int64()),
                "measure": pa.array(measures, pa.string()),
                "scope": pa.array(scopes, pa.string()),
                "lad19_code": pa.array(lads, pa.string()),
                "reason": pa.array(reasons, pa.string()),
            }
        )

    def describe(self) -> list[str]:
        lines = [f"{m} withheld everywhere: {r}" for m, r in sorted(self.everywhere.items())]
        for measure, lads in sorted(self.by_lad.items()):
            lines += [f"{measure} withheld in {lad}: {r}" for lad, r in sorted(lads.items())]
        for measure, senders in sorted(self.england.items()):
            lines += [f"{measure} withheld in England: {r}" for _, r in sorted(senders.items())]
        return lines


def _problem(warehouse_dir: Path, source: str) -> str | None:
    """Why a national source cannot be used, or None when it can."""
    if not storage.exists(warehouse.sidecar(warehouse_dir, source)):
        return f"{source} was not conformed"
    ledger = read_sidecar(warehouse_dir, source)["ledger"]
    rejected = [r["reason"] for r in ledger if r["outcome"] == "rejected"]
    if rejected:
        return f"{source} extract rejected ({'; '.join(rejected)})"
    if not ledger:
        return f"no {source} extract"
    return None


def withheld_measures(
    warehouse_dir: Path, covered_lads: Iterable[str], authorities: Iterable[str]
) -> Withheld:
    """What must be withheld, given the ledgers of the current conformed sources: those
    conformed by authority are read for the `authorities` with an extract in force."""
    result = Withheld()
    for measure, sources in NATIONAL_SOURCES.items():
        problems = [p for p in (_problem(warehouse_dir, s) for s in sources) if p]
        if problems:
            result.everywhere[measure] = "; ".join(problems)
    for measure, source in PER_AUTHORITY.items():
        usable: set[str] = set()
        rejected: dict[str, str] = {}
        for part in authorities:
            sidecar = read_sidecar(warehouse_dir, source, part)
            reasons = {
                r["file"]: r["reason"] for r in sidecar["ledger"] if r["outcome"] == "rejected"
            }
            for record in sidecar["inputs"]:
                path = Path(record["path"])
                lad = parse_extract_name(path, source).lad19_code
                if path.name in reasons:
                    rejected[lad] = f"{source} extract from {lad} rejected ({reasons[path.name]})"
                else:
                    usable.add(lad)
        covered = set(covered_lads)
        missing = {
            lad: rejected.get(lad, f"no {source} extract from {lad}")
            for lad in covered
            if lad not in usable
        }
        if missing:
            result.by_lad[measure] = missing
        elsewhere = {lad: reason for lad, reason in rejected.items() if lad not in covered}
        if elsewhere:
            result.england[measure] = elsewhere
    return result
