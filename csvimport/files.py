"""Files csvimport writes that hold personal data: private (0600) and replaced whole.

One writer for every such file (results, failed users, the report, the journal, the raw
job logs, notices, the build's manifest and pool snapshot, a suggested mapping):
:func:`replaced_private`. A reader (a person, a spreadsheet, the next command) sees the old
file or the new one, never half of one; the new one is on disk (fsynced, and its folder
too) before the call returns; a writer that is killed leaves a temporary file named for
its process, which the next writer of the same file removes; and two writers at once never
write into each other's temporary file (the last one to finish wins).

:func:`open_private` opens a file inside a folder that is itself put in place whole (the
build's work folder, renamed to the run directory at the end), where a file-by-file
replace would add nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

PRIVATE_FILE_MODE = 0o600


def open_private(path: Path, mode: str = "w") -> IO[Any]:
    """Open ``path`` for writing, mode 0600 from the start (it holds personal data).

    ``mode`` is "w" (UTF-8 text, no newline translation) or "wb".
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # an existing file keeps its mode otherwise
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding="utf-8", newline="")


@contextmanager
def replaced_private(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write ``path`` anew, mode 0600 from the start: the ``with`` block writes into a
    temporary file beside it, which is fsynced and then replaces ``path``, and the folder
    is fsynced, at the end. On any error, Ctrl-C included, the temporary file goes and
    ``path`` is left as it was.

    ``mode`` is "w" (UTF-8 text, no newline translation) or "wb".
    """
    remove_abandoned(path)
    tmp = _temporary(path, os.getpid())
    try:
        with open_private(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make a file's creation, rename or removal in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_abandoned(path: Path) -> list[Path]:
    """Remove the temporary files that writers of ``path`` left when they were killed
    (their process is gone); return them."""
    removed = []
    prefix = f".{path.name}."
    try:
        candidates = [p for p in path.parent.iterdir()
                      if p.name.startswith(prefix) and p.name.endswith(".tmp")]  # fmt: skip
    except OSError:
        return []
    for candidate in candidates:
        pid = candidate.name[len(prefix) : -len(".tmp")]
        if pid.isdigit() and not _alive(int(pid)):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    older = path.with_name(path.name + ".tmp")  # the name earlier versions used
    if older.exists():
        older.unlink(missing_ok=True)
        removed.append(older)
    return removed


def private_work_folder(parent: Path, name: str) -> Path:
    """Make a new private (0700) folder ``.<name>.<pid>.<random>`` in ``parent`` for
    temporary files, first removing those that killed processes left there (they may
    hold personal data)."""
    prefix = f".{name}."
    try:
        leftovers = [p for p in parent.iterdir() if p.name.startswith(prefix) and p.is_dir()]
    except OSError:
        leftovers = []
    for folder in leftovers:
        pid = folder.name[len(prefix) :].partition(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", dir=parent))


def _temporary(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OverflowError:
        return False
    return True
