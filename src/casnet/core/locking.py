"""One writer per output: a lock beside each output while a run writes it.

Two runs writing one output (two ``casnet data simulate --out X`` with different seeds, two
``casnet data measure`` to one Parquet file) used to mix their rows or leave an unreadable file
while one of them exited 0. Every writer now takes ``.<name>.lock`` in the output's folder
(:mod:`filelock`: an OS lock, released when the process ends, however it ends) before it touches
the output or its staging area, and a second writer fails at once with a message naming the
output. The lock file itself stays (removing it would let a third run lock a new file while the
second still holds the old one); it is empty and harmless.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from casnet.core.errors import CasnetInputError

__all__ = ["OutputLock", "lock_path", "output_lock"]


def lock_path(output: str | Path) -> Path:
    """The lock file of ``output``: ``.<name>.lock`` beside it."""
    output = Path(output)
    return output.with_name(f".{output.name}.lock")


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
