"""Writing files so that nothing is ever half-written and nothing the user had is lost.

Every file the tool writes goes to a temporary name beside its destination and is renamed over
it when complete (a rename within a directory is atomic on POSIX file systems), so a crash or
`kill -9` leaves the old file or the new one, never a torn one. Whole output directories are
built under a hidden temporary name and published by `publish`: the old directory is moved
aside, the new one moved in, and only then is the old one deleted.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tinyllama_cli.errors import UserError


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary name beside `path` for a writer that wants a file name of its own (matplotlib,
    a CSV writer): renamed over `path` when the block completes, removed when it raises."""
    path = Path(path)
    tmp = _tmp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes, fsync: bool = False) -> None:
    """Write `data` to `path` atomically; with `fsync`, durably (for checkpoint metadata)."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str | Path, text: str, fsync: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_json(
    path: str | Path,
    data: Any,
    indent: int | None = 2,
    fsync: bool = False,
    default: Callable[[Any], Any] | None = None,
    ensure_ascii: bool = True,
) -> None:
    """JSON with a trailing newline when indented (a file a person may read); `default` and
    `ensure_ascii` as in `json.dumps`."""
    text = json.dumps(data, indent=indent, default=default, ensure_ascii=ensure_ascii)
    write_text(path, text + "\n" if indent is not None else text, fsync=fsync)


def copy(src: str | Path, dst: str | Path) -> None:
    """Copy a file so that `dst` appears complete or not at all."""
    with replacing(dst) as tmp:
        shutil.copyfile(src, tmp)


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """`dst` as a hard link to `src` where the filesystem allows (no second copy of the bytes on
    disk), else a copy; either way `dst` appears complete or not at all."""
    with replacing(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def process_umask() -> int:
    """The umask, read from /proc where it can be (os.umask can only be read by setting it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_plain_file(path: Path) -> None:
    """Give `path` the mode a plain `open(path, "w")` would: 0666 minus the umask.

    Why: safetensors writes through a private temporary file and keeps its 0600, so a
    model exported for others to read (a shared cache, an upload) was readable by its owner
    only, unlike the JSON files beside it.
    """
    os.chmod(path, 0o666 & ~process_umask())


def remove(path: Path) -> None:
    """Delete a file, link or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def check_new_dir(out: Path, overwrite: bool, flag: str = "--out") -> None:
    """Refuse an output directory that would destroy something: a file in its place, or a
    non-empty directory without --overwrite (an empty one is fine to fill)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory; choose another {flag}")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(
            f"{out} already exists; pass --overwrite to replace it or choose another {flag}"
        )


def check_new_path(out: Path, overwrite: bool, flag: str = "--out") -> None:
    """Refuse an existing output (file or directory) without --overwrite."""
    if out.exists() and not overwrite:
        raise UserError(f"output {out} already exists; choose another {flag} or pass --overwrite")


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (the directory entry, not only the files)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, out: Path) -> None:
    """Move the finished `tmp` (file or directory) to `out`. An old `out` is moved aside first
    and deleted only once the new one is in place, so a crash never leaves neither."""
    old = None
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        remove(old)
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)  # put the user's output back
        raise
    if old is not None:
        remove(old)


def staging_path(out: Path) -> Path:
    """The hidden temporary name an output is built under, beside it (same file system)."""
    return out.with_name(f".{out.name}.tmp-{os.getpid()}")


@contextmanager
def staged(out: str | Path, overwrite: bool, flag: str = "--out") -> Iterator[Path]:
    """Yield a temporary path beside `out` (not yet created) to build the output in; on success
    it is published as `out`, on any error it is removed and `out` is untouched."""
    out = Path(out)
    check_new_path(out, overwrite, flag)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_path(out)
    remove(tmp)
    try:
        yield tmp
        publish(tmp, out)
    except BaseException:
        remove(tmp)
        raise
