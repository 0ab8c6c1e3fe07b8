"""The CASNET architecture space (Tohill et al. 2021 Sec. 3.3, Table 1) as plain data.

A network is ``blocks`` convolutional blocks, each ``conv_per_block`` 3x3 ReLU convolutions
('valid' padding, as in the published networks) followed by 2x2 average pooling and batch
normalisation, with ``filters`` doubling from block to block; then ``dense_layers`` ReLU layers of
``dense_units``, dropout and one linear output. The loss is RMSE; MAE, RMSE and Pearson r are
monitored. With ``head="gaussian"`` (issue 18) the output is a mean and a standard deviation,
the mean trained by RMSE and the sigma by the Gaussian likelihood
(:mod:`casnet.networks.uncertainty`). An
:class:`~casnet.networks.settings.ArchitectureConfig` is what the tuner searches over and what
training builds.
"""

from __future__ import annotations

import keras

from casnet.networks.metrics import PearsonR, rmse
from casnet.networks.settings import ArchitectureConfig, ModelConfig
from casnet.networks.uncertainty import Coverage, DetachedSigmaDense, OfMean, gaussian_loss

__all__ = ["OPTIMIZERS", "TABLE1", "Architecture", "build_model"]

OPTIMIZERS = ("adam", "adadelta", "rmsprop", "sgd", "adamax")
_OPTIMIZER_CLASSES = {
    "adam": keras.optimizers.Adam,
    "adadelta": keras.optimizers.Adadelta,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
    "adamax": keras.optimizers.Adamax,
}


#: The architecture of one network: the typed params section (validated once, at load time).
Architecture = ArchitectureConfig

#: The paper's Table 1 optima, per target (the ``model`` defaults of ``params.yaml``).
TABLE1 = ModelConfig().by_target()


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
    gaussian = arch.head == "gaussian"
    # issue 30 item 3: the sigma's likelihood kept off the trunk (sigma_gradient: detached)
    detached = gaussian and arch.sigma_gradient == "detached"
    head = DetachedSigmaDense if detached else keras.layers.Dense
    outputs = head(2 if gaussian else 1, activation="linear", name="output")(x)
    model = keras.Model(inputs, outputs, name=name)
    point = [keras.metrics.MeanAbsoluteError(name="mae"),
             keras.metrics.RootMeanSquaredError(name="rmse"), PearsonR()]  # fmt: skip
    model.compile(
        optimizer=_OPTIMIZER_CLASSES[arch.optimizer](
            learning_rate=arch.learning_rate, global_clipnorm=arch.clipnorm or None
        ),
        # a Gaussian head: the mean by RMSE, its sigma by the likelihood (gaussian_loss); its
        # point metrics are of the mean, its coverage at 1 and 2 sigma monitored every epoch
        loss=gaussian_loss if gaussian else rmse,
        metrics=[OfMean(m) for m in point] + [Coverage(1.0), Coverage(2.0)] if gaussian
        else point,
    )  # fmt: skip
    return model
