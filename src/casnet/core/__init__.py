"""The bottom layer: what every stage shares and nothing of the science.

:mod:`.errors` (the exception family and its exit codes), :mod:`.flags` (every quality-flag family
and the ``<stage>_flag`` / ``<stage>_flag_reasons`` columns), :mod:`.layout` (the project root,
data paths and MLflow names), :mod:`.config` (the strict section base and the override parser),
:mod:`.parallel` (Dask executors), :mod:`.progress`, :mod:`.figures` (the plotting helpers) and
:mod:`.tracking` (the MLflow store). Nothing here imports another casnet package.
"""
