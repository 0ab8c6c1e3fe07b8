"""The Keras Tuner hypermodel of the CASNET space (Tohill et al. 2021 Sec. 3.3, Table 1).

Every hyperparameter of :class:`~casnet.networks.settings.ArchitectureConfig` is a tuner
hyperparameter with
the range of the ``search`` params: blocks and convolutions per block as integers, first-block
filters and dense units as powers of two, dropout continuous, optimiser, learning rate and batch
size as choices. The batch size is applied in :meth:`CasnetHyperModel.fit`, because Keras Tuner
only passes hyperparameters to ``build``.
"""

from __future__ import annotations

from typing import Any

import keras_tuner as kt

from casnet.networks.architecture import build_model
from casnet.networks.settings import ArchitectureConfig, SearchConfig

__all__ = ["CasnetHyperModel", "architecture_from_hp"]


def architecture_from_hp(hp: kt.HyperParameters, space: SearchConfig) -> ArchitectureConfig:
    """Declare the search space on ``hp`` and return the architecture it currently holds."""
    return ArchitectureConfig(
        blocks=hp.Int("blocks", *space.blocks),
        conv_per_block=hp.Int("conv_per_block", *space.conv_per_block),
        filters=hp.Choice("filters", space.powers("filters")),
        dense_layers=hp.Int("dense_layers", *space.dense_layers),
        dense_units=hp.Choice("dense_units", space.powers("dense_units")),
        dropout=hp.Float("dropout", *space.dropout),
        optimizer=hp.Choice("optimizer", list(space.optimizers)),
        learning_rate=hp.Choice("learning_rate", list(space.learning_rates)),
        batch_size=hp.Choice("batch_size", list(space.batch_sizes)),
        head=hp.Fixed("head", space.head),
        sigma_gradient=hp.Fixed("sigma_gradient", space.sigma_gradient),
        clipnorm=hp.Fixed("clipnorm", float(space.clipnorm)),
    )


class CasnetHyperModel(kt.HyperModel):
    """Builds a compiled CASNET network for each point of the search space.

    Parameters
    ----------
    space : SearchConfig
        The ``search`` params.
    input_size : int
        Side of the input stamps (60).
    """

    def __init__(self, space: SearchConfig, *, input_size: int = 60, name: str = "casnet") -> None:
        super().__init__(name=name, tunable=True)
        self.space = space
        self.input_size = input_size

    def build(self, hp: kt.HyperParameters):
        arch = architecture_from_hp(hp, self.space)
        # Deep, many-convolution points can shrink 60 px below 1 px: drop a block until it fits,
        # so the whole declared space stays searchable without failed trials.
        while True:
            try:
                return build_model(arch, input_size=self.input_size)
            except ValueError:
                if arch.blocks == 1:
                    raise
                arch = arch.model_copy(update={"blocks": arch.blocks - 1})

    def fit(self, hp: kt.HyperParameters, model, *args: Any, **kwargs: Any):
        """Fit with the trial's batch size (datasets given as callables of the batch size)."""
        batch = hp.get("batch_size")
        args = tuple(a(batch) if callable(a) else a for a in args)
        kwargs = {k: (v(batch) if callable(v) and k in ("x", "validation_data") else v)
                  for k, v in kwargs.items()}  # fmt: skip
        return model.fit(*args, **kwargs)
