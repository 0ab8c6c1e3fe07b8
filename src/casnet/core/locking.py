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
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from casnet.core.errors import CasnetInputError

__all__ = ["OutputLock", "lock_path", "output_lock"]


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
