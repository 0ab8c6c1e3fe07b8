"""Quality flags of the conventional measurement (defined in :mod:`casnet.flags`).

Re-exported here, next to the measurement that raises them; the definitions live in the
dependency-free :mod:`casnet.flags` so that configuration checks can name flags without importing
the measurement stack.
"""

from casnet.flags import FATAL, Flag, FlagCollector

__all__ = ["FATAL", "Flag", "FlagCollector"]
