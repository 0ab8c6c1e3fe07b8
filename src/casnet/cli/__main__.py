"""``python -m casnet.cli``: the console script without its entry point (e.g. in subprocesses)."""

from casnet.cli.root import main

main()
