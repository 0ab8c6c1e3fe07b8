"""Benchmarks: commands that print figures, never timed tests.

:mod:`.speed` (conventional vs statmorph, data stages, networks), :mod:`.throughput` (network
FLOPs and images/s), :mod:`.harness` (``casnet benchmark all``), :mod:`.profiling`,
:mod:`.error_budget` (bias and scatter against the idealised truth).
"""
