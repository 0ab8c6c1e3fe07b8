"""The training chain ``casnet train`` runs, as one call: train -> register -> combined model.

:func:`train_and_register` trains a network (Table 1 or a search's best trial), registers it as
``challenger``, promotes it to ``champion`` when it wins on the validation set (or when asked),
and then re-registers the combined model ``casnet`` around the two champions. Python callers (a
notebook, the science run) get the same chain as the command line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from casnet.core.errors import CasnetError
from casnet.core.layout import project_root
from casnet.data.settings import CleanConfig
from casnet.networks.registry import Promotion, register_combined, register_network
from casnet.networks.settings import ArchitectureConfig, SearchConfig
from casnet.networks.train import TrainResult, train

__all__ = ["Trained", "train_and_register"]


@dataclass(frozen=True)
class Trained:
    """What :func:`train_and_register` did."""

    #: the training run
    result: TrainResult
    #: its registration (None when not registered)
    promotion: Promotion | None
    #: the new version of the combined model (None: not re-registered)
    combined_version: str | None
    #: why the combined model was not re-registered (empty when it was, or was not due)
    combined_reason: str = ""


def train_and_register(
    target: str,
    arch: ArchitectureConfig,
    *,
    train_store: str | Path,
    val: str | Path,
    test: str | Path,
    budget: SearchConfig,
    source: str = "params.yaml",
    register: bool = True,
    promote: bool = False,
    root: Path | None = None,
    verbose: int = 1,
    labels: str = "label",
    clean: CleanConfig | None = None,
    init: str | None = None,
    learning_rate: float | None = None,
) -> Trained:
    """Train ``arch`` for ``target``, register it and, when it becomes champion, the combined
    model.

    Parameters
    ----------
    budget : SearchConfig
        ``max_epochs``, ``patience`` and ``seed`` of the training.
    source : str
        Where the hyperparameters came from (``params.yaml`` or a search run id), a tag.
    register : bool
        False: train and log only.
    promote : bool
        Make the new version champion even if it does not beat the champion.
    clean : CleanConfig, optional
        The galclean settings of the training data (``params.clean``): the combined model cleans
        raw stamps with them, as the pipeline did (no train/serve skew).
    labels : {"label", "truth"}
        What the network learns. Only ``label`` networks are registered: the registry's models
        are the ones that reproduce the labels (the paper's networks).
    init, learning_rate
        Fine-tune from a model's network (:func:`casnet.networks.train.train`).

    The training is resumable: killed midway, the same call continues from the last finished
    epoch (a Keras ``BackupAndRestore`` folder under ``<root>/.training``, keyed by the target,
    the labels, the architecture and the budget; removed when the training ends).
    """
    if labels != "label" and register:
        raise CasnetError("only networks trained on the labels are registered: use register=False")
    # a fine-tuning is another training than one from scratch (kept out of the key otherwise,
    # so the folders of trainings from scratch keep their names)
    start = [init, learning_rate] if init is not None or learning_rate is not None else []
    key = hashlib.sha256(
        json.dumps([target, labels, arch.model_dump(mode="json"),
                    budget.model_dump(mode="json"), str(train_store), *start]).encode()
    ).hexdigest()[:12]  # fmt: skip
    backup = (root or project_root()) / ".training" / f"{target}-{labels}-{key}"
    result = train(target, arch, train=train_store, val=val, test=test, budget=budget,
                   source=source, root=root, verbose=verbose, labels=labels,
                   backup=backup, init=init, learning_rate=learning_rate)  # fmt: skip
    if not register:
        return Trained(result, None, None)
    promotion = register_network(result.run_id, result.model_uri, target, val_store=val,
                                 val_rmse=result.metrics["final_val_rmse"], promote=promote,
                                 root=root)  # fmt: skip
    if not promotion.promoted:
        return Trained(result, promotion, None)
    try:
        # the out-of-distribution fit on the validation store (issue 29): the threshold is the
        # 99th percentile of galaxies the networks did not learn from
        version = register_combined(root=root, clean=clean, ood_store=val)
    except CasnetError as exc:  # the other network has no champion yet
        return Trained(result, promotion, None, str(exc))
    return Trained(result, promotion, version)
