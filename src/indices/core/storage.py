"""Where the warehouse and the releases live: a local folder or an object store, through fsspec.

A location is a `Path` (a local folder) or a URL string (`s3://bucket/prefix`, `gs://...`,
`memory://...`). Every helper here takes either, so the steps have one code path. DuckDB
computes in-process over local files; for a URL, the connections of `indices.core.duck` register the
same fsspec filesystems, so `read_parquet('s3://...')` reads through them (no DuckDB extension is
needed). Writes go to a local temporary file first and are uploaded whole: an object appears
complete or not at all, as a rename does locally.

Temporary files are named after their owner (`indices.core.leftovers`), so what a dead run left can
be told from what a live one is writing. A folder that cannot be written (full, read-only, no
permission) is `CannotWrite`, one line naming the folder and the cause.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import fsspec
from fsspec.core import url_to_fs

from indices.core.leftovers import owner_tag, sweep_beside

Location = Path | str
_REMOTE: dict[str, fsspec.AbstractFileSystem] = {}  # protocol -> filesystem in use

# The causes of a failed write, by errno; DuckDB reports them in its message text.
WRITE_FAILURES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


class CannotWrite(Exception):
    """A folder cannot be written: full, read-only or not permitted. One line: the folder and
    the cause."""


def write_failure(error: BaseException) -> str | None:
    """The cause when an error (or one it was raised from) is a failed write, else None: an
    `OSError` by its errno, a DuckDB or Arrow error by its message."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in WRITE_FAILURES:
            return WRITE_FAILURES[seen.errno]
        if isinstance(seen, OSError | duckdb.Error):
            text = str(seen).lower()
            for code, cause in WRITE_FAILURES.items():
                if os.strerror(code).lower() in text:
                    return cause
            if isinstance(seen, PermissionError):  # an object store's refusal (no errno)
                return WRITE_FAILURES[errno.EACCES]
        seen = seen.__cause__
    return None


@contextmanager
def writing(folder: Location) -> Iterator[None]:
    """Writes under `folder`: a failed one (full, read-only, not permitted) is raised as
    `CannotWrite("cannot write to <folder>: <cause>")`; any other error as it is."""
    try:
        yield
    except CannotWrite:
        raise
    except (OSError, duckdb.Error) as error:
        cause = write_failure(error)
        if cause is None:
            raise
        raise CannotWrite(f"cannot write to {folder}: {cause}") from error


def check_writable(folder: Location) -> None:
    """Fail early, in one line, when a folder cannot be created or written: a small file is
    written in it and removed."""
    with writing(folder):
        probe = join(folder, f".indices-write-check.{owner_tag()}.tmp")
        if is_url(folder):
            filesystem(folder).pipe_file(_path(probe), b"x" * 4096)
            rm(probe)
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        try:
            with open(probe, "wb") as handle:
                handle.write(b"x" * 4096)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            Path(probe).unlink(missing_ok=True)


def modified_time(loc: Location) -> float:
    """When a file or folder last changed (for a folder on an object store: its newest object),
    as a POSIX timestamp."""
    if not is_url(loc):
        return Path(loc).stat().st_mtime
    fs = filesystem(loc)
    times = []
    for info in fs.find(_path(loc), detail=True, withdirs=False).values():
        stamp = info.get("LastModified") or info.get("mtime") or info.get("created")
        if hasattr(stamp, "timestamp"):
            times.append(stamp.timestamp())
        elif isinstance(stamp, int | float):
            times.append(float(stamp))
    return max(times, default=time.time())  # unknown: as if new, so it is kept


def is_url(location: Location) -> bool:
    """A URL with a scheme other than `file://`."""
    text = str(location)
    return isinstance(location, str) and "://" in text and not text.startswith("file://")


def location(value: str | Path) -> Location:
    """A local folder as an absolute `Path`, a URL as a string without a trailing slash."""
    text = str(value)
    if is_url(text):
        filesystem(text)  # fail early on an unknown protocol or a missing package
        return text.rstrip("/")
    return Path(text.removeprefix("file://")).expanduser().resolve()


def coerce(value: str | Path) -> Location:
    """A URL stays a string, anything else is a `Path` (as given, not resolved)."""
    return value if is_url(value) else Path(value)


def filesystem(loc: Location) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem of a location (for a URL, remembered for DuckDB connections)."""
    if not is_url(loc):
        return fsspec.filesystem("file")
    fs, _ = url_to_fs(str(loc))
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    _REMOTE[protocol] = fs  # the latest: a new endpoint or new credentials give a new instance
    return fs


def remote_filesystems() -> list[fsspec.AbstractFileSystem]:
    """The object-store filesystems this process has used, for DuckDB to register."""
    return list(_REMOTE.values())


def _path(loc: Location) -> str:
    """The path the filesystem understands (a URL keeps its scheme, which fsspec strips)."""
    return str(loc)


def join(loc: Location, *parts: str) -> Location:
    """`loc / part / ...`, a `Path` for a local folder and a URL string for an object store."""
    if is_url(loc):
        return "/".join([str(loc).rstrip("/"), *(p.strip("/") for p in parts)])
    return Path(loc).joinpath(*parts)


def parent(loc: Location) -> Location:
    """The folder a file or folder is in."""
    if is_url(loc):
        return str(loc).rstrip("/").rsplit("/", 1)[0]
    return Path(loc).parent


def name(loc: Location) -> str:
    return str(loc).rstrip("/").rsplit("/", 1)[-1]


def exists(loc: Location) -> bool:
    return filesystem(loc).exists(_path(loc))


def listdir(loc: Location) -> list[str]:
    """The names of the entries directly under a folder (none when it does not exist)."""
    fs = filesystem(loc)
    try:
        entries = fs.ls(_path(loc), detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return []
    own = _path(loc).split("://", 1)[-1].rstrip("/")
    return sorted({name(e) for e in entries if str(e).split("://", 1)[-1].rstrip("/") != own})


def read_bytes(loc: Location) -> bytes:
    return filesystem(loc).cat_file(_path(loc))


def read_text(loc: Location) -> str:
    return read_bytes(loc).decode()


def write_bytes(loc: Location, data: bytes, exclusive: bool = False) -> None:
    """Write a whole file: beside then renamed locally, one PUT on an object store, so a reader
    sees the old content or the new, never a part. `exclusive` refuses an existing file
    (FileExistsError), atomically where the store supports conditional writes."""
    if is_url(loc):
        fs = filesystem(loc)
        if exclusive and fs.exists(_path(loc)):
            raise FileExistsError(str(loc))
        with writing(parent(loc)):
            if exclusive:
                try:
                    with fs.open(_path(loc), "xb") as handle:  # a conditional PUT where supported
                        handle.write(data)
                    return
                except (ValueError, NotImplementedError):
                    pass  # this filesystem has no exclusive create: the check above stands
            fs.pipe_file(_path(loc), data)
        return
    path = Path(loc)
    with writing(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_beside(path)
        tmp = path.with_name(f".{path.name}.{owner_tag()}.tmp")
        try:
            tmp.write_bytes(data)
            if exclusive:
                os.link(tmp, path)  # fails if the target exists, and is atomic
            else:
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def write_text(loc: Location, text: str, exclusive: bool = False) -> None:
    write_bytes(loc, text.encode(), exclusive)


def put(local: Path, loc: Location) -> None:
    """Move a file or folder written locally to its place: a rename locally (atomic for a file
    and a folder), an upload to an object store (each object appears whole)."""
    if not is_url(loc):
        with writing(Path(loc).parent):
            Path(loc).parent.mkdir(parents=True, exist_ok=True)
            os.replace(local, loc) if Path(local).is_file() else os.rename(local, loc)
        return
    fs = filesystem(loc)
    with writing(parent(loc)):
        if Path(local).is_dir():
            for item in sorted(Path(local).rglob("*")):
                if item.is_file():
                    fs.put_file(str(item), join(loc, item.relative_to(local).as_posix()))
        else:
            fs.put_file(str(local), _path(loc))
    Path(local).unlink() if Path(local).is_file() else None


def rm(loc: Location) -> None:
    """Remove a file or a folder and everything under it; nothing if it is not there."""
    if not is_url(loc):
        path = Path(loc)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        return
    fs = filesystem(loc)
    if fs.exists(_path(loc)):
        fs.rm(_path(loc), recursive=True)


def read_table(loc: Location):
    """A Parquet file as an Arrow table."""
    import pyarrow.parquet as pq

    if not is_url(loc):
        return pq.read_table(loc)
    return pq.read_table(_path(loc), filesystem=filesystem(loc))


def system_temp() -> Path:
    """A local folder for temporary files whose destination is an object store."""
    return Path(tempfile.gettempdir()) / "indices-tmp"


def local_temp(folder: Path, suffix: str) -> Path:
    """A fresh local file name in a local folder, for a result that is then `put` in place;
    named after its owner (see `indices.core.leftovers`)."""
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    return folder / f".{owner_tag()}{suffix}"
