"""Failures a retry cannot mend, reported as the one line the library gives."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from indices.core.storage import CannotWrite
from indices.measures.parts import PartsNotCurrent
from indices.releases.audit import AuditFailed
from indices.releases.catalog import CatalogError
from indices.sources.conformed import RegisterUnusable
from indices.sources.extracts import RawFolderError

# A raw folder that cannot be used, an extract that changed during the run, a part made from
# other extracts, an unusable register, a release that fails its audit, a folder full or
# read-only: the same inputs fail the same way (an operator must act first), so the step fails
# at once with the library's line, and is not retried.
PERMANENT = (
    RawFolderError,
    PartsNotCurrent,
    RegisterUnusable,
    AuditFailed,
    CannotWrite,
    CatalogError,
)


@contextmanager
def permanent_failures() -> Iterator[None]:
    try:
        yield
    except PERMANENT as error:
        raise dg.Failure(str(error), allow_retries=False) from error
