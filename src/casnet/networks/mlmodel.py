"""What a logged MLflow model carries beside its network: its pip requirements and its signature
(the networks logged by training, the combined model logged by the registry)."""

from __future__ import annotations

import keras
import numpy as np

from casnet.data.preprocess import CROP_SIZE

__all__ = ["load_logged_network", "model_requirements", "network_signature"]


def network_signature(input_size: int = CROP_SIZE, outputs: int = 1):
    """MLflow signature of one network: (N, s, s, 1) float32 in (s = ``input_size``, the
    :class:`~casnet.data.preprocess.NetworkInput` size), (N, ``outputs``) float32 out (2 for a
    Gaussian head: mean and raw scale)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, input_size, input_size, 1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, outputs))]),
    )


def model_requirements(combined: bool = False) -> list[str]:
    """pip requirements logged with a model (MLflow cannot infer them for in-memory models).

    The combined model also needs casnet itself (``pip install -e .`` of this repository), which
    is not on PyPI: serve it with ``--env-manager local`` from the project's environment.
    """
    from importlib.metadata import version

    reqs = [f"keras=={keras.__version__}", f"tensorflow-cpu=={version('tensorflow-cpu')}"]
    if combined:
        reqs += [f"mlflow=={version('mlflow')}", f"astropy=={version('astropy')}",
                 f"pandas=={version('pandas')}"]  # fmt: skip
    return reqs


def load_logged_network(uri: str):
    """A network logged by a training (``runs:/<id>/model``, a ``models:/`` URI of one network)
    for inference: without its optimizer, casnet's custom layers, losses and metrics registered
    first (a recalibrated network holds a ``MeanMap`` and a ``SigmaScale`` layer; Keras cannot
    rebuild them unless their modules were imported)."""
    import mlflow

    from casnet.networks import metrics, recalibration, uncertainty  # noqa: F401  (registered)

    return mlflow.keras.load_model(uri, load_model_kwargs={"compile": False})
