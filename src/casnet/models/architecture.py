"""The CASNET architecture space (Tohill et al. 2021 Sec. 3.3, Table 1) as plain data.

A network is ``blocks`` convolutional blocks, each ``conv_per_block`` 3x3 ReLU convolutions
('valid' padding, as in the published networks) followed by 2x2 average pooling and batch
normalisation, with ``filters`` doubling from block to block; then ``dense_layers`` ReLU layers of
``dense_units``, dropout and one linear output. The loss is RMSE; MAE, RMSE and Pearson r are
monitored. :class:`Architecture` is what the tuner searches over and what training builds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import keras

from casnet.models.metrics import PearsonR, rmse

__all__ = ["OPTIMIZERS", "TABLE1", "Architecture", "build_model"]

OPTIMIZERS = ("adam", "adadelta", "rmsprop", "sgd", "adamax")
_OPTIMIZER_CLASSES = {
    "adam": keras.optimizers.Adam,
    "adadelta": keras.optimizers.Adadelta,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
    "adamax": keras.optimizers.Adamax,
}


@dataclass(frozen=True)
class Architecture:
    """One point of the search space (Table 1)."""

    blocks: int = 3
    conv_per_block: int = 2
    filters: int = 32
    dense_layers: int = 2
    dense_units: int = 1024
    dropout: float = 0.5
    optimizer: Literal["adam", "adadelta", "rmsprop", "sgd", "adamax"] = "adamax"
    learning_rate: float = 0.001
    batch_size: int = 512

    def __post_init__(self) -> None:
        checks = {
            "blocks": 1 <= self.blocks <= 6,
            "conv_per_block": 1 <= self.conv_per_block <= 4,
            "filters": self.filters >= 1,
            "dense_layers": 0 <= self.dense_layers <= 8,
            "dense_units": self.dense_units >= 1,
            "dropout": 0.0 <= self.dropout < 1.0,
            "optimizer": self.optimizer in OPTIMIZERS,
            "learning_rate": self.learning_rate > 0,
            "batch_size": self.batch_size >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                "invalid architecture: " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
            )

    def to_dict(self) -> dict:
        """Plain dict (MLflow params, JSON)."""
        return asdict(self)


#: The paper's Table 1 optima, per target.
TABLE1 = {
    "asymmetry": Architecture(3, 2, 32, 2, 1024, 0.50, "adamax", 0.001, 512),
    "concentration": Architecture(3, 2, 64, 2, 512, 0.55, "adam", 0.001, 512),
}


def build_model(arch: Architecture, *, input_size: int = 60, name: str = "casnet") -> keras.Model:
    """Build and compile the network described by ``arch`` for ``input_size``^2 x 1 stamps.

    Raises
    ------
    ValueError
        When the blocks shrink the input below 1 px (each block: -2 px per 3x3 'valid'
        convolution, then / 2).
    """
    size = input_size
    for _ in range(arch.blocks):
        size = (size - 2 * arch.conv_per_block) // 2
    if size < 1:
        raise ValueError(
            f"{arch.blocks} blocks of {arch.conv_per_block} convolutions shrink a "
            f"{input_size} px input below 1 px"
        )
    inputs = keras.Input(shape=(input_size, input_size, 1), name="stamp")
    x = inputs
    for b in range(arch.blocks):
        for c in range(arch.conv_per_block):
            x = keras.layers.Conv2D(
                arch.filters * 2**b, 3, padding="valid", activation="relu", name=f"conv{b}_{c}"
            )(x)
        x = keras.layers.AveragePooling2D(2, name=f"pool{b}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{b}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for d in range(arch.dense_layers):
        x = keras.layers.Dense(arch.dense_units, activation="relu", name=f"dense{d}")(x)
    x = keras.layers.Dropout(arch.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="linear", name="output")(x)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=_OPTIMIZER_CLASSES[arch.optimizer](learning_rate=arch.learning_rate),
        loss=rmse,
        metrics=[keras.metrics.MeanAbsoluteError(name="mae"),
                 keras.metrics.RootMeanSquaredError(name="rmse"), PearsonR()],
    )  # fmt: skip
    return model
