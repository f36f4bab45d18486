"""Where the warehouse and the releases live: a local folder or an object store, through fsspec.

A location is a `Path` (a local folder) or a URL string (`s3://bucket/prefix`, `gs://...`,
`memory://...`). Every helper here takes either, so the steps have one code path. DuckDB
computes in-process over local files; for a URL, the connections of `indices.duck` register the
same fsspec filesystems, so `read_parquet('s3://...')` reads through them (no DuckDB extension is
needed). Writes go to a local temporary file first and are uploaded whole: an object appears
complete or not at all, as a rename does locally.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import fsspec
from fsspec.core import url_to_fs

Location = Path | str
_REMOTE: dict[str, fsspec.AbstractFileSystem] = {}  # protocol -> filesystem in use


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
        if exclusive:
            if fs.exists(_path(loc)):
                raise FileExistsError(str(loc))
            try:
                with fs.open(_path(loc), "xb") as handle:  # a conditional PUT where supported
                    handle.write(data)
                return
            except (ValueError, NotImplementedError):
                pass  # this filesystem has no exclusive create: the check above stands
        fs.pipe_file(_path(loc), data)
        return
    path = Path(loc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    try:
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
        Path(loc).parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, loc) if Path(local).is_file() else os.rename(local, loc)
        return
    fs = filesystem(loc)
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


def scratch_dir(warehouse: Location) -> Path:
    """A local folder for DuckDB's spill files and temporary copies: `<warehouse>/tmp` for a
    local warehouse, the system temporary folder for an object store."""
    if is_url(warehouse):
        return Path(tempfile.gettempdir()) / "indices-tmp"
    return Path(warehouse) / "tmp"


def local_temp(folder: Path, suffix: str) -> Path:
    """A fresh local file name in a local folder, for a result that is then `put` in place."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f".{uuid.uuid4().hex}{suffix}"
