"""The Python API (issue 31): ``casnet.measure`` and ``casnet.load_model(...).predict``, the same
numbers as the library and the command line, on numpy arrays."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import casnet
from casnet.core.errors import CasnetInputError, CasnetStoreError
from casnet.core.flags import PredictFlag


@pytest.fixture(scope="module")
def stamps():
    from casnet.data.settings import SimulateConfig
    from casnet.data.simulate import simulate

    gals = list(simulate(SimulateConfig(seed=31), 4))
    return np.stack([g.image for g in gals]), [g.galaxy_id for g in gals]


@pytest.fixture(scope="module")
def model():
    return casnet.load_model("pretrained")


def test_the_api_is_in_all_and_import_casnet_stays_light():
    assert {"measure", "load_model", "Model", "__version__"} <= set(casnet.__all__)
    code = "import casnet, sys; print('tensorflow' in sys.modules, 'mlflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    assert done.stdout.split() == ["False", "False"]
    with pytest.raises(AttributeError, match="no attribute 'mesure'"):
        casnet.mesure  # noqa: B018  (a typo is an AttributeError, not None)


def test_measure_is_the_conventional_measurement(stamps):
    from casnet.morphology import measure

    images, _ = stamps
    got, want = casnet.measure(images[0]), measure(images[0])
    assert got.to_dict() == want.to_dict()
    assert np.isfinite(got.concentration) and np.isfinite(got.asymmetry)


def test_predict_gives_casnet_predicts_rows_for_arrays(stamps, model):
    """The same values as the combined model's own answer (what `casnet predict` writes), one
    row per stamp in order, with sigmas, the out-of-distribution score and flags."""
    from casnet.networks.trust import load_combined

    images, ids = stamps
    table = model.predict(images, ids=ids)
    assert table["galaxy_id"].tolist() == ids
    for col in ("concentration", "concentration_err", "asymmetry", "asymmetry_err",
                "ood_score", "predict_flag", "predict_flag_reasons"):  # fmt: skip
        assert col in table, col
    raw = load_combined(model.path, "pretrained").predict({"stamp": list(images), "galaxy_id": ids})
    np.testing.assert_allclose(table["concentration"], raw["concentration"], rtol=1e-6)
    np.testing.assert_allclose(table["asymmetry"], raw["asymmetry"], rtol=1e-6)
    assert (table["concentration_err"] > 0).all()
    # one stamp alone (2-D), a list of arrays and the conventional values beside
    one = model.predict(images[0], ids=[ids[0]], conventional=True)
    assert one["concentration"].iloc[0] == pytest.approx(table["concentration"].iloc[0])
    assert one["conventional_concentration"].iloc[0] == pytest.approx(
        casnet.measure(images[0]).concentration
    )
    assert len(model.predict(list(images[:2]))) == 2


def test_stamps_the_networks_cannot_take_get_a_flagged_row(model, stamps):
    images, _ = stamps
    small = np.ones((30, 30), np.float32)
    table = model.predict([images[0], small])
    assert table["galaxy_id"].tolist() == ["0", "1"]
    assert table["predict_flag"].iloc[1] == int(PredictFlag.UNUSABLE)
    assert "smaller than 60x60" in table["predict_flag_reasons"].iloc[1]
    assert np.isnan(table["concentration"].iloc[1]) and np.isfinite(table["concentration"].iloc[0])
    with pytest.raises(CasnetInputError, match="2 ids for 1 stamps"):
        model.predict(images[:1], ids=["a", "b"])
    with pytest.raises(CasnetInputError, match="2-D or 3-D"):
        model.predict(np.zeros((1, 1, 60, 60)))


def test_load_model_refuses_what_is_not_a_model(tmp_path, monkeypatch):
    with pytest.raises(CasnetInputError, match="no model 'nonexistent'"):
        casnet.load_model("nonexistent")
    with pytest.raises(CasnetInputError):
        casnet.load_model(str(tmp_path))  # a folder that is not a model
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises((CasnetStoreError, CasnetInputError)):
        casnet.load_model("models:/casnet@champion")  # no store here: a clear error
