"""Training data from stamp stores as ``tf.data`` pipelines, streamed chunk by chunk.

The stores written by ``select`` / ``split`` / ``augment`` hold network-ready stamps (60x60 by
default, :class:`casnet.data.preprocess.NetworkInput`), already cropped and normalised, and the
labels ``label_concentration`` / ``label_asymmetry``. Only one store chunk is in memory at a time
(plus the shuffle buffer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from casnet.core.errors import CasnetInputError
from casnet.core.layout import EVALUATION_ONLY, TARGETS
from casnet.data.io.store import CATALOG, StampStore
from casnet.data.preprocess import NetworkInput

__all__ = [
    "LABEL_SOURCES",
    "OVERRIDE_TAG",
    "check_inputs",
    "evaluation_only_count",
    "label_column",
    "refuse_evaluation_only",
    "store_dataset",
    "store_input",
]

#: what a network can learn (issue 17): ``label``, the training labels (the conventional
#: measurement or external labels: the paper's choice), or ``truth``, the simulator's idealised
#: truth (C and A of the noiseless image: the physics rather than the algorithm)
LABEL_SOURCES = {"label": "label_{}", "truth": "{}_true"}


#: the run tag of a training allowed on evaluation-only galaxies (never a shipped network)
OVERRIDE_TAG = "casnet.evaluation_only_override"


def label_column(target: str, labels: str = "label") -> str:
    """The catalogue column a network for ``target`` learns from ``labels`` (:data:`LABEL_SOURCES`).

    Raises
    ------
    CasnetInputError
        For an unknown target or label source.
    """
    if target not in TARGETS:
        raise CasnetInputError(f"target must be one of {TARGETS}, got {target!r}")
    if labels not in LABEL_SOURCES:
        raise CasnetInputError(f"labels must be one of {', '.join(LABEL_SOURCES)}, got {labels!r}")
    return LABEL_SOURCES[labels].format(target)


def store_input(*stores: str | Path) -> NetworkInput:
    """The network input of stores of network-ready stamps: their stamp side, the same in all.

    Raises
    ------
    CasnetInputError
        When the stores hold stamps of different sizes (a network takes one size).
    """
    sides = {str(s): NetworkInput.of_stamps(StampStore(s).stamp_shape) for s in stores}
    if len(set(sides.values())) > 1:
        found = ", ".join(f"{s}: {n.size} px" for s, n in sides.items())
        raise CasnetInputError(f"the stores hold stamps of different sizes ({found})")
    return next(iter(sides.values()))


def evaluation_only_count(src: StampStore) -> int:
    """How many galaxies of ``src`` are for evaluation only: the rows flagged
    :data:`~casnet.core.layout.EVALUATION_ONLY`, or every row of a store the real suite wrote
    (``stage: real-suite``)."""
    if src.meta.get("stage") == "real-suite":
        return len(src)
    cat = src.catalog
    if EVALUATION_ONLY not in cat.columns:
        return 0
    return int(cat[EVALUATION_ONLY].fillna(False).astype(bool).sum())


def refuse_evaluation_only(src: StampStore) -> None:
    """Refuse to train on a store that holds evaluation-only galaxies (the real suite's), or
    that the real suite wrote.

    Raises
    ------
    CasnetInputError
        Naming the store and how many such galaxies it holds.
    """
    if src.meta.get("stage") == "real-suite":
        raise CasnetInputError(f"{src.path}: the real-galaxy suite's store is for evaluation "
                               "only; no network is trained on it")  # fmt: skip
    n = evaluation_only_count(src)
    if n:
        raise CasnetInputError(f"{src.path}: {n} galaxies are for evaluation only (the real "
                               "suite's); no network is trained on them")  # fmt: skip


def store_dataset(
    store: str | Path,
    target: str,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    labels: str = "label",
    allow_evaluation_only: bool = False,
) -> tf.data.Dataset:
    """Batches of ``(stamps[..., None], labels)`` from ``store``.

    Parameters
    ----------
    store : path
        A store of network-ready stamps (output of ``select``, ``split`` or ``augment``).
    target : {"concentration", "asymmetry"}
        Which label.
    batch_size : int
    shuffle : bool
        Shuffle chunk order and, within a buffer of two chunks, the galaxies (seeded; a new order
        each epoch).
    allow_evaluation_only : bool
        Serve a store that holds evaluation-only galaxies (refused by default:
        :func:`refuse_evaluation_only`). Only for :func:`casnet.networks.train.train`'s
        override, which marks the run and never logs its network as a model.
    """
    column = label_column(target, labels)
    src = StampStore(store)
    if not allow_evaluation_only:
        refuse_evaluation_only(src)
    if column not in src.catalog.columns:
        raise CasnetInputError(f"{store}: no {column} column (not a selected/split store?)")
    if len(src) == 0:
        raise CasnetInputError(f"{store}: the store is empty")
    h, w = src.stamp_shape
    values = src.catalog[column].to_numpy(dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        raise CasnetInputError(f"{store}: no finite {column}")
    starts = np.arange(0, len(src), src.chunk_size)
    epoch = [0]

    def chunks():
        order = starts
        if shuffle:
            order = np.random.default_rng([seed, epoch[0]]).permutation(starts)
            epoch[0] += 1
        images = src.array("image")
        for start in order:
            stop = min(start + src.chunk_size, len(src))
            keep = finite[start:stop]
            yield np.asarray(images[start:stop])[keep][..., None], values[start:stop][keep]

    ds = tf.data.Dataset.from_generator(
        chunks,
        output_signature=(
            tf.TensorSpec(shape=(None, h, w, 1), dtype=tf.float32),
            tf.TensorSpec(shape=(None,), dtype=tf.float32),
        ),
    ).unbatch()
    if shuffle:
        ds = ds.shuffle(2 * src.chunk_size, seed=seed, reshuffle_each_iteration=True)
    # a generator's length is unknown to tf.data: stating it lets Keras count steps per epoch
    n_batches = -(-int(finite.sum()) // batch_size)
    ds = ds.batch(batch_size).apply(tf.data.experimental.assert_cardinality(n_batches))
    return ds.prefetch(tf.data.AUTOTUNE)


def check_inputs(target: str, train: str | Path, val: str | Path) -> None:
    """Fail before any training when the target or the stores are unusable."""
    if target not in TARGETS:
        raise CasnetInputError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    for role, path in (("training", train), ("validation", val)):
        if not (Path(path) / CATALOG).exists():
            raise CasnetInputError(
                f"no {role} store at {path}: run `dvc repro` (or `make demo`) first"
            )
        store = StampStore(path)
        if len(store) == 0:
            raise CasnetInputError(f"the {role} store {path} is empty")
        if f"label_{target}" not in store.catalog.columns:
            raise CasnetInputError(f"{path} has no label_{target} column")
