"""What dead runs leave behind, told from what live runs are writing, and removed.

Every temporary file and folder (staging folders, a catalog being built, the `.tmp` copy written
beside a file before it is renamed over it, DuckDB spill folders, copies of raw files) carries
its owner in its name: `<pid>@<host>@<random>` (`owner_tag`). A cleaner removes it once its
owner's process has ended, never while it runs, so two runs at once keep each other's files.
Where the owner cannot be asked (written on another host sharing the folder, or named before
owners were) it goes by age: older than `STALE_AFTER`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"
OWNER = re.compile(r"(?<![0-9])(?P<pid>[0-9]+)@(?P<host>[^@/]+)@[0-9a-f]{8}")
# Where a leftover's owner cannot be asked, it is a dead run's once this old (seconds): longer
# than any run (run monitoring cancels a run after 6 hours).
STALE_AFTER = 24 * 3600


def owner_tag() -> str:
    """`<pid>@<host>@<random>`: a name part that says which process writes a temporary file."""
    return f"{os.getpid()}@{HOST}@{secrets.token_hex(4)}"


def owner_gone(name: str, modified: float) -> bool:
    """Whether a temporary file or folder was left by a run that is gone: its owner's process
    has ended (same host), or, when its owner cannot be asked (another host, no owner in the
    name), it was last modified more than `STALE_AFTER` seconds ago."""
    match = OWNER.search(name)
    if match and match["host"] == HOST:
        return not _running(int(match["pid"]))
    return time.time() - modified > STALE_AFTER


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep(folder: Path, pattern: str = ".*") -> list[str]:
    """Remove what dead runs left in a local folder: the entries whose names match `pattern`
    (a regular expression) and whose owner is gone (`owner_gone`); the names removed. Best
    effort: an entry that cannot be removed stays, for the next sweep."""
    matcher = re.compile(pattern)
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    removed = []
    for entry in entries:
        if not matcher.fullmatch(entry.name):
            continue
        try:
            modified = entry.stat(follow_symlinks=False).st_mtime
            if not owner_gone(entry.name, modified):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(entry.name)
    return removed


def sweep_beside(path: Path) -> list[str]:
    """Remove the temporary copies of a file that dead runs left beside it (`.<name>.*.tmp`)."""
    return sweep(path.parent, rf"\.{re.escape(path.name)}\..+\.tmp")
