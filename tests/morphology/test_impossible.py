"""Impossible values are flagged (issue 28): never a value no galaxy can give with no flag.

The regression case is a real stamp (``tests/data/faint_clumpy_unflagged.fits``, provenance in
``tests/data/README.md``) on which the Petrosian search took the negative light of the first
0.5 px around the centre for eta's crossing: R_p 0.5 px, snr_p -0.43, A -2.01, flag 0.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from scipy import ndimage

from casnet.core.flags import BAD_VALUES
from casnet.morphology import FATAL, Flag, Measurement, measure
from casnet.morphology import petrosian as petrosian_module
from casnet.morphology.growth import GrowthCurve
from casnet.morphology.petrosian import petrosian_eta, petrosian_radius
from casnet.morphology.plausibility import A_MIN, C_MAX, C_MIN, unphysical

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "faint_clumpy_unflagged.fits"

#: what main of 2026-12-07 returned on the fixture (``casnet measure --format json``)
REPRO = {
    "concentration": 3.355943772999704, "asymmetry": -2.0142957844007845,
    "concentration_err": 1.0862375102732758, "asymmetry_err": 4.6800098044767475,
    "r20": 0.1581182484816448, "r80": 0.7416017560340212, "r_petro": 0.5,
    "q": 0.538335519286304, "pa": 0.50057054579309,
    "x_centre": 47.49913869501012, "y_centre": 51.23987578752755,
    "x_centroid": 46.317674686226944, "y_centroid": 52.09312492024807,
    "asymmetry_raw": 0.0005000202782493162, "asymmetry_bkg": 2.014795804679034,
    "flux": 0.0004889321488638508, "snr_p": -0.4335954322834929,
    "sky_mean": 4.513333363382927e-05, "sky_sigma": 0.005228959137728681,
    "n_sky_cells": 40, "flag": 0, "flag_reasons": "",
}  # fmt: skip

#: a faint but possible galaxy: every value inside the bounds
PLAUSIBLE = Measurement(**{**REPRO, "concentration": 2.7, "asymmetry": 0.03, "r20": 7.2,
                           "r80": 24.8, "r_petro": 28.9, "asymmetry_raw": 1.17,
                           "asymmetry_bkg": 1.14, "flux": 3.6, "snr_p": 0.43})  # fmt: skip


def fixture_image() -> np.ndarray:
    return fits.getdata(FIXTURE).astype(np.float64)


def _eta_before_issue_28(curve, r, *, inner=0.8, outer=1.25):
    """petrosian_eta as it was: no NaN where the light inside r is negative."""
    r = np.asarray(r, dtype=float)
    ann = (curve.flux_at(outer * r) - curve.flux_at(inner * r)) / (
        curve.area_at(outer * r) - curve.area_at(inner * r)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return ann / (curve.flux_at(r) / curve.area_at(r))


# --- the regression case ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def faint_clumpy() -> Measurement:
    return measure(fixture_image())


def test_faint_clumpy_galaxy_gets_its_petrosian_radius(faint_clumpy):
    """The root cause fixed: R_p is the galaxy's, not the first sampled radius. eta falls to 0.2
    at 26 px around the centroid (detection sky) and 29 px around the asymmetry centre (far sky);
    the galaxy is visibly ~25 px across. 15-45 px brackets both with room for the sky's noise."""
    m = faint_clumpy
    assert not m.flag & BAD_VALUES, m.flag_reasons
    assert 15.0 < m.r_petro < 45.0
    assert m.flux > 0 and m.snr_p > 0
    assert 0 < m.r20 < m.r80 < 1.5 * m.r_petro
    assert C_MIN <= m.concentration <= C_MAX
    # measured 0.03 +- 0.03: a noise-dominated A (raw 1.17, sky term 1.14), not -2
    assert m.asymmetry > A_MIN


def test_faint_clumpy_is_still_too_faint_for_a_label(faint_clumpy):
    """SNR_p 0.43 (mean surface brightness inside R_p in sky sigma): the select stage's
    SNR_p > 2 cut (Tohill et al. 2021 Sec. 3.1) removes it; its values are only plausible."""
    assert faint_clumpy.snr_p < 2.0


def test_the_old_failure_is_flagged_with_its_values_kept(monkeypatch):
    """With the Petrosian ratio of before the fix, the measurement runs to the end with R_p 0.5 px
    as it did on main: the guard now flags it UNPHYSICAL, names each impossible value, and keeps
    the values (not fatal)."""
    monkeypatch.setattr(petrosian_module, "petrosian_eta", _eta_before_issue_28)
    m = measure(fixture_image())
    assert m.r_petro == pytest.approx(0.5)
    assert m.flag & Flag.UNPHYSICAL, m.flag_reasons
    assert not m.flag & FATAL
    for words in ("UNPHYSICAL: r_petro 0.5 px", "snr_p -", "asymmetry -"):
        assert words in m.flag_reasons
    assert math.isfinite(m.concentration) and math.isfinite(m.asymmetry)


def test_the_repro_row_is_unphysical_on_every_count():
    reasons = unphysical(Measurement(**REPRO))
    text = "; ".join(reasons)
    assert len(reasons) == 4, text
    for words in ("r_petro 0.5 px < 1 px", "snr_p -0.434 <= 0", "r20 0.158 px",
                  "asymmetry -2.01 < -0.2"):  # fmt: skip
        assert words in text


# --- the Petrosian ratio where the light inside is negative ----------------------------------


def _exponential(r, h=4.0):
    x = np.asarray(r) / h
    return 1.0 - (1.0 + x) * np.exp(-x)


def _curve(light, r_max=60.0, dr=0.1):
    r = np.arange(0.0, r_max + dr / 2, dr)
    return GrowthCurve(r, light(r), math.pi * r**2, r_inside=r_max)


def _dipped(r):
    """An exponential disk (unit light, h = 4 px) with a zero-sum noise dip at the centre: -0.02
    inside 0.4 px (the disk has 0.005 there), given back between 0.4 and 1 px, so that around
    0.5 px the light inside is negative and the annulus's positive (eta < 0, as on the fixture)."""
    r = np.asarray(r, dtype=float)
    dip = np.where(r < 0.4, -0.02 * (r / 0.4) ** 2, -0.02 * np.clip((1.0 - r) / 0.6, 0, 1))
    return _exponential(r) + dip


def test_eta_is_undefined_where_the_light_inside_is_negative():
    curve = _curve(_dipped)
    assert curve.flux_at(0.5) < 0
    assert math.isnan(petrosian_eta(curve, 0.5))
    assert np.isfinite(petrosian_eta(curve, 2.0))


def test_negative_light_at_the_centre_does_not_stop_the_petrosian_search(monkeypatch):
    """From 1.25 px (annulus from 1 px) the dipped curve is the disk's: the same R_p (to the root
    finder's xtol 1e-4 px). Before the fix eta(0.5) was negative, and R_p the first grid point."""
    clean = petrosian_radius(_curve(_exponential))
    assert petrosian_radius(_curve(_dipped)) == pytest.approx(clean, abs=1e-3)
    assert clean > 5.0
    monkeypatch.setattr(petrosian_module, "petrosian_eta", _eta_before_issue_28)
    assert petrosian_radius(_curve(_dipped)) == 0.5


def test_sigma_c_redraws_find_r_p_the_same_way():
    """concentration_error's vectorised R_p search (uncertainty._concentrations) skips the
    negative-light radii too: the same C for the dipped and the clean disk (r20 ~ 3 px and r80
    lie beyond the dip; observed equal to 1e-12)."""
    from casnet.morphology.uncertainty import _concentrations

    definition = {"eta": 0.2, "inner": 0.8, "outer": 1.25, "aperture_rp": 1.5}
    c = [_concentrations(curve, curve.flux[None, :], **definition)[0]
         for curve in (_curve(_exponential), _curve(_dipped))]  # fmt: skip
    assert c[1] == pytest.approx(c[0], abs=1e-6)
    assert 2.0 < c[0] < 3.5


# --- the guard on synthetic values ----------------------------------------------------------


def test_a_plausible_row_has_no_reason():
    assert unphysical(PLAUSIBLE) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"flux": 0.0}, "flux 0 <= 0"),
        ({"flux": -1.0}, "flux -1 <= 0"),
        ({"snr_p": 0.0}, "snr_p 0 <= 0"),
        ({"snr_p": math.nan}, "snr_p nan"),
        ({"r_petro": 0.5}, "r_petro 0.5 px < 1 px"),
        ({"r_petro": math.nan}, "r_petro nan"),
        ({"r20": 30.0}, "r20 30 px, r80 24.8 px"),
        ({"r20": 0.1}, "r20 0.1 px"),
        ({"r80": math.inf}, "r80 inf px"),
        ({"concentration": 1.2}, "concentration 1.2 outside"),
        ({"concentration": 6.5}, "concentration 6.5 outside"),
        ({"asymmetry": -0.5}, "asymmetry -0.5 < -0.2"),
        ({"asymmetry": math.nan}, "asymmetry nan is not finite"),
    ],
)
def test_each_impossible_value_is_named(change, words):
    reasons = unphysical(dataclasses.replace(PLAUSIBLE, **change))
    assert len(reasons) == 1, reasons
    assert words in reasons[0]


@pytest.mark.parametrize(
    "change",
    [{"asymmetry": -0.05}, {"concentration": 1.7}, {"r_petro": 2.0}, {"snr_p": 0.05},
     {"concentration": 4.6}],
)  # fmt: skip
def test_noisy_but_possible_values_are_not_flagged(change):
    """Low S/N moves values (A slightly below 0 after the sky term, C of a faint disk at 1.7):
    those are the select stage's S/N cut to handle, not impossible."""
    assert unphysical(dataclasses.replace(PLAUSIBLE, **change)) == []


# --- noise only ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def noise_only() -> list[Measurement]:
    """Correlated noise (a drizzled mosaic's, white noise smoothed by 1-1.5 px): some stamps get
    a "source" detected at the centre (7 of 24 here, 6 of them UNPHYSICAL by A -0.29 to -0.59;
    the 7th has A -0.15 and SNR_p 0.65), the rest are NO_SOURCE."""
    out = []
    for smoothing in (1.0, 1.5):
        for seed in range(12):
            noise = np.random.default_rng(seed).normal(0.0, 1.0, (101, 101))
            out.append(measure(ndimage.gaussian_filter(noise, smoothing)))
    return out


def test_noise_only_stamps_never_carry_an_unflagged_impossible_value(noise_only):
    detected = [m for m in noise_only if not m.flag & FATAL]
    assert detected, "no noise stamp was measured: the test no longer exercises the guard"
    for m in detected:
        assert bool(m.flag & Flag.UNPHYSICAL) == bool(unphysical(m)), m.flag_reasons
    # the guard does fire on noise: a noise peak is more symmetric than the sky cells around it
    # (its centre is the one that minimises A), so its A falls well below 0
    assert any(m.flag & Flag.UNPHYSICAL for m in detected)


def test_noise_only_stamps_never_become_training_labels(noise_only):
    """Each is fatal, UNPHYSICAL, or below the select stage's SNR_p > 2."""
    for m in noise_only:
        assert m.flag & BAD_VALUES or m.snr_p <= 2.0, m


# --- the select stage ------------------------------------------------------------------------


def test_select_always_removes_unphysical_rows():
    """Whatever ``exclude_flags`` says: an impossible value is never a label."""
    from casnet.data.settings import SelectConfig
    from casnet.pipeline.select import cut_reasons

    table = pd.DataFrame(
        {"flag": [0, int(Flag.UNPHYSICAL)], "snr_p": [20.0, 20.0], "r_petro": [8.0, 8.0]}
    )
    for cfg in (SelectConfig(), SelectConfig(exclude_flags=())):
        assert cut_reasons(table, cfg).tolist() == ["", "flag UNPHYSICAL"]
