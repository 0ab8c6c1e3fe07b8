"""The networks (Tohill et al. 2021 Sec. 2.4-3.3): architecture to served model.

:mod:`.architecture` (Table 1), :mod:`.hypermodel` (the search space), :mod:`.dataset` (tf.data
from stores), :mod:`.metrics`, :mod:`.inference`, :mod:`.tune` (Keras Tuner, every trial an
MLflow run), :mod:`.train`, :mod:`.registry` (champion/challenger and the combined pyfunc model),
:mod:`.serve` (``mlflow models serve``), :mod:`.predict` (``casnet predict``).
"""
