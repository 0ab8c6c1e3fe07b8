"""casnet predict: every input gets a row; scores equal the combined model's; formats; Dask."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table
from typer.testing import CliRunner

from casnet.cli import app
from casnet.core.errors import exit_status
from casnet.core.flags import PredictFlag
from casnet.data.io.catalog import write_catalog
from casnet.data.io.store import StoreWriter
from casnet.data.preprocess import crop_normalise
from casnet.data.settings import SimulateConfig
from casnet.data.simulate import simulate_galaxy
from casnet.morphology.settings import MorphologyConfig
from casnet.networks.architecture import build_model
from casnet.networks.predict import plan_chunks, predict
from casnet.networks.settings import ArchitectureConfig

TINY = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=8,
                          dropout=0.25, optimizer="adam", learning_rate=0.01,
                          batch_size=16)  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A combined model saved locally around two small (untrained, seeded) networks."""
    import keras
    import mlflow

    from casnet.networks.mlmodel import network_signature
    from casnet.networks.registry import CasnetModel

    root = tmp_path_factory.mktemp("model")
    nets, artifacts = {}, {}
    for i, target in enumerate(("concentration", "asymmetry")):
        keras.utils.set_random_seed(i)
        nets[target] = build_model(TINY)
        artifacts[target] = str(root / target)
        mlflow.keras.save_model(nets[target], artifacts[target], signature=network_signature())
    mlflow.pyfunc.save_model(str(root / "casnet"), python_model=CasnetModel(),
                             artifacts=artifacts)  # fmt: skip
    return root / "casnet", nets


@pytest.fixture(scope="module")
def fits_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("stamps")
    images = [simulate_galaxy(i, SimulateConfig()).image.astype(np.float32) for i in range(4)]
    for i, image in enumerate(images):
        fits.writeto(d / f"gal{i}.fits", image)
    (d / "corrupted.fits").write_bytes(b"SIMPLE  = garbage" + b"\0" * 100)
    fits.writeto(d / "tiny.fits", np.ones((20, 20), np.float32))
    fits.writeto(d / "blank.fits", np.full((80, 80), np.nan, np.float32))
    fits.writeto(d / "cube.fits", np.ones((2, 70, 70), np.float32))
    return d, images


def _expected(nets, images):
    x = crop_normalise(np.stack(images))[0][..., None]
    return {t: net.predict(x, verbose=0).reshape(-1) for t, net in nets.items()}


def test_every_input_gets_a_row_and_bad_ones_say_why(model_dir, fits_dir):
    path, nets = model_dir
    d, images = fits_dir
    table = predict([d], str(path), chunk_size=3, progress=False)
    assert len(table) == 8 and table["galaxy_id"].is_unique
    by_id = table.set_index("galaxy_id")
    reasons = {
        "corrupted": "not a readable FITS",
        "tiny": "20x20 px is smaller than 60x60",
        "blank": "no finite positive pixel",
        "cube": "",  # a 3-D HDU: read_image refuses it
    }
    for gid, text in reasons.items():
        assert by_id.loc[gid, "predict_flag"] == PredictFlag.UNUSABLE, gid
        got = by_id.loc[gid, "predict_flag_reasons"]
        assert got.startswith("UNUSABLE: ") and text in got, (gid, got)
        assert np.isnan(by_id.loc[gid, "concentration"]) and np.isnan(by_id.loc[gid, "asymmetry"])
    want = _expected(nets, images)
    for i in range(4):
        assert by_id.loc[f"gal{i}", "predict_flag"] == 0
        assert by_id.loc[f"gal{i}", "predict_flag_reasons"] == ""
        for target in ("concentration", "asymmetry"):
            assert by_id.loc[f"gal{i}", target] == pytest.approx(float(want[target][i]), abs=1e-6)


def test_store_input_and_conventional_columns(model_dir, tmp_path):
    path, nets = model_dir
    images = np.stack([simulate_galaxy(i, SimulateConfig()).image for i in range(5)])
    with StoreWriter(tmp_path / "s", stamp_shape=(101, 101), chunk_size=2) as w:
        for lo in range(0, 5, 2):
            hi = min(lo + 2, 5)
            w.append([{"galaxy_id": f"s{i}"} for i in range(lo, hi)], {"image": images[lo:hi]})
    table = predict([tmp_path / "s"], str(path), chunk_size=2, progress=False,
                    conventional=MorphologyConfig())  # fmt: skip
    assert list(table["galaxy_id"]) == [f"s{i}" for i in range(5)]
    want = _expected(nets, list(images.astype(np.float32)))
    np.testing.assert_allclose(table["asymmetry"], want["asymmetry"], atol=1e-6)
    from casnet.morphology import measure

    m = measure(images[0].astype(np.float64), config=MorphologyConfig())
    assert table.loc[0, "conventional_flag"] == int(m.flag)
    if np.isfinite(m.concentration):
        assert table.loc[0, "conventional_concentration"] == pytest.approx(m.concentration)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".fits", ".ecsv"])
def test_catalogue_formats_round_trip(tmp_path, suffix):
    table = pd.DataFrame({"galaxy_id": ["a", "b"], "source": ["x", "y"],
                          "concentration": [3.1, np.nan], "asymmetry": [0.1, np.nan],
                          "predict_flag": [0, 1],
                          "predict_flag_reasons": ["", "UNUSABLE: bad"]})  # fmt: skip
    out = write_catalog(table, tmp_path / f"cat{suffix}")
    back = pd.read_parquet(out) if suffix == ".parquet" else Table.read(out).to_pandas()
    assert list(back["galaxy_id"].astype(str)) == ["a", "b"]
    np.testing.assert_allclose(back["concentration"].to_numpy(float), [3.1, np.nan])


def test_no_input_and_bad_output_are_clear(tmp_path, model_dir):
    from casnet.core.errors import CasnetInputError

    with pytest.raises(CasnetInputError, match="no input"):
        plan_chunks([], 10)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CasnetInputError, match="no FITS files"):
        plan_chunks([tmp_path / "empty"], 10)
    result = CliRunner().invoke(app, ["predict", str(tmp_path), "--out", "cat.txt"])
    assert result.exit_code == 2 and "--out must end in" in result.output


def test_cli_writes_the_catalogue(model_dir, fits_dir, tmp_path):
    path, _ = model_dir
    d, _ = fits_dir
    out = tmp_path / "cat.ecsv"
    result = CliRunner().invoke(app, ["predict", str(d), "--model", str(path), "--out", str(out),
                                      "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "8 galaxies scored" in result.output and "(4 flagged)" in result.output
    assert len(Table.read(out)) == 8


@pytest.mark.slow
def test_dask_workers_give_the_same_catalogue(model_dir, fits_dir):
    path, _ = model_dir
    d, _ = fits_dir
    here = predict([d], str(path), chunk_size=2, progress=False)
    there = predict([d], str(path), chunk_size=2, progress=False, workers=2)
    pd.testing.assert_frame_equal(here, there, atol=1e-6)


def test_a_file_name_that_is_not_utf8_gets_its_row(model_dir, tmp_path):
    """The name comes back in the reversible path_text form and the catalogue can be written."""
    import os

    from astropy.io import fits

    path, _ = model_dir
    folder = tmp_path / "odd"
    folder.mkdir()
    image = np.random.default_rng(0).normal(1.0, 0.1, (64, 64)).astype(np.float32)
    fits.PrimaryHDU(image).writeto(os.fsdecode(os.path.join(os.fsencode(folder), b"caf\xe9.fits")))
    table = predict([folder], str(path), progress=False)
    assert table["galaxy_id"].tolist() == ["caf\\xe9"]
    assert table["predict_flag"].tolist() == [0]
    write_catalog(table, tmp_path / "cat.parquet")


def test_a_cleaning_model_scores_raw_stamps_as_the_pipeline_scores_its_own(model_dir, tmp_path):
    # issue 17: the networks learn from galclean'ed stamps; a combined model registered with the
    # clean settings cleans raw stamps the same way (same function, seeded by the galaxy id)
    import mlflow

    from casnet.data.clean import galaxy_rng, galclean
    from casnet.data.settings import CleanConfig
    from casnet.networks.registry import CasnetModel

    path, nets = model_dir
    clean = CleanConfig()
    artifacts = {t: str(path.parent / t) for t in ("concentration", "asymmetry")}
    cleaning = tmp_path / "cleaning"
    mlflow.pyfunc.save_model(str(cleaning), python_model=CasnetModel(), artifacts=artifacts,
                             model_config={"clean": clean.model_dump(mode="json")})  # fmt: skip
    cfg = SimulateConfig()
    gals = [simulate_galaxy(i, cfg) for i in range(6)]
    raw = np.stack([g.image for g in gals]).astype(np.float32)
    with StoreWriter(tmp_path / "raw", stamp_shape=raw.shape[1:], chunk_size=4) as w:
        for lo in (0, 4):
            w.append([{"galaxy_id": g.galaxy_id} for g in gals[lo : lo + 4]],
                     {"image": raw[lo : lo + 4]})  # fmt: skip
    table = predict([tmp_path / "raw"], str(cleaning), chunk_size=4, progress=False)
    cleaned = [galclean(g.image.astype(np.float64), config=clean,
                        rng=galaxy_rng(clean.seed, g.galaxy_id)).image for g in gals]  # fmt: skip
    expected = _expected(nets, [c.astype(np.float32) for c in cleaned])
    by_id = table.set_index("galaxy_id")
    for t in ("concentration", "asymmetry"):
        got = by_id.loc[[g.galaxy_id for g in gals], t].to_numpy()
        np.testing.assert_allclose(got, expected[t], rtol=1e-5, atol=1e-6)
    # the model without the clean settings scores the raw crops: other inputs
    plain = predict([tmp_path / "raw"], str(path), chunk_size=4, progress=False)
    assert not np.allclose(plain.set_index("galaxy_id").loc[by_id.index, "asymmetry"],
                           by_id["asymmetry"], rtol=0, atol=1e-7)  # fmt: skip


def _stamp_with(path, image, **header):
    hdu = fits.PrimaryHDU(np.asarray(image, np.float32))
    for key, value in header.items():
        hdu.header[key] = value
    hdu.writeto(path)
    return path


def test_a_stamp_on_another_pixel_scale_is_refused_unless_told(model_dir, tmp_path):
    """Issue 28: a 0.1"/px cutout was scored by the 0.06"/px networks without a word. The scale
    comes from the header (PIXSCALE here, the WCS where there is one)."""
    path, _ = model_dir
    image = simulate_galaxy(0, SimulateConfig()).image
    _stamp_with(tmp_path / "coarse.fits", image, PIXSCALE=0.1)
    _stamp_with(tmp_path / "right.fits", image, PIXSCALE=0.06)
    _stamp_with(tmp_path / "silent.fits", image)  # no scale in the header: cannot be checked
    table = predict([tmp_path], str(path), progress=False).set_index("galaxy_id")
    assert table.loc["coarse", "predict_flag"] == PredictFlag.UNUSABLE
    assert "pixel scale 0.1" in table.loc["coarse", "predict_flag_reasons"]
    assert "--ignore-pixel-scale" in table.loc["coarse", "predict_flag_reasons"]
    assert np.isnan(table.loc["coarse", "concentration"])
    assert (table.loc[["right", "silent"], "predict_flag"] == 0).all()
    told = predict([tmp_path], str(path), progress=False, check_scale=False)
    assert (told["predict_flag"] == 0).all()
    # alone, the refusal is an error (exit 3), as for an unreadable file
    alone = CliRunner().invoke(app, ["predict", str(tmp_path / "coarse.fits"), "--model",
                                     str(path), "--out", str(tmp_path / "c.csv")])  # fmt: skip
    assert exit_status(alone.exception) == 3 and "pixel scale 0.1" in str(alone.exception)
    assert not (tmp_path / "c.csv").exists()
    forced = CliRunner().invoke(app, ["predict", str(tmp_path / "coarse.fits"), "--model",
                                      str(path), "--out", str(tmp_path / "c.csv"),
                                      "--ignore-pixel-scale"])  # fmt: skip
    assert forced.exit_code == 0, forced.output


def test_a_mistyped_single_input_fails_like_measure(model_dir, tmp_path):
    """Issue 28: ``casnet predict data/demo/stamp`` (a typo) exited 0 with one flagged row."""
    path, _ = model_dir
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "stamp"), "--model", str(path),
                                      "--out", str(tmp_path / "c.csv")])  # fmt: skip
    assert exit_status(result.exception) == 3, result.output
    assert "stamp" in str(result.exception)
    assert not (tmp_path / "c.csv").exists()


def test_blank_pixels_at_the_galaxy_are_flagged_not_hidden(model_dir, tmp_path):
    """Issue 28: predict scored stamps with NaN pixels on the galaxy without a flag (measure
    flags them). They are scored (the model's cleaning fills them) and flagged."""
    path, _ = model_dir
    image = simulate_galaxy(0, SimulateConfig()).image.astype(np.float32)
    holed = image.copy()
    holed[48:53, 48:53] = np.nan
    edge = image.copy()
    edge[:3, :] = np.nan  # outside the network's 60x60 crop: not the galaxy
    for name, img in (("holed", holed), ("edge", edge), ("whole", image)):
        fits.writeto(tmp_path / f"{name}.fits", img)
    table = predict([tmp_path], str(path), progress=False).set_index("galaxy_id")
    assert table.loc["holed", "predict_flag"] == PredictFlag.INVALID_PIXELS
    assert "25 NaN/inf pixel(s)" in table.loc["holed", "predict_flag_reasons"]
    assert np.isfinite(table.loc["holed", "concentration"])
    assert table.loc["edge", "predict_flag"] == 0 and table.loc["whole", "predict_flag"] == 0
