"""A model folder is checked before anything in it is loaded, and casnet loads its combined
model without unpickling it (issue 28, casnet.networks.trust).

Every refused folder here carries a ``python_model.pkl`` that writes a marker file when
unpickled: the marker's absence proves that the refusal came before any code of the folder ran.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from casnet.core.errors import CasnetInputError
from casnet.networks import pretrained, registry, trust
from casnet.networks.serve import scoring_server

SHIPPED = pretrained.PACKAGE_DIR / "model"


class _Touch:
    """Unpickled, creates ``path``: stands for any code a pickle can run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "code-ran"


@pytest.fixture
def folder(tmp_path, marker) -> Path:
    """A copy of the shipped model whose pickle runs code."""
    dest = tmp_path / "model"
    shutil.copytree(SHIPPED, dest)
    (dest / trust.PYTHON_MODEL).write_bytes(pickle.dumps(_Touch(marker)))
    return dest


def _edit(folder: Path, change) -> None:
    spec = yaml.safe_load((folder / "MLmodel").read_text())
    change(spec["flavors"]["python_function"])
    (folder / "MLmodel").write_text(yaml.safe_dump(spec))


def _refused(folder: Path, marker: Path, match: str) -> None:
    """check_model, load_combined and registry.load all refuse, and no code ran."""
    for attempt in (trust.check_model, trust.load_combined):
        with pytest.raises(CasnetInputError, match=match) as info:
            attempt(folder, "given-name")
        assert str(info.value).startswith("given-name ")
    with pytest.raises(CasnetInputError, match=match):
        registry.load(str(folder))
    assert not marker.exists()


def test_the_shipped_pretrained_model_passes():
    trust.check_model(SHIPPED, "pretrained")


def test_a_model_casnet_saves_passes(tmp_path):
    """The other writer of the combined model (the benchmarks' untrained model): accepted."""
    from casnet.bench.speed import model_folder
    from casnet.networks.settings import ArchitectureConfig

    arch = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1,
                              dense_units=8, dropout=0.25, optimizer="adam",
                              learning_rate=0.01, batch_size=16)  # fmt: skip
    path, _ = model_folder(None, str(tmp_path), {"concentration": arch, "asymmetry": arch})
    trust.check_model(Path(path), path)


def test_load_combined_answers_as_mlflow_would_without_unpickling(monkeypatch):
    import mlflow.pyfunc

    stamps = np.random.default_rng(1).normal(1.0, 0.2, (2, 101, 101)).astype(np.float32)
    loaded = trust.load_combined(SHIPPED, "pretrained")
    combined = loaded.unwrap_python_model()
    assert isinstance(combined, registry.CasnetModel) and combined.clean is not None
    reference = mlflow.pyfunc.load_model(str(SHIPPED)).predict(stamps)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("python_model.pkl was unpickled")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    again = trust.load_combined(SHIPPED, "pretrained")
    # the same networks and code on the same stamps: the same numbers to the last bit
    assert again.predict(stamps).equals(reference)
    # params reach the model (one stamp per batch: float sums in another order, hence rtol)
    one_by_one = again.predict(stamps, params={"batch_size": 1})
    np.testing.assert_allclose(
        one_by_one.to_numpy(), reference.to_numpy(), rtol=1e-5, atol=1e-5
    )  # float32 sums: a near-zero value differs absolutely


def test_a_pickle_that_runs_code_is_refused(folder, marker):
    _refused(folder, marker, "not the pickle casnet writes")


@pytest.mark.parametrize(
    "change, match",
    [
        pytest.param(lambda f: f.update(loader_module="evil_loader"), "loader module",
                     id="another loader module"),
        pytest.param(lambda f: f.update(code="code"), "code paths", id="code paths"),
        pytest.param(lambda f: f.update(python_model="model.py"), "model from code",
                     id="model from code"),
        pytest.param(lambda f: f.update(model_code_path="model.py"), "model from code",
                     id="model code path"),
        pytest.param(lambda f: f["artifacts"].pop("asymmetry"), "not one network per target",
                     id="a target missing"),
        pytest.param(lambda f: f["artifacts"].update(extra={"path": "artifacts/asymmetry"}),
                     "not one network per target", id="an extra artifact"),
        pytest.param(lambda f: f["artifacts"]["asymmetry"].update(path="../elsewhere"),
                     "not a relative path inside", id="an artifact outside"),
        pytest.param(lambda f: f.update(predict_fn="run"), "keys casnet never writes",
                     id="another predict function"),
    ],
)  # fmt: skip
def test_a_folder_unlike_casnets_is_refused_before_loading(folder, marker, change, match):
    (folder / "code").mkdir()
    (folder / "code" / "evil_loader.py").write_text(f"open({str(marker)!r}, 'w')\n")
    (folder / "model.py").write_text(f"open({str(marker)!r}, 'w')\n")
    _edit(folder, change)
    _refused(folder, marker, match)


def test_a_network_that_is_not_a_keras_file_is_refused(folder, marker):
    shutil.rmtree(folder / "artifacts" / "asymmetry" / "data")
    _refused(folder, marker, "asymmetry network has no data/model.keras")


def test_a_network_with_python_code_is_refused_by_keras_safe_mode(folder, marker):
    """A ``Lambda`` layer carries Python bytecode: the structure passes the check, Keras's safe
    mode refuses the file."""
    import keras

    inputs = keras.Input((60, 60, 1))
    doubled = keras.layers.Lambda(lambda x: x * 2)(inputs)
    net = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(doubled)))
    net.save(folder / "artifacts" / "asymmetry" / "data" / "model.keras")
    (folder / trust.PYTHON_MODEL).write_bytes((SHIPPED / trust.PYTHON_MODEL).read_bytes())
    trust.check_model(folder, "given-name")
    with pytest.raises(CasnetInputError, match=r"asymmetry network does not load.*Lambda"):
        trust.load_combined(folder, "given-name")


def test_yaml_aliases_are_refused(folder, marker):
    text = (folder / "MLmodel").read_text()
    (folder / "MLmodel").write_text(text + "bomb: &a [1, 2]\nboom: [*a, *a]\n")
    _refused(folder, marker, r"YAML aliases \(\*a\) are not allowed")


def test_a_single_network_is_told_apart():
    with pytest.raises(CasnetInputError, match="single network"):
        trust.check_model(SHIPPED / "artifacts" / "asymmetry", "models:/casnet-asymmetry/1")


def test_the_scoring_server_is_not_started_for_a_refused_folder(folder, marker):
    with pytest.raises(CasnetInputError, match="not the pickle casnet writes"):
        with scoring_server(str(folder), startup_s=1):
            pytest.fail("served")
    assert not marker.exists()


def test_a_registered_model_is_checked_and_errors_name_the_uri(folder, marker, tmp_path,
                                                               monkeypatch):  # fmt: skip
    """A model registered in the store as ``casnet`` but not written by casnet: refused after
    the download, naming the URI given, never the temporary download folder."""
    import mlflow

    from casnet.core.tracking import ensure_experiment, use_store

    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.setenv("CASNET_ROOT", str(root))
    # an experiment of this store: another test may have left MLflow's active one set
    experiment = ensure_experiment("casnet-registry", root)
    with use_store(root), mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(folder), artifact_path="model")
        mlflow.register_model(f"runs:/{run.info.run_id}/model", "casnet")
    from mlflow import MlflowClient

    uri = f"sqlite:///{root}/mlflow.db"
    MlflowClient(uri, registry_uri=uri).set_registered_model_alias("casnet", "champion", "1")
    with pytest.raises(CasnetInputError) as info:
        registry.load("models:/casnet@champion", root=root)
    message = str(info.value)
    assert message.startswith("models:/casnet@champion ") and "casnet-model-" not in message
    assert not marker.exists()
    with pytest.raises(CasnetInputError, match="cannot load models:/casnet@nosuch") as info:
        registry.load("models:/casnet@nosuch", root=root)
    assert "casnet-model-" not in str(info.value)
