"""The ``casnet`` command line: a thin shell over the Python API, one module per command group.

:mod:`.root` (the application, ``casnet params``, the console script and its exit statuses),
:mod:`.measure` (``measure``, ``stamps``, ``show``), :mod:`.data` (``casnet data``, the DVC
stages), :mod:`.networks` (``tune``, ``train``, ``pull``, ``predict``), :mod:`.evaluate`,
:mod:`.bench` (``casnet benchmark``); :mod:`.common` holds the shared options and parsers.
"""

import os

# the console's first contact (issue 31): no TensorFlow C++ INFO/WARNING lines (CPU-feature and
# oneDNN notices) on stderr; set before any command imports TensorFlow, a user's value wins
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# nor MLflow's progress bars for copies of a model between local folders (casnet's own progress
# bars say what long work is doing)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from casnet.core.quiet import quiet_tensorflow_import

# TensorFlow 2.21 prints its oneDNN / CPU-feature notices before it reads TF_CPP_MIN_LOG_LEVEL
quiet_tensorflow_import()

from casnet.cli.root import app, main  # noqa: E402

__all__ = ["app", "main"]
