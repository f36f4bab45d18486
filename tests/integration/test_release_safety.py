"""A step that cannot write fails in Dagster with that one line, which `indices run` prints (the
full and read-only disks themselves are in tests/system/test_release_safety.py)."""

from __future__ import annotations

import dagster as dg

from indices.cli import _cause
from indices.core import storage


def test_a_step_that_cannot_write_fails_with_that_line():
    """In Dagster the line is the step's error, and `indices run` prints it (see `_cause`)."""
    line = "cannot write to /srv/published: no space left on device"

    @dg.asset
    def full() -> None:
        raise storage.CannotWrite(line)

    # An instance of its own, entered: Dagster reads its definitions state through the current
    # instance, which an earlier test may have left pointing at one since gone.
    with dg.instance_for_test() as instance:
        result = dg.materialize([full], instance=instance, raise_on_error=False)
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [_cause(e) for e in failures] == [line]
