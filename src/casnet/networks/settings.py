"""Settings of the networks (``params.yaml`` sections ``model`` and ``search``; Table 1)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, model_validator

from casnet.core.config import Section
from casnet.core.layout import TARGETS

__all__ = ["HEADS", "SIGMA_GRADIENTS", "ArchitectureConfig", "ModelConfig", "SearchConfig"]

#: the output heads (issue 18): ``point`` one value, RMSE loss (the paper); ``gaussian`` a mean
#: and a standard deviation, Gaussian negative log-likelihood (:mod:`casnet.networks.uncertainty`)
HEADS = ("point", "gaussian")
Head = Literal["point", "gaussian"]
#: does a Gaussian head's sigma train the trunk? (issue 30 item 3; ignored by a point head)
SigmaGradient = Literal["shared", "detached"]
SIGMA_GRADIENTS = get_args(SigmaGradient)
#: issue 30: the global gradient norm is clipped to this (0: not clipped). Science run 2's
#: trainings (plain RMSprop/Adam at 1e-3 to 5e-3) showed loss spikes after which a seed sat at the
#: mean (A seed 3: train RMSE flat at ~0.14); clipping the global norm bounds the step a single
#: batch with a tiny sigma (the likelihood's gradient grows as 1/sigma^2) can take.
_CLIPNORM = "the optimizer's global gradient-norm clip (0: none; issue 30)"
_SIGMA_GRADIENT = (
    "gaussian head: shared (the sigma's likelihood trains the whole network) or "
    "detached (only the sigma's own weights: stop_gradient on the features)"
)


class ArchitectureConfig(Section):
    """One network of the CASNET space (Tohill et al. 2021 Table 1)."""

    blocks: int = Field(3, ge=1, le=6)
    conv_per_block: int = Field(2, ge=1, le=4)
    filters: int = Field(32, ge=1, description="filters of the first block (doubling per block)")
    dense_layers: int = Field(2, ge=0, le=8)
    dense_units: int = Field(1024, ge=1)
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    optimizer: Literal["adam", "adadelta", "rmsprop", "sgd", "adamax"] = "adamax"
    learning_rate: float = Field(0.001, gt=0.0)
    clipnorm: float = Field(1.0, ge=0.0, description=_CLIPNORM)
    batch_size: int = Field(512, ge=1)
    head: Head = Field("point", description="point: C or A (the paper); gaussian: and its sigma")
    sigma_gradient: SigmaGradient = Field("shared", description=_SIGMA_GRADIENT)


class ModelConfig(Section):
    """Architectures trained without tuning: the paper's Table 1 optima per target."""

    asymmetry: ArchitectureConfig = ArchitectureConfig()
    concentration: ArchitectureConfig = ArchitectureConfig(
        filters=64, dense_units=512, dropout=0.55, optimizer="adam"
    )

    def by_target(self) -> dict[str, ArchitectureConfig]:
        """Each quantity's architecture, in the schema's order."""
        return {t: getattr(self, t) for t in TARGETS}


def _powers_of_two(lo: int, hi: int) -> list[int]:
    out, v = [], 1
    while v <= hi:
        if v >= lo:
            out.append(v)
        v *= 2
    return out


class SearchConfig(Section):
    """The Bayesian-optimisation search space and budget (Sec. 3.3-3.4; the demo may shrink it)."""

    blocks: tuple[int, int] = Field((1, 3), description="convolutional blocks (min, max)")
    conv_per_block: tuple[int, int] = Field((1, 2), description="3x3 convolutions per block")
    filters: tuple[int, int] = Field((8, 256), description="first-block filters, powers of two")
    dense_layers: tuple[int, int] = Field((1, 4))
    dense_units: tuple[int, int] = Field((128, 1024), description="powers of two")
    dropout: tuple[float, float] = Field((0.25, 0.60), description="continuous")
    optimizers: tuple[Literal["adam", "adadelta", "rmsprop", "sgd", "adamax"], ...] = (
        "adam", "adadelta", "rmsprop", "sgd", "adamax",
    )  # fmt: skip
    learning_rates: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1)
    batch_sizes: tuple[int, ...] = (256, 512)
    max_trials: int = Field(20, ge=1)
    num_initial_points: int = Field(5, ge=1)
    seed: int = Field(1, ge=0)
    max_epochs: int = Field(300, ge=1, description="paper: 300")
    patience: int = Field(30, ge=1, description="early-stopping patience on validation RMSE")
    # issue 30: at a fixed rate, early stopping fired on the validation RMSE's fluctuations
    lr_factor: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="the learning rate is multiplied "
        "by this after lr_patience epochs without a better validation RMSE",
    )
    lr_patience: int = Field(
        3,
        ge=1,
        description="epochs without improvement before the "
        "learning rate is reduced (no reduction unless < patience)",
    )
    min_learning_rate: float = Field(1e-5, gt=0.0, description="the reductions stop here")
    recalibration: Literal["none", "isotonic", "quantile"] = Field(
        "none",
        description="after training, the network's mean mapped by a monotone function fitted "
        "on the validation set (issue 30, the high-A tail; casnet.networks.recalibration): "
        "isotonic = E[label | output], quantile = the labels' distribution; none: the paper's",
    )
    # gaussian: the better-calibrated uncertainty of issue 18's comparison on the science run
    # (README, "The science run"); the mean is trained as a point network's is
    head: Head = Field("gaussian", description="the output head of every trial (not searched)")
    sigma_gradient: SigmaGradient = Field("shared", description=_SIGMA_GRADIENT + " (not searched)")
    clipnorm: float = Field(1.0, ge=0.0, description=_CLIPNORM + " (not searched)")

    @model_validator(mode="after")
    def _check_space(self) -> SearchConfig:
        for name in ("blocks", "conv_per_block", "filters", "dense_layers", "dense_units",
                     "dropout"):  # fmt: skip
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must be (min, max) with min <= max, got {(lo, hi)}")
        for name in ("filters", "dense_units"):
            if not _powers_of_two(*getattr(self, name)):
                raise ValueError(f"{name} range {getattr(self, name)} holds no power of two")
        if not (0 <= self.dropout[0] and self.dropout[1] < 1):
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        return self

    def powers(self, name: str) -> list[int]:
        """The powers of two of the ``filters`` or ``dense_units`` range."""
        return _powers_of_two(*getattr(self, name))
