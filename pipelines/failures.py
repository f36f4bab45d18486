"""Failures a retry cannot mend, reported as the one line the library gives."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from indices.publish import AuditFailed
from indices.sources.extracts import RawFolderError
from indices.steps import PartsNotCurrent, RegisterUnusable

# A raw folder that cannot be used, an extract that changed during the run, a part made from
# other extracts, an unusable register, a release that fails its audit: the same inputs fail
# the same way, so the step fails at once with the library's line, and is not retried.
PERMANENT = (RawFolderError, PartsNotCurrent, RegisterUnusable, AuditFailed)


@contextmanager
def permanent_failures() -> Iterator[None]:
    try:
        yield
    except PERMANENT as error:
        raise dg.Failure(str(error), allow_retries=False) from error
