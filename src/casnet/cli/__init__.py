"""The ``casnet`` command line: a thin shell over the Python API, one module per command group.

:mod:`.root` (the application, ``casnet params``, the console script and its exit statuses),
:mod:`.measure` (``measure``, ``stamps``, ``show``), :mod:`.data` (``casnet data``, the DVC
stages), :mod:`.networks` (``tune``, ``train``, ``pull``, ``predict``), :mod:`.evaluate`,
:mod:`.bench` (``casnet benchmark``); :mod:`.common` holds the shared options and parsers.
"""

from casnet.cli.root import app, main

__all__ = ["app", "main"]
