"""One writer per output: a lock beside each output while a run writes it.

Two runs writing one output (two ``casnet data simulate --out X`` with different seeds, two
``casnet data measure`` to one Parquet file) used to mix their rows or leave an unreadable file
while one of them exited 0. Every writer now takes the output's lock (:mod:`filelock`: an OS lock,
released when the process ends, however it ends) before it touches the output or its staging
area, and a second writer fails at once with a message naming the output.

The lock files live in the temporary folder (``casnet-locks/``), named by a hash of the output's
absolute path, not beside the output: beside it they would land inside DVC outputs (the split
stage writes ``data/split/{train,val,test}``) and change their hashes. So the lock guards runs on
one machine, the probe's case; runs on several machines writing one shared folder are not
guarded. A lock file stays after its run (removing it would let a third run lock a new file while
a second still holds the old one); it is empty.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from casnet.core.errors import CasnetInputError

__all__ = ["OutputLock", "lock_path", "output_lock", "scratch_dir"]


def lock_path(output: str | Path) -> Path:
    """The lock file of ``output``: ``<tmp>/casnet-locks/<hash of its absolute path>.lock`` (the
    same for every spelling of the path)."""
    key = hashlib.sha256(str(Path(output).resolve()).encode("utf-8", "surrogateescape"))
    return Path(tempfile.gettempdir()) / "casnet-locks" / f"{key.hexdigest()[:32]}.lock"


class OutputLock:
    """The lock of one output, held from :meth:`acquire` to :meth:`release`.

    Raises
    ------
    CasnetInputError
        From :meth:`acquire`, when another process holds it.
    """

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        self.path = lock_path(self.output)
        self._lock = FileLock(str(self.path), timeout=0)

    def acquire(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise CasnetInputError(
                f"{self.output}: another casnet run is writing it (it holds {self.path}); "
                "wait for it to finish, or write somewhere else"
            ) from None
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()


@contextmanager
def output_lock(output: str | Path) -> Iterator[OutputLock]:
    """Hold the lock of ``output`` for the ``with`` block (see :class:`OutputLock`)."""
    lock = OutputLock(output).acquire()
    try:
        yield lock
    finally:
        lock.release()


#: a scratch folder younger than this is never taken for a dead run's: its creator may not hold
#: its lock yet (it takes it a few milliseconds after creating the folder)
_SCRATCH_GRACE_S = 120.0
_OWNER = ".owner.lock"


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder ``<tmp>/<prefix><random>``, removed when the block ends, like
    :class:`tempfile.TemporaryDirectory`; and the folders of the same prefix that killed runs
    left behind are removed first.

    Issue 28: SIGKILLed ``casnet predict`` runs left their ``casnet-model-*`` copies (14 MB each)
    in the temporary folder for good. Each folder holds an OS lock (``.owner.lock``) while its run
    lives, released by the system however the run ends: a folder whose lock can be taken (and
    that is older than a grace period) belongs to no live run.
    """
    _remove_dead_scratch(prefix)
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    lock = FileLock(str(folder / _OWNER), timeout=0)
    lock.acquire()
    try:
        yield folder
    finally:
        lock.release()
        shutil.rmtree(folder, ignore_errors=True)


def _remove_dead_scratch(prefix: str) -> None:
    now = time.time()
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            if not folder.is_dir() or folder.is_symlink():
                continue
            if now - folder.stat().st_mtime < _SCRATCH_GRACE_S:
                continue
            owner = FileLock(str(folder / _OWNER), timeout=0)
            owner.acquire()
        except (Timeout, OSError):
            continue  # a live run holds it, or it is not ours to remove
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            owner.release()
