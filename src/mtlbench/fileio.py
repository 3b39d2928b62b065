"""Atomic file output: every file the pipeline writes appears whole or not at all.

An interrupted stage must never leave a half-written file that a later run (or DVC) would trust,
so writers go to a temporary name in the same folder and are renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from mtlbench.errors import ExpectedError


class DiskFullError(ExpectedError):
    """The disk filled up while writing an output (nothing half-written is left)."""


def no_space(dest: Path, needed_bytes: int | None) -> DiskFullError:
    folder = next((p for p in (Path(dest).parent, *Path(dest).parents) if p.exists()), Path("."))
    free = shutil.disk_usage(folder).free
    needed = f"needed about {max(needed_bytes, 1) / 1e6:,.1f} MB, " if needed_bytes else ""
    return DiskFullError(f"no space left on device: {dest} ({needed}{free / 1e6:,.1f} MB free there); free some space "
                         "(e.g. `dvc gc -w`, old runs in mlartifacts/) and run again: earlier outputs are intact")


class UnwritableError(ExpectedError):
    """A place the pipeline writes to is read-only or not writable by this user (nothing was written)."""


UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def is_unwritable(err: BaseException) -> bool:
    """A read-only file system or missing write permission: the user's to fix, not a bug."""
    return isinstance(err, OSError) and err.errno in UNWRITABLE


def unwritable(err: OSError) -> UnwritableError:
    return UnwritableError(f"cannot write {err.filename or 'an output'}: {(err.strerror or str(err)).lower()}; make that "
                           "folder writable (or work in a writable copy) and run again: earlier outputs are intact")


def is_disk_full(err: BaseException, folder: Path, needed_bytes: int | None) -> bool:
    """ENOSPC, or a write that failed in a library's own words (torch.save: "basic_ios::clear:
    iostream error", "unexpected pos") while the folder's disk has less free space than it needed."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(err, (OSError, RuntimeError)):
        try:
            return shutil.disk_usage(folder).free < max(needed_bytes or 0, 1 << 20)
        except OSError:
            return False
    return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def as_umask_allows(path: Path, directory: bool = False) -> None:
    """Give a temporary file (0600) or folder (0700) the mode a plain create would have had, so
    on a shared machine the process umask decides who can read the results."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(dest: Path | str, needed_bytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` only if the block succeeds. A
    full disk becomes a DiskFullError naming `dest` and about how much it needed."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as err:
        if is_disk_full(err, dest.parent, needed_bytes):
            raise no_space(dest, needed_bytes) from None
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        as_umask_allows(tmp_path)
        tmp_path.replace(dest)
    except (OSError, RuntimeError) as err:
        if is_disk_full(err, dest.parent, needed_bytes):
            raise no_space(dest, needed_bytes) from None
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(dest: Path | str, text: str) -> None:
    with atomic_path(dest, len(text.encode())) as tmp:
        tmp.write_text(text)


def write_json(dest: Path | str, data: Any) -> None:
    """Sorted keys and fixed indentation, so identical results give byte-identical files."""
    write_text(dest, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text())


@contextlib.contextmanager
def atomic_dir(dest: Path | str, scratch: Path | str | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder; it replaces `dest` (whole) only if the block succeeds. The
    temporary folder lives in `scratch` (default: beside `dest`, on the same file system); plot
    folders pass a scratch folder outside what DVC's plot definitions collect, so a killed stage
    leaves nothing there that `dvc plots show` would take for a plot."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = dest.parent if scratch is None else Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=scratch, prefix=f".{dest.name}."))
    try:
        yield tmp
        as_umask_allows(tmp, directory=True)
        old = None
        if dest.exists():
            old = scratch / f".{dest.name}.old-{os.getpid()}"
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
