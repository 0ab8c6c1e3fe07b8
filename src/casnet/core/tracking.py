"""MLflow set-up: one tracking store per project, wherever a command runs from.

With no ``MLFLOW_TRACKING_URI``, MLflow 3 would use ``sqlite:///<cwd>/mlflow.db`` and ``./mlruns``
relative to the working directory, so two commands started from different folders would write to
different stores. casnet resolves the project root explicitly instead.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml

from casnet.core.layout import EXPERIMENT_DESCRIPTIONS, EXPERIMENTS, project_root

__all__ = [
    "artifact_root",
    "configure",
    "data_inputs",
    "dvc_hash",
    "ensure_experiment",
    "ensure_experiments",
    "experiment_links",
    "git_commit",
    "lineage_tags",
    "require_store",
    "store_exists",
    "tracking_uri",
    "use_store",
]


def tracking_uri(root: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<project root>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(root or project_root()) / 'mlflow.db'}"


def _local_store(uri: str) -> Path | None:
    """The file of a local sqlite store, or the folder of a file store; None for a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    if uri.startswith("file:"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        return Path(url2pathname(urlparse(uri).path))
    if "://" not in uri:
        return Path(uri)
    return None


def _where(uri: str) -> str:
    """How the store was chosen, for messages."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return f"{uri} (MLFLOW_TRACKING_URI)"
    return uri


def store_exists(root: Path | None = None) -> bool:
    """Whether the project's tracking store exists, never creating one (a server: assumed).

    Raises
    ------
    CasnetStoreError
        When it exists but is not a readable MLflow store (a truncated or overwritten
        ``mlflow.db``): said at once, instead of a database traceback from deep inside MLflow.
    """
    import sqlite3

    from casnet.core.errors import CasnetStoreError

    uri = tracking_uri(root)
    path = _local_store(uri)
    if path is None:
        return True
    if not path.exists():
        return False
    if not uri.startswith("sqlite:"):
        return True
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
            db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error as exc:
        raise CasnetStoreError(
            f"{path} is not a readable MLflow store ({exc}); restore it from a backup, or move "
            "it away and run `casnet train` (or `make demo`) to start a new one"
        ) from None
    return True


def require_store(root: Path | None = None) -> str:
    """The tracking URI of a store that exists and is readable, for commands that only read
    (``predict``, ``pull``, ``evaluate``): a mistyped ``MLFLOW_TRACKING_URI`` or project root is
    an error, never a new empty store.

    Raises
    ------
    CasnetStoreError
        When the store does not exist or is damaged.
    """
    from casnet.core.errors import CasnetStoreError

    uri = tracking_uri(root)
    if not store_exists(root):
        raise CasnetStoreError(
            f"no MLflow store at {_where(uri)}; a command that only reads never creates one: "
            "check MLFLOW_TRACKING_URI / CASNET_ROOT, or run `make demo` (or `casnet train`) first"
        )
    return uri


def artifact_root(root: Path | None = None) -> str:
    """Artifact location of experiments casnet creates: ``<project root>/mlartifacts``."""
    return ((root or project_root()) / "mlartifacts").resolve().as_uri()


def ensure_experiments(root: Path | None = None) -> dict[str, str]:
    """Every experiment of :data:`casnet.core.layout.EXPERIMENTS` in the project store (created
    where missing, :func:`ensure_experiment`); name -> id. ``make demo`` calls it before its
    ``mlflow run --experiment-name`` launchers, which would otherwise create them without
    casnet's artifact location."""
    return {name: ensure_experiment(name, root) for name in EXPERIMENTS.values()}


def ensure_experiment(experiment: str, root: Path | None = None) -> str:
    """The id of ``experiment`` in the project store (created if missing).

    Touches no process-wide MLflow state (no active experiment, no environment variables), so
    library code can call it without changing what a caller's fluent ``mlflow`` calls do.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(root)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    note = EXPERIMENT_DESCRIPTIONS.get(experiment)
    if found is not None:
        if note and not found.tags.get("mlflow.note.content"):
            # made by another client (``mlflow run --experiment-name``): casnet's description
            client.set_experiment_tag(found.experiment_id, "mlflow.note.content", note)
        return found.experiment_id
    # a tracking server (http://...) chooses its own artifact store; a local store keeps
    # artifacts next to mlflow.db
    local = not uri.startswith(("http://", "https://", "databricks"))
    # the UI shows the description (the tag MLflow reads it from)
    tags = {"mlflow.note.content": note} if note else None
    try:
        return client.create_experiment(
            experiment, artifact_location=artifact_root(root) if local else None, tags=tags
        )
    except MlflowException as exc:
        # processes started together (a distributed search) race to create it: the losers use
        # the winner's
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(experiment).experiment_id


@contextmanager
def use_store(root: Path | None = None) -> Iterator[str]:
    """Point MLflow's fluent API (tracking and registry) at the project store for a block.

    ``mlflow.set_tracking_uri`` / ``set_registry_uri`` also export ``MLFLOW_TRACKING_URI`` /
    ``MLFLOW_REGISTRY_URI``, which :func:`tracking_uri` honours: left in place, one call with
    one project root would silently redirect every later call in the process. Everything is
    restored on exit (MLflow's module globals included).
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {k: os.environ.get(k) for k in keys}
    saved_tracking = tracking_utils._tracking_uri
    saved_registry = registry_utils._registry_uri
    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(saved_tracking)
        registry_utils._registry_uri = saved_registry
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def configure(experiment: str, root: Path | None = None) -> str:
    """Point MLflow's fluent API at the project store and select ``experiment``.

    Returns
    -------
    str
        The experiment id.
    """
    import mlflow  # imported here: it is slow to import and most commands never need it

    exp_id = ensure_experiment(experiment, root)
    mlflow.set_tracking_uri(tracking_uri(root))
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def git_commit(root: Path | None = None, exclude: tuple[str | Path, ...] = ()) -> str:
    """The checked-out commit: ``<sha>``, ``<sha>-dirty`` (uncommitted changes) or ``unknown``.

    ``exclude``: paths whose changes do not make it dirty: a run's own tracked outputs (the
    science report and the shipped models it rewrites), which are otherwise what makes it dirty.
    """
    root = root or project_root()
    skip = []
    for p in map(Path, exclude):
        if p.is_absolute():
            if not p.resolve().is_relative_to(root.resolve()):
                continue  # outside this checkout (an installed package): not its concern
            p = p.resolve().relative_to(root.resolve())
        skip.append(f":(exclude){p.as_posix()}")

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip

    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", *skip)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def dvc_hash(path: str | Path, root: Path | None = None) -> tuple[str, str] | None:
    """The ``dvc.lock`` output that holds ``path``: ``(output path, md5)``, or None.

    ``path`` may be an output itself (``data/augmented``) or lie inside one (``data/split/val``
    inside ``data/split``); the most specific output wins. The hash is the one recorded by the
    last ``dvc repro``/``dvc commit``: what the data was when the pipeline last produced it.
    """
    root = (root or project_root()).resolve()
    lock = root / "dvc.lock"
    if not lock.exists():
        return None
    target = Path(path)
    target = (target if target.is_absolute() else root / target).resolve()
    try:
        rel = target.relative_to(root)
    except ValueError:
        return None
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    best: tuple[str, str] | None = None
    for stage in stages.values():
        for out in stage.get("outs", []):
            out_path = Path(out["path"])
            if (rel == out_path or out_path in rel.parents) and "md5" in out:
                if best is None or len(out_path.parts) > len(Path(best[0]).parts):
                    best = (out_path.as_posix(), out["md5"])
    return best


def lineage_tags(data: Mapping[str, str | Path], root: Path | None = None) -> dict[str, str]:
    """Tags that say what a run was made from: the git commit and the DVC hash of each input.

    Parameters
    ----------
    data : mapping
        Role (``train``, ``val``, ...) to the path of the data read in that role.

    Returns
    -------
    dict
        ``casnet.git_commit``; per role ``casnet.data.<role>.path`` and
        ``casnet.data.<role>.dvc_md5`` (``untracked`` when no dvc.lock output holds the path).
    """
    tags = {"casnet.git_commit": git_commit(root)}
    for role, path in data.items():
        found = dvc_hash(path, root)
        tags[f"casnet.data.{role}.path"] = str(path)
        tags[f"casnet.data.{role}.dvc_md5"] = found[1] if found else "untracked"
        if found:
            tags[f"casnet.data.{role}.dvc_out"] = found[0]
    return tags


def data_inputs(data: Mapping[str, str | Path], root: Path | None = None) -> list:
    """MLflow dataset inputs (for ``MlflowClient.log_inputs``) pointing at DVC outputs.

    One :class:`mlflow.data.meta_dataset.MetaDataset` per role, named after the path (relative
    to the project root when inside it), whose
    digest is the DVC md5 (so the MLflow UI shows the same hash as ``dvc.lock``) and whose
    context tag is the role.
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    root = root or project_root()
    inputs = []
    for role, path in data.items():
        found = dvc_hash(path, root)
        full = Path(path) if Path(path).is_absolute() else root / path
        with warnings.catch_warnings():
            # file:// matches two equivalent local sources; MLflow warns and picks one
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(full.resolve().as_uri())
        digest = found[1] if found else "untracked"
        # named relative to the project (issue 31: this machine's absolute paths in the UI); the
        # source keeps the full location
        try:
            name = full.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            name = str(path)
        dataset = MetaDataset(source, name=name, digest=digest[:36])
        inputs.append(DatasetInput(dataset._to_mlflow_entity(),
                                   tags=[InputTag("mlflow.data.context", role)]))  # fmt: skip
    return inputs


def experiment_links(base_url: str = "http://127.0.0.1:5000",
                     root: Path | None = None) -> list[tuple[str, str]]:  # fmt: skip
    """Direct links to the runs table of each casnet experiment in the MLflow UI.

    MLflow 3 opens an experiment in its GenAI view (traces: nothing to see for casnet); the runs
    table is ``#/experiments/<id>/runs?workflowType=machine_learning`` (issue 19). Read-only: a
    store that does not exist is reported, never created.

    Returns
    -------
    list of (experiment name, URL)
        The experiments of :data:`casnet.core.layout.EXPERIMENTS` that exist, in that order.

    Raises
    ------
    CasnetStoreError
        When the store does not exist or is damaged (exit status 4 on the command line, as for
        every command that reads a store).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from casnet.core.errors import CasnetStoreError
    from casnet.core.layout import EXPERIMENTS

    uri = require_store(root)
    client = MlflowClient(uri)
    links = []
    for name in EXPERIMENTS.values():
        try:
            found = client.get_experiment_by_name(name)
        except MlflowException as exc:  # a tracking server that does not answer, say
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            raise CasnetStoreError(f"cannot read the MLflow store at {_where(uri)}: {first}"
                                   ) from None  # fmt: skip
        if found is not None:
            links.append((name, f"{base_url.rstrip('/')}/#/experiments/{found.experiment_id}"
                                "/runs?workflowType=machine_learning"))  # fmt: skip
    return links
