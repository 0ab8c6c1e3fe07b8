"""A quiet first import of TensorFlow (issue 31: no C++ log lines on a user's console).

TensorFlow 2.21 prints its oneDNN and CPU-feature notices while it loads, before its logging
reads ``TF_CPP_MIN_LOG_LEVEL`` ("All log messages before absl::InitializeLog() is called are
written to STDERR"), on CPUs where oneDNN is on (AVX-512 machines): the variable alone does not
hide them. :func:`quiet_tensorflow_import` silences file descriptor 2 while ``tensorflow`` is
first imported, and only then; ``TF_ENABLE_ONEDNN_OPTS=0`` would hide them too, but changes the
kernels (speed and round-off) of every training.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_tensorflow_import", "silenced_stderr"]


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """File descriptor 2 pointed at ``/dev/null`` for the block (C++ writes included)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (an embedding host): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the next finders and runs its module code with fd 2 silenced;
    removes itself on first use."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            with silenced_stderr():
                run(module)

        spec.loader.exec_module = exec_module
        return spec


def quiet_tensorflow_import() -> None:
    """Make the first ``import tensorflow`` of this process quiet (no-op when it was imported
    already, or when a user set ``TF_CPP_MIN_LOG_LEVEL`` below 2: they asked for the lines)."""
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    except ValueError:
        level = 2
    if "tensorflow" in sys.modules or level < 2:
        return
    if not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())
