"""The pretrained defaults: the science run's networks, shipped inside the package (issues 17, 30).

``pip install`` + ``casnet predict my_cutouts/`` scores galaxies with no training and no MLflow
store, as Zoobot's pretrained models do. Two are shipped (issue 30 item 4), each the combined
``casnet`` pyfunc model (both networks, and the galclean settings of their training data in its
``model_config``) exported by the science run (``casnet science``, :func:`export`):

``pretrained`` (``casnet/pretrained/model``)
    the paper's networks: they learnt casnet's conventional C and A of the noisy stamps (the
    labels); their sigma is the expected distance from that measurement.
``pretrained-truth`` (``casnet/pretrained/truth/model``)
    networks that learnt the simulator's idealised (noise-free) C and A; their sigma is the
    expected distance from the physical value.

Beside each model, ``provenance.json`` says what it was trained on (simulated CANDELS
F160W-like stamps, ``casnet.data.simulate``), the git commit, params and data hashes of the run
and its scores, and ``MODEL_CARD.md`` says it for people. ``default.json`` names the one
``casnet predict`` uses when nothing is named and the project has no champion: the science run
picks the one that does better on the real-galaxy suite (:func:`default_name`).

:func:`register` puts one into a user's MLflow store (``casnet pull --pretrained``) as versions of
``casnet-concentration``, ``casnet-asymmetry`` and ``casnet``; :func:`resolve` is how
``casnet predict`` falls back to it when the store has no ``casnet@champion``, without creating a
store.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from casnet.core.errors import CasnetInputError
from casnet.core.layout import COMBINED_MODEL, EXPERIMENTS, NETWORK_MODELS

__all__ = [
    "CARD",
    "DEFAULT_URI",
    "NAME",
    "NAMES",
    "PACKAGE_DIR",
    "TRUTH_NAME",
    "available",
    "default_name",
    "describe",
    "export",
    "folder_of",
    "model_path",
    "provenance",
    "register",
    "resolve",
    "set_default",
    "shipped_name",
]

#: where the shipped models live (package data: ``[tool.setuptools.package-data]``)
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "pretrained"
#: the ``--model`` value that names the label-trained model (the paper's networks)
NAME = "pretrained"
#: the ``--model`` value that names the truth-trained model (issue 30 item 4)
TRUTH_NAME = "pretrained-truth"
#: every shipped model's name -> its folder under :data:`PACKAGE_DIR`
NAMES = {NAME: ".", TRUTH_NAME: "truth"}
#: ``casnet predict``'s default model
DEFAULT_URI = f"models:/{COMBINED_MODEL}@champion"
#: the model card beside each shipped model
CARD = "MODEL_CARD.md"
_MODEL, _PROVENANCE, _DEFAULT = "model", "provenance.json", "default.json"


def _folder(folder: Path | None) -> Path:
    # read at call time, so a test (or a user's copy) can point the module elsewhere
    return Path(folder) if folder is not None else PACKAGE_DIR


def folder_of(name: str, base: Path | None = None) -> Path:
    """The folder of the shipped model ``name`` (:data:`NAMES`) under ``base`` (default: the
    package's :data:`PACKAGE_DIR`)."""
    if name not in NAMES:
        raise CasnetInputError(f"no shipped model {name!r}: give one of {', '.join(NAMES)}")
    return (_folder(base) / NAMES[name]).resolve()


def default_name(base: Path | None = None) -> str:
    """The shipped model used when none is named (``default.json``, written by the science run:
    the one better on the real suite); :data:`NAME` when there is no such file."""
    path = _folder(base) / _DEFAULT
    if path.is_file():
        name = json.loads(path.read_text()).get("default", NAME)
        if name in NAMES and available(folder_of(name, base)):
            return name
    return NAME


def set_default(name: str, why: str, base: Path | None = None) -> Path:
    """Record ``name`` as the shipped default (``default.json``) with the reason."""
    folder_of(name, base)  # a known name
    path = _folder(base) / _DEFAULT
    path.write_text(json.dumps({"default": name, "why": why}, indent=2) + "\n")
    return path


def shipped_name(local: str | Path, base: Path | None = None) -> str | None:
    """Which shipped model the folder ``local`` is (None: none of them)."""
    here = Path(local).resolve()
    for name in NAMES:
        folder = folder_of(name, base)
        if available(folder) and here == (folder / _MODEL).resolve():
            return name
    return None


def available(folder: Path | None = None) -> bool:
    """Whether a pretrained model is shipped (or exported) in ``folder`` (default: the
    package's)."""
    folder = _folder(folder)
    return (folder / _MODEL / "MLmodel").is_file() and (folder / _PROVENANCE).is_file()


def model_path(folder: Path | None = None) -> Path:
    """The pretrained model's folder (an MLflow pyfunc model: ``mlflow models serve -m`` it).

    Raises
    ------
    CasnetInputError
        When this installation ships none.
    """
    folder = _folder(folder)
    if not available(folder):
        raise CasnetInputError(
            f"no pretrained model in {folder}: this installation ships none (run "
            "`make science` to make one, or train and register your own)"
        )
    return folder / _MODEL


def provenance(folder: Path | None = None) -> dict:
    """What the pretrained model was trained on and how it scored (``provenance.json``)."""
    return json.loads((model_path(folder).parent / _PROVENANCE).read_text())


def describe(folder: Path | None = None) -> str:
    """One line for people: what the pretrained model is."""
    info = provenance(folder)
    what = info.get("trained_on", "simulated stamps")
    commit = str(info.get("git_commit", "?"))[:10]
    name = info.get("name", NAME)
    return f"the packaged {name} model ({what}; casnet {commit}, {info.get('created', '?')})"


def export(model_uri: str, info: dict, *, root: Path | None = None,
           folder: Path | None = None, card: str | None = None) -> Path:  # fmt: skip
    """Copy a registered combined model (e.g. the science run's ``models:/casnet@champion``) and
    its provenance to ``folder``; the old one is replaced only once the new one is whole.
    ``card``: the model card's text (:data:`CARD`, written beside the model).

    Returns
    -------
    Path
        The model's folder.
    """
    from casnet.networks.registry import pull

    folder = _folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pretrained-", dir=folder) as tmp:
        staged = Path(tmp) / "new"
        staged.mkdir()
        pulled = pull(model_uri, staged / _MODEL, root=root)
        if not (pulled / "MLmodel").is_file():
            raise CasnetInputError(f"{model_uri} is not an MLflow model (no MLmodel in it)")
        if pulled != staged / _MODEL:
            pulled.rename(staged / _MODEL)
        # the source store's registry names: meaningless (and misleading) anywhere else
        for meta in (staged / _MODEL).rglob("registered_model_meta"):
            meta.unlink()
        for network in (staged / _MODEL).rglob("model.keras"):
            _without_optimizer(network)
        (staged / _PROVENANCE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        # swap: the model first, then the provenance that describes it
        old = Path(tmp) / "old"
        if (folder / _MODEL).exists():
            (folder / _MODEL).rename(old)
        (staged / _MODEL).rename(folder / _MODEL)
        (staged / _PROVENANCE).replace(folder / _PROVENANCE)
        if card is not None:
            (folder / CARD).write_text(card)
        shutil.rmtree(old, ignore_errors=True)
    return folder / _MODEL


def _without_optimizer(path: Path) -> None:
    """Re-save a Keras file with its weights only (no optimizer state: half the size of an
    RMSprop or Adam network; scoring never needs it)."""
    import keras

    keras.saving.load_model(path, compile=False).save(path)


def _store_has(uri: str, root: Path | None) -> bool:
    """Whether the tracking store resolves ``uri`` (a ``models:/`` URI), never creating one.

    Raises
    ------
    CasnetStoreError
        The store is damaged (one that does not exist is not created, and holds nothing).
    """
    from casnet.core.tracking import store_exists, tracking_uri

    store = tracking_uri(root)
    if not store_exists(root):  # a damaged store raises: it is not "no store"
        return False
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name, _, alias = uri.removeprefix("models:/").partition("@")
    try:
        MlflowClient(store, registry_uri=store).get_model_version_by_alias(name, alias)
    except MlflowException:
        return False
    return True


def resolve(model: str | None, *, root: Path | None = None,
            folder: Path | None = None) -> tuple[str, str | None]:  # fmt: skip
    """What ``casnet predict --model MODEL`` scores with, and a notice for the user (or None).

    ``pretrained`` and ``pretrained-truth`` (:data:`NAMES`) name the shipped models (``folder``:
    where they are, default the package's). No model given (``None``) means the project's
    ``models:/casnet@champion`` when its store has one, and the shipped default
    (:func:`default_name`) otherwise (no store at all included: none is created), with a notice
    saying so. Anything else (a registered model or a local folder) is returned unchanged: a
    model the user names must resolve, or the command fails (issue 28: an explicit
    ``--model models:/casnet@champion`` that did not resolve fell back to the pretrained model
    with exit status 0).
    """
    if model in NAMES:
        shipped = folder_of(model, folder)
        return str(model_path(shipped)), f"scoring with {describe(shipped)}"
    if model is not None:
        return model, None
    name = default_name(folder)
    shipped = folder_of(name, folder)
    if available(shipped) and not _store_has(DEFAULT_URI, root):
        from casnet.core.tracking import tracking_uri

        pull = "`casnet pull --pretrained` registers it, " if name == NAME else ""
        return str(model_path(shipped)), (
            f"no {DEFAULT_URI} in {tracking_uri(root)}: scoring with {describe(shipped)}; "
            f"{pull}`casnet train` makes your own"
        )
    return DEFAULT_URI, None


def register(*, root: Path | None = None, promote: bool = False,
             folder: Path | None = None) -> dict[str, str]:  # fmt: skip
    """Register the pretrained networks and combined model in the project's MLflow store.

    Each gets a new version aliased ``challenger``; ``champion`` too where the model has no
    champion yet, or with ``promote`` (a user's own champion is never replaced silently).

    Returns
    -------
    dict
        Registered model name -> new version.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from casnet.core.tracking import ensure_experiment, tracking_uri, use_store
    from casnet.data.settings import CleanConfig
    from casnet.networks.registry import register_combined

    model = model_path(folder)
    info = provenance(folder)
    uri = tracking_uri(root)
    client = MlflowClient(uri, registry_uri=uri)

    def has_champion(name: str) -> bool:
        try:
            client.get_model_version_by_alias(name, "champion")
        except MlflowException:
            return False
        return True

    exp = ensure_experiment(EXPERIMENTS["registry"], root)
    tags = {"casnet.pretrained": "true",
            "casnet.pretrained_commit": str(info.get("git_commit", ""))}  # fmt: skip
    versions: dict[str, str] = {}
    with use_store(root), mlflow.start_run(experiment_id=exp, run_name="pretrained", tags=tags):
        for target in _artifacts(model):  # the model's own quantities (issue 32)
            # each network is a whole MLflow Keras model inside the combined model's artifacts
            mlflow.log_artifacts(str(model / _artifacts(model)[target]), artifact_path=target)
            run_id = mlflow.active_run().info.run_id
            name = NETWORK_MODELS[target]
            first = not has_champion(name)
            version = str(mlflow.register_model(f"runs:/{run_id}/{target}", name).version)
            client.set_registered_model_alias(name, "challenger", version)
            if first or promote:
                client.set_registered_model_alias(name, "champion", version)
            for key, value in tags.items():
                client.set_model_version_tag(name, version, key, value)
            versions[target] = version
    config = _model_config(model).get("clean")
    first = not has_champion(COMBINED_MODEL)
    clean = CleanConfig.model_validate(config) if config else None
    ood_file = model / "ood.npz"  # the shipped out-of-distribution fit travels with it
    combined = register_combined(versions, root=root, champion=first or promote, clean=clean,
                                 ood_file=ood_file if ood_file.is_file() else None)  # fmt: skip
    for key, value in tags.items():
        client.set_model_version_tag(COMBINED_MODEL, combined, key, value)
    return {**{NETWORK_MODELS[t]: v for t, v in versions.items()}, COMBINED_MODEL: combined}


def _pyfunc_spec(model: Path) -> dict:
    import yaml

    spec = yaml.safe_load((model / "MLmodel").read_text()) or {}
    return spec.get("flavors", {}).get("python_function", {}) or {}


def _model_config(model: Path) -> dict:
    """The pyfunc ``model_config`` of an MLflow model folder (MLmodel's ``config``; {} if
    none)."""
    return _pyfunc_spec(model).get("config") or {}


def _artifacts(model: Path) -> dict[str, str]:
    """Target -> the folder (relative to ``model``) of that network inside the combined model,
    for the model's own quantities in its outputs' order
    (:func:`casnet.networks.trust.model_targets`)."""
    from casnet.networks.trust import model_targets

    spec = _pyfunc_spec(model)
    found = spec.get("artifacts") or {}
    try:
        targets = model_targets(found, spec.get("config"))
    except ValueError as exc:
        raise CasnetInputError(f"{model}: not a combined casnet model ({exc})") from None
    return {t: found[t]["path"] for t in targets}
