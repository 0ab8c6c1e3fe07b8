"""The model under evaluation: a registered model loaded here, or a scoring server's URL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.errors import CasnetInputError
from casnet.core.layout import ERR, TARGETS

__all__ = ["Predictor"]


class Predictor:
    """C and A of raw stamps from ``model``: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``,
    a local model folder, or ``http://host:port`` of ``mlflow models serve``.

    Both paths hand the model the same raw stamps, so an evaluation through the server equals the
    in-process one (the model applies ``crop_normalise`` itself).
    """

    def __init__(self, model: str, *, root: Path | None = None, batch_size: int = 512) -> None:
        self.model = model
        self.batch_size = batch_size
        self.url = None
        self.pyfunc = None
        self.name, self.version = None, None
        if model.startswith(("http://", "https://")):
            self.url = model.rstrip("/").removesuffix("/invocations")
        else:
            from casnet.networks.registry import load

            self.pyfunc = load(model, root)
            self.name, self.version = _registered(model, root)

    def describe(self) -> dict[str, str]:
        """Tags that say what was evaluated."""
        tags = {"casnet.model_uri": self.model}
        if self.name:
            tags["casnet.model_name"] = self.name
        if self.version:
            tags["casnet.model_version"] = str(self.version)
        return tags

    def predict(self, stamps: np.ndarray) -> pd.DataFrame:
        """``concentration`` and ``asymmetry`` for stamps (N, H, W), in batches, each followed by
        its standard deviation (``concentration_err``, ``asymmetry_err``; NaN where the model's
        network has no uncertainty, issue 18)."""
        columns = [c for t in TARGETS for c in (t, f"{t}{ERR}")]
        stamps = np.asarray(stamps, dtype=np.float32)
        if len(stamps) == 0:
            return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
        parts = []
        for lo in range(0, len(stamps), self.batch_size):
            batch = stamps[lo : lo + self.batch_size]
            if self.pyfunc is not None:
                parts.append(self.pyfunc.predict(batch))
            else:
                from casnet.networks.serve import invoke

                status, body = invoke(self.url, {"inputs": batch.tolist()})
                if status != 200:
                    raise CasnetInputError(f"{self.url} answered {status}: {body}")
                parts.append(pd.DataFrame(body["predictions"]))
        table = pd.concat(parts, ignore_index=True)
        # the out-of-distribution score where the model gives one (issue 29), over REST too
        cols = columns + (["ood_score"] if "ood_score" in table else [])
        return table.reindex(columns=cols).astype(float)  # a point network: NaN sigma


def _registered(uri: str, root: Path | None) -> tuple[str | None, str | None]:
    """(name, version) of a ``models:/`` URI (alias resolved), or (None, None)."""
    if not uri.startswith("models:/"):
        return None, None
    from mlflow import MlflowClient

    from casnet.core.tracking import tracking_uri

    client = MlflowClient(tracking_uri(root), registry_uri=tracking_uri(root))
    ref = uri.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, str(client.get_model_version_by_alias(name, alias).version)
    name, _, version = ref.partition("/")
    return name, version or None
