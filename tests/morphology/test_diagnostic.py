"""The per-galaxy diagnostic (``casnet.morphology.diagnostic``, issue 31): it shows what the
measurement used, on a galaxy with a known neighbour."""

from __future__ import annotations

import galsim
import numpy as np

from casnet.morphology import measure
from casnet.morphology.diagnostic import diagnose, diagnostic_figure

SIZE = 101


def _scene(seed: int = 3) -> np.ndarray:
    """An exponential disk at the centre, a compact neighbour 30 px away, white noise."""
    disk = galsim.Exponential(half_light_radius=0.4, flux=60.0).shear(
        q=0.6, beta=0.5 * galsim.radians
    )
    other = galsim.Gaussian(sigma=0.08, flux=15.0).shift(1.8, 0.0)
    psf = galsim.Gaussian(fwhm=0.18)
    image = galsim.Convolve(disk + other, psf).drawImage(nx=SIZE, ny=SIZE, scale=0.06).array
    return image + np.random.default_rng(seed).normal(0.0, 0.01, image.shape)


def test_the_diagnosis_is_the_measurement_with_its_segments_and_residual():
    image = _scene()
    d = diagnose(image)
    assert d.measurement.to_dict() == measure(image).to_dict()
    seg = d.segmentation
    target = seg.target_mask
    centre = SIZE // 2
    assert target[centre, centre]
    others = (seg.labels > 0) & ~target
    assert others[centre, centre + 30]  # the neighbour (1.8" = 30 px along x) is a segment
    assert not target[centre, centre + 30]
    res = d.residual
    inside = np.isfinite(res)
    assert inside[centre, centre] and not inside[0, 0]
    # what A sums before its sky term: |I - I180| over the aperture against sum |I|
    m = d.measurement
    ratio = np.nansum(np.abs(res)) / np.nansum(np.abs(np.where(inside, image - m.sky_mean, 0)))
    assert abs(ratio - m.asymmetry_raw) < 0.05


def test_the_figure_is_written_for_a_good_and_a_hopeless_stamp(tmp_path):
    good = diagnostic_figure(_scene(), tmp_path / "good.png", title="disk")
    assert good.stat().st_size > 20_000
    flat = diagnostic_figure(np.zeros((SIZE, SIZE)), tmp_path / "flat.png", title="empty")
    assert flat.stat().st_size > 5_000  # the flags say why, no traceback
    assert diagnose(np.zeros((SIZE, SIZE))).residual is None
