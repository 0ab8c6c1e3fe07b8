"""The vendored COSMOS galaxies and their rendering as CANDELS F160W stamps (issue 29, item 1):
the catalogue and its kinds, flux, the PSF of the rendering path, the noise measured on the stamps,
determinism and the store."""

from __future__ import annotations

import galsim
import numpy as np
import pytest
from pydantic import ValidationError

from casnet.data.real import (
    KINDS,
    REAL_DIR,
    draw_view,
    kinds,
    real_catalog,
    render_real,
    write_real_store,
)
from casnet.data.settings import RealSuiteConfig, SimulateConfig
from casnet.data.simulate import sky_sigma_per_pixel

#: a few galaxies of every sort: ID0 (a clumpy disk, 1.6" cutout), ID27 (the largest cutout,
#: 2.7": own noise measured on the render), ID122743 (the smallest, 0.5", which the galaxy fills:
#: own noise from its noise twins)
INDICES = (0, 20, 45)


@pytest.fixture(scope="module")
def stamps():
    return render_real(RealSuiteConfig(), SimulateConfig(), indices=INDICES)


def test_the_vendored_catalogue_loads_with_a_kind_for_every_galaxy():
    catalog = real_catalog()
    assert catalog.nobjects == 88
    idents = {int(i) for i in catalog.ident}
    assert len(idents) == 88
    table = kinds()
    assert set(table) == idents
    assert set(table.values()) <= set(KINDS)


def test_the_provenance_note_travels_with_the_files():
    text = (REAL_DIR / "README.md").read_text()
    assert "it keeps this provenance note beside them" in text
    assert "No network is ever trained on" in text


def test_catalogue_has_the_contract_columns(stamps):
    cat = stamps.catalog
    needed = {"galaxy_id", "cosmos_ident", "kind", "view", "rotation_deg", "mag", "mag_f814w",
              "flux", "noise_sigma", "own_noise_sigma", "own_noise_share",
              "sn_per_pixel"}  # fmt: skip
    assert needed <= set(cat.columns)
    assert cat["galaxy_id"].is_unique
    assert len(cat) == len(INDICES) * RealSuiteConfig().views
    assert stamps.image.shape == stamps.truth.shape == (len(cat), 101, 101)
    assert stamps.image.dtype == stamps.truth.dtype == np.float32
    assert cat["galaxy_id"].iloc[0] == "cosmos0-v0"


def test_render_conserves_flux(stamps):
    """The render is scaled to ``flux`` (its cutout's whole sum) and GalSim's drawing conserves it
    but for the PSF's wings beyond the stamp: 1.2% of a point source's light falls outside the
    101 px (6") stamp (the Airy rings of the obscured aperture), so the truth holds flux x the
    point source's share, to 0.2% (the cutouts reach 1.35" from the centre, a little nearer the
    edge than a point)."""
    sim = SimulateConfig()
    inside = draw_view(galsim.DeltaFunction(flux=1.0), sim).sum()
    assert inside == pytest.approx(0.988, abs=0.002)
    cat = stamps.catalog
    ratio = stamps.truth.sum(axis=(1, 2), dtype=np.float64) / cat["flux"].to_numpy()
    np.testing.assert_allclose(ratio, inside, rtol=2e-3)
    np.testing.assert_allclose(cat["flux_in_stamp"], cat["flux"] * inside, rtol=2e-3)
    # mag and flux agree at the simulator's zero point
    expected = 10 ** (-0.4 * (cat["mag"] - sim.zero_point))
    np.testing.assert_allclose(cat["flux"], expected, rtol=1e-12)


def test_a_point_source_through_the_rendering_path_has_the_f160w_fwhm():
    """A 'galaxy' whose HST image is its own ACS PSF is a point source: deconvolved by that PSF,
    re-convolved and drawn as every view is, it has the simulator's F160W FWHM (0.17-0.19", as
    tests/test_simulate.py checks the PSF itself; 0.180" for a star centred on a pixel)."""
    sim = SimulateConfig()
    catalog = real_catalog()
    psf_image = catalog.getPSFImage(0)
    noise_image, scale, var = catalog.getNoiseProperties(0)
    star = galsim.RealGalaxy((psf_image, psf_image, noise_image, scale, var), flux=1.0)
    drawn = draw_view(star, sim, rotation_deg=37.0)
    fwhm = galsim.Image(drawn, scale=sim.pixel_scale).calculateFWHM()
    assert 0.17 <= fwhm <= 0.19
    reference = draw_view(galsim.DeltaFunction(flux=1.0), sim)
    assert fwhm == pytest.approx(
        galsim.Image(reference, scale=sim.pixel_scale).calculateFWHM(), rel=0.01
    )
    assert np.unravel_index(np.argmax(drawn), drawn.shape) == (50, 50)


def test_measured_noise_matches_the_simulators_depth(stamps):
    """The per-pixel noise measured on the observed stamps is the simulator's at its depth within
    10% (3-sigma clipping reads a Gaussian's sigma 1.3% low; the rest is sampling)."""
    sigma = sky_sigma_per_pixel(SimulateConfig())
    cat = stamps.catalog
    np.testing.assert_allclose(cat["noise_sigma"], sigma, rtol=0.1)
    np.testing.assert_allclose(cat["survey_noise_sigma"], sigma, rtol=0.1)
    # and directly: the observed stamp far from the galaxy (the 15 px border, outside every
    # cutout's footprint) holds the survey noise alone
    border = np.ones((101, 101), bool)
    border[15:-15, 15:-15] = False
    assert np.std(stamps.image[:, border]) == pytest.approx(sigma, rel=0.05)


def test_own_noise_is_a_small_share(stamps):
    """Every view's own HST noise is at most the configured share of the noise variance (the
    floor uses the nominal survey noise, the catalogue the measured one: 10% slack), and the
    brightest view of a galaxy sits near the bound (the floor moved it there)."""
    cfg = RealSuiteConfig()
    cat = stamps.catalog
    assert (cat["own_noise_share"] <= 1.1 * cfg.max_own_noise_share).all()
    assert (cat["own_noise_share"] > 0).all()
    brightest = cat[cat["view"] == 0]["own_noise_share"]
    assert (brightest > 0.5 * cfg.max_own_noise_share).all()
    assert set(cat["own_noise_from"]) == {"truth", "twin"}


def test_own_noise_on_the_render_agrees_with_the_noise_twin(stamps):
    """Where the cutout leaves sky around the galaxy (ID27's 2.7"), the own noise measured on the
    truth and on noise-only twins of the cutout agree within 25% (over the 32 galaxies with room:
    median 0.94, 10-90% 0.84-1.05)."""
    cat = stamps.catalog
    big = cat[cat["cosmos_ident"] == 27]
    assert (big["own_noise_from"] == "truth").all()
    ratio = big["own_noise_sigma"] / big["own_noise_twin_sigma"]
    assert ratio.between(0.75, 1.25).all()


def test_the_galaxy_sits_at_the_centre_and_fits(stamps):
    cat = stamps.catalog
    assert cat["stamp_fits"].all()
    # the truth's centroid: the cutout's centre within a few px (a real galaxy's light is not
    # centred on its catalogue position), plus the sub-pixel offset
    assert (np.hypot(cat["x_centroid_px"], cat["y_centroid_px"]) < 4).all()
    assert cat["x_offset_px"].abs().max() <= 0.5
    assert np.isfinite(cat["sn_per_pixel"]).all()
    assert (cat["n_galaxy_pixels"] > 0).all()


def test_views_are_fainter_steps_of_one_ladder(stamps):
    cfg = RealSuiteConfig()
    lo, hi = cfg.mag_offset_range
    for _, views in stamps.catalog.groupby("cosmos_ident"):
        steps = np.diff(views.sort_values("view")["mag"])
        np.testing.assert_allclose(steps, (hi - lo) / (cfg.views - 1), rtol=1e-9)
        assert (views["mag_offset"] >= lo - 1e-9).all()


def test_same_config_same_bytes_whatever_else_is_rendered():
    cfg, sim = RealSuiteConfig(views=2), SimulateConfig()
    a = render_real(cfg, sim, indices=[3])
    b = render_real(cfg, sim, indices=[7, 3])
    rows = b.catalog["cosmos_ident"] == 3
    assert a.image.tobytes() == b.image[rows.to_numpy()].tobytes()
    assert a.truth.tobytes() == b.truth[rows.to_numpy()].tobytes()
    assert a.catalog.equals(b.catalog[rows].reset_index(drop=True))
    c = render_real(cfg.model_copy(update={"seed": 1}), sim, indices=[3])
    assert c.image.tobytes() != a.image.tobytes()


def test_the_store_holds_image_truth_and_the_stage(tmp_path, stamps):
    store = write_real_store(stamps, tmp_path / "real")
    assert set(store.array_names) >= {"image", "truth"}
    assert store.meta["stage"] == "real-suite"
    assert store.meta["params"]["real"] == RealSuiteConfig().model_dump(mode="json")
    np.testing.assert_array_equal(store.array("image")[:], stamps.image)
    np.testing.assert_array_equal(store.array("truth")[:], stamps.truth)
    assert list(store.catalog["galaxy_id"]) == list(stamps.catalog["galaxy_id"])


def test_settings_refuse_a_reversed_magnitude_range():
    with pytest.raises(ValidationError, match="mag_offset_range"):
        RealSuiteConfig(mag_offset_range=(1.0, 0.5))


def test_indices_outside_the_catalogue_are_refused():
    with pytest.raises(ValueError, match="indices"):
        render_real(RealSuiteConfig(), SimulateConfig(), indices=[88])


def test_no_network_can_train_on_the_real_galaxies(tmp_path, stamps):
    """Issue 29: the real galaxies are for evaluation only. Their rows carry the column
    EVALUATION_ONLY, which travels through the stages; training refuses such a store, and the
    suite's own store."""
    from casnet.core.errors import CasnetInputError
    from casnet.core.layout import EVALUATION_ONLY
    from casnet.networks.dataset import store_dataset

    assert stamps.catalog[EVALUATION_ONLY].all()
    store = write_real_store(stamps, tmp_path / "real")
    with pytest.raises(CasnetInputError, match="evaluation only"):
        store_dataset(store.path, "asymmetry", batch_size=2)
