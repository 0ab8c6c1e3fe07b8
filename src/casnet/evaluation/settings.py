"""Settings of the evaluation suites (``params.yaml`` section ``evaluate``; Sec. 4)."""

from __future__ import annotations

from pydantic import Field, model_validator

from casnet.core.config import Section
from casnet.data.settings import RealSuiteConfig

__all__ = ["EvaluateConfig", "NoiseSuiteConfig", "RealSuiteConfig", "RedshiftSuiteConfig"]


class NoiseSuiteConfig(Section):
    """The noise suite (Tohill et al. 2021 Sec. 4.2, Figs. 8-10)."""

    snr_min: float = Field(10.0, gt=0, description="galaxies with SNR_p above this ...")
    max_delta_a: float = Field(
        0.01, gt=0, description="... whose network and conventional A agree this well"
    )
    max_delta_c: float | None = Field(
        0.1,
        gt=0,
        description="... and C this well (the paper's 'low C residual'; 0.1 is half its test-set "
        "C RMSE; None: no condition on C)",
    )
    snr_grid: tuple[float, ...] = Field(
        (10, 9, 8, 7, 6, 5, 4, 3, 2), description="target SNR_p values; the first is the reference"
    )
    max_galaxies: int | None = Field(None, ge=1, description="cap on the sample (None: all)")
    seed: int = Field(7, ge=0)

    @model_validator(mode="after")
    def _check_grid(self) -> NoiseSuiteConfig:
        if not self.snr_grid or min(self.snr_grid) <= 0:
            raise ValueError(f"snr_grid must hold positive values, got {self.snr_grid}")
        return self


class RedshiftSuiteConfig(Section):
    """The redshift suite (Sec. 4.3, Figs. 11-13): nearby galaxies moved to higher z."""

    z_grid: tuple[float, ...] = Field(
        (0.2, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0),
        description="redshifts; the first is the reference",
    )
    n_galaxies: int = Field(100, ge=1, description="simulated nearby (Frei-like) sample")
    reference_rhalf_px: tuple[float, float] = Field(
        (3.0, 8.0),
        description="half-light radii (px of the F160W grid) of the simulated nearby galaxies "
        "at the reference z: the whole galaxy fits the stamp and 1.5 R_p the 60x60 crop",
    )
    native_redshift: float = Field(0.01, gt=0, description="redshift of the nearby images")
    native_pixel_scale: float = Field(
        1.0, gt=0, description="arcsec/px of the nearby images (Frei et al. 1996: ~1.2-1.4)"
    )
    native_size: int = Field(256, ge=64, description="side of the simulated nearby images (px)")
    h0: float = Field(70.0, gt=0, description="cosmology: H0 (km/s/Mpc)")
    om0: float = Field(0.3, gt=0, lt=1, description="cosmology: Omega_m (flat LCDM)")
    size_evolution: float = Field(-0.97, description="R ~ (1+z)^beta (Whitney et al. 2019)")
    sb_evolution: float = Field(-0.13, description="mu(z) = mu(0) (1+z)^alpha")
    snr_min: float = Field(2.0, gt=0, description="keep galaxies above this SNR_p at every z")
    input: str | None = Field(
        None, description="folder of nearby FITS images instead of the simulated sample"
    )
    sky_image: str | None = Field(
        None,
        description="FITS image of real (source-free) sky to cut backgrounds from, "
        "instead of simulated correlated noise",
    )
    seed: int = Field(11, ge=0)


class EvaluateConfig(Section):
    """Evaluation of registered models (``casnet evaluate``, Sec. 4; the real-morphology suite:
    issue 29, :mod:`casnet.evaluation.real`)."""

    noise: NoiseSuiteConfig = NoiseSuiteConfig()
    redshift: RedshiftSuiteConfig = RedshiftSuiteConfig()
    real: RealSuiteConfig = RealSuiteConfig()
    batch_size: int = Field(512, ge=1, description="stamps per network call")
