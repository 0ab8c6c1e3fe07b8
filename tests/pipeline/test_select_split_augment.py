"""Stages select, split and augment on small hand-made stores with known answers."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from casnet.cli import app
from casnet.core.errors import CasnetInputError
from casnet.data.io.store import StampStore, StoreWriter
from casnet.data.settings import AugmentConfig, SelectConfig, SplitConfig, StoreConfig
from casnet.morphology import Flag
from casnet.pipeline import augment, select, split

runner = CliRunner()
STORE = StoreConfig(chunk_size=4)


# -- helpers -----------------------------------------------------------------------------------


def _write_store(path, rows: list[dict], images: np.ndarray, *, chunk_size: int = 4) -> StampStore:
    """A store of ``rows`` (each with a galaxy_id) and ``images`` (N, H, W), written directly."""
    writer = StoreWriter(path, stamp_shape=images.shape[1:], arrays=("image",),
                         chunk_size=chunk_size, meta={"stage": "test"})  # fmt: skip
    with writer:
        for lo in range(0, len(rows), chunk_size):
            writer.append(rows[lo : lo + chunk_size], {"image": images[lo : lo + chunk_size]})
    return StampStore(path)


def _blobs(n: int, size: int = 101) -> np.ndarray:
    """n stamps with a positive Gaussian blob at the centre on weak noise."""
    yy, xx = np.mgrid[:size, :size]
    c = size // 2
    blob = 10.0 * np.exp(-((yy - c) ** 2 + (xx - c) ** 2) / (2 * 4.0**2))
    noise = np.random.default_rng(3).normal(0.0, 0.3, (n, size, size))
    return (blob + noise).astype(np.float32)


def _files(root) -> dict[str, str]:
    return {
        str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


# -- select ------------------------------------------------------------------------------------

#: galaxy_id -> (flag, snr_p, r_petro, expected reason ('' = kept)); cuts: SNR_p > 2, R_p > 5 px
CASES = {
    "ok1": (0, 10.0, 8.0, ""),
    "ok2": (0, 2.01, 5.01, ""),  # just above both cuts
    "warn": (int(Flag.INVALID_PIXELS | Flag.FEW_SKY_CELLS), 10.0, 8.0, ""),  # not excluded
    "snr_eq": (0, 2.0, 8.0, "snr_p 2 <= 2"),  # the cut is strict
    "snr_low": (0, 1.5, 8.0, "snr_p 1.5 <= 2"),
    "snr_nan": (0, np.nan, 8.0, "snr_p nan <= 2"),
    "rp_eq": (0, 10.0, 5.0, "r_petro 5 <= 5 px"),
    "rp_low": (0, 10.0, 3.25, "r_petro 3.25 <= 5 px"),
    "both_low": (0, 1.0, 1.0, "snr_p 1 <= 2"),  # SNR_p is tested before R_p
    "edge": (int(Flag.EDGE), 10.0, 8.0, "flag EDGE"),
    "edge_low": (int(Flag.EDGE | Flag.INVALID_PIXELS), 1.0, 1.0, "flag EDGE"),  # flags first
    "nosrc_edge": (int(Flag.NO_SOURCE | Flag.EDGE), np.nan, np.nan, "flag NO_SOURCE|EDGE"),
    "ok3": (0, 50.0, 20.0, ""),
}


@pytest.fixture(scope="module")
def cut_inputs(tmp_path_factory):
    """A store of every CASES galaxy and the measurements table that decides the cuts."""
    root = tmp_path_factory.mktemp("select")
    ids = list(CASES)
    # C and A of ours: distinct per galaxy so that label columns can be traced
    meas = pd.DataFrame({
        "galaxy_id": ids,
        "flag": [CASES[g][0] for g in ids],
        "snr_p": [CASES[g][1] for g in ids],
        "r_petro": [CASES[g][2] for g in ids],
        "concentration": [2.0 + 0.1 * k for k in range(len(ids))],
        "asymmetry": [0.01 * k for k in range(len(ids))],
    })  # fmt: skip
    meas.to_parquet(root / "measured.parquet", index=False)
    _write_store(root / "src", [{"galaxy_id": g} for g in ids], _blobs(len(ids)))
    return root, meas


@pytest.fixture(scope="module")
def selected(cut_inputs):
    root, _ = cut_inputs
    return select.run(SelectConfig(), STORE, root / "src", root / "measured.parquet",
                      root / "sel", show_progress=False)  # fmt: skip


def test_select_keeps_exactly_the_galaxies_passing_every_cut(selected):
    store, _ = selected
    expected = [g for g, case in CASES.items() if case[3] == ""]
    assert store.catalog["galaxy_id"].tolist() == expected  # source order is kept
    assert len(store) == len(expected)
    assert store.stamp_shape == (60, 60)


def test_select_lists_every_removed_galaxy_with_its_first_failed_cut(selected):
    store, _ = selected
    rejects = store.rejects
    expected = {g: case[3] for g, case in CASES.items() if case[3]}
    assert dict(zip(rejects["galaxy_id"], rejects["reason"], strict=True)) == expected
    assert len(rejects) == len(expected)  # each listed once


def test_select_metrics_add_up(selected):
    store, metrics = selected
    n_removed = sum(1 for case in CASES.values() if case[3])
    assert metrics["n_in"] == len(CASES)
    assert metrics["n_out"] == len(store) == len(CASES) - n_removed
    assert metrics["n_in"] == metrics["n_out"] + sum(metrics["removed"].values())
    # by reason: snr_p and r_petro cuts counted by the cut's name, flags by their names
    assert metrics["removed"] == {
        "snr_p": 4,  # snr_eq, snr_low, snr_nan, both_low
        "r_petro": 2,  # rp_eq, rp_low
        "flag EDGE": 2,  # edge, edge_low
        "flag NO_SOURCE|EDGE": 1,
    }
    assert metrics["fraction_kept"] == pytest.approx(4 / 13, rel=1e-12)  # exact ratio
    assert metrics["labels_external"] == 0


def test_select_without_external_labels_uses_ours(selected, cut_inputs):
    store, _ = selected
    _, meas = cut_inputs
    cat = store.catalog.set_index("galaxy_id")
    ours = meas.set_index("galaxy_id").loc[cat.index]
    assert (cat["label_source"] == "casnet").all()
    np.testing.assert_array_equal(cat["label_concentration"], ours["concentration"])
    np.testing.assert_array_equal(cat["label_asymmetry"], ours["asymmetry"])
    # our measurement is kept alongside under its own names
    np.testing.assert_array_equal(cat["concentration"], ours["concentration"])
    np.testing.assert_array_equal(cat["snr_p"], ours["snr_p"])


def test_select_external_labels_win_and_nan_falls_back_to_ours(tmp_path):
    rows = [
        {"galaxy_id": "a", "label_concentration": 4.5, "label_asymmetry": 0.35},
        {"galaxy_id": "b", "label_concentration": np.nan, "label_asymmetry": np.nan},
        {"galaxy_id": "c", "label_concentration": 3.3, "label_asymmetry": np.nan},
        {"galaxy_id": "d", "label_concentration": 1.9, "label_asymmetry": 0.02},
    ]
    _write_store(tmp_path / "src", rows, _blobs(4))
    pd.DataFrame({
        "galaxy_id": ["a", "b", "c", "d"], "flag": 0, "snr_p": 10.0, "r_petro": 8.0,
        "concentration": [2.1, 2.2, 2.3, 2.4], "asymmetry": [0.11, 0.12, 0.13, 0.14],
    }).to_parquet(tmp_path / "m.parquet", index=False)  # fmt: skip
    store, metrics = select.run(SelectConfig(), STORE, tmp_path / "src", tmp_path / "m.parquet",
                                tmp_path / "sel", show_progress=False)  # fmt: skip
    cat = store.catalog.set_index("galaxy_id")
    assert cat["label_source"].to_dict() == {
        "a": "external",
        "b": "casnet",
        "c": "casnet",  # one label missing: both come from one source, ours
        "d": "external",
    }
    assert cat["label_concentration"].to_dict() == pytest.approx(
        {"a": 4.5, "b": 2.2, "c": 2.3, "d": 1.9}
    )
    assert cat["label_asymmetry"].to_dict() == pytest.approx(
        {"a": 0.35, "b": 0.12, "c": 0.13, "d": 0.02}
    )
    assert metrics["labels_external"] == 2


def _clean_measurements(path, ids) -> None:
    """A measurement table in which every galaxy of ``ids`` passes every cut."""
    table = pd.DataFrame({"galaxy_id": list(ids), "flag": 0, "snr_p": 10.0, "r_petro": 8.0,
                          "concentration": 3.0, "asymmetry": 0.1})  # fmt: skip
    table.to_parquet(path, index=False)


def test_select_galaxy_missing_from_measurements_is_removed(tmp_path):
    _write_store(tmp_path / "src", [{"galaxy_id": g} for g in ("a", "b", "c")], _blobs(3))
    _clean_measurements(tmp_path / "m.parquet", ["a", "c"])
    store, _ = select.run(SelectConfig(), STORE, tmp_path / "src", tmp_path / "m.parquet",
                          tmp_path / "sel", show_progress=False)  # fmt: skip
    assert store.catalog["galaxy_id"].tolist() == ["a", "c"]
    assert store.rejects["galaxy_id"].tolist() == ["b"]
    assert store.rejects["reason"].tolist() == ["not measured"]


def test_select_crop_without_positive_pixel_is_rejected(tmp_path):
    images = _blobs(3)
    images[1] = -1.0  # passes the cuts, but cannot be normalised
    _write_store(tmp_path / "src", [{"galaxy_id": g} for g in ("a", "b", "c")], images)
    _clean_measurements(tmp_path / "m.parquet", ["a", "b", "c"])
    store, metrics = select.run(SelectConfig(), STORE, tmp_path / "src", tmp_path / "m.parquet",
                                tmp_path / "sel", show_progress=False)  # fmt: skip
    assert store.catalog["galaxy_id"].tolist() == ["a", "c"]
    assert store.rejects["galaxy_id"].tolist() == ["b"]
    assert store.rejects["reason"][0].startswith("empty crop")
    assert metrics["n_in"] == metrics["n_out"] + sum(metrics["removed"].values()) == 3


def test_select_without_measurements_file_names_the_stage(cut_inputs, tmp_path):
    root, _ = cut_inputs
    with pytest.raises(CasnetInputError, match=r"^select: .*not found"):
        select.run(SelectConfig(), STORE, root / "src", tmp_path / "missing.parquet",
                   tmp_path / "sel", show_progress=False)  # fmt: skip
    assert not (tmp_path / "sel").exists()


def test_select_of_an_empty_store_names_the_stage(cut_inputs, tmp_path):
    root, _ = cut_inputs
    StoreWriter(tmp_path / "empty", stamp_shape=(101, 101), chunk_size=4).close()
    with pytest.raises(CasnetInputError, match=r"^select: .*empty"):
        select.run(SelectConfig(), STORE, tmp_path / "empty", root / "measured.parquet",
                   tmp_path / "sel", show_progress=False)  # fmt: skip


# -- split -------------------------------------------------------------------------------------

IDS = [f"candels-{i:05d}" for i in range(2000)]


def test_split_fractions_are_near_80_10_10():
    which = split.assign(IDS, SplitConfig())
    n = len(IDS)
    for name, p in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        frac = float(np.mean(which == name))
        # binomial: sigma = sqrt(p (1 - p) / n) = 0.0089 (train), 0.0067 (val, test) for n = 2000;
        # 4 sigma (the ids are fixed, so this is deterministic; 4 sigma guards the hash's spread)
        sigma = np.sqrt(p * (1 - p) / n)
        assert abs(frac - p) < 4 * sigma, (name, frac)


def test_split_is_disjoint_and_complete():
    which = split.assign(IDS, SplitConfig())
    assert which.shape == (len(IDS),)
    assert set(which.tolist()) == {"train", "val", "test"}  # every id gets exactly one name


def test_split_of_a_subset_matches_the_full_set():
    cfg = SplitConfig()
    full = split.assign(IDS, cfg)
    np.testing.assert_array_equal(split.assign(IDS[:500], cfg), full[:500])
    # order does not matter either: each id is decided by itself alone
    rev = split.assign(IDS[::-1], cfg)
    np.testing.assert_array_equal(rev[::-1], full)


def test_split_other_seed_gives_another_split():
    a = split.assign(IDS, SplitConfig(seed=0))
    b = split.assign(IDS, SplitConfig(seed=1))
    # independent draws agree with probability 0.8^2 + 0.1^2 + 0.1^2 = 0.66: ~680 of 2000 differ
    # (sigma ~ 21); requiring 500 only fails when the seed is ignored
    assert int(np.sum(a != b)) > 500


def test_split_edges_follow_the_fractions():
    # the unit hash decides: [0, train) -> train, [train, train + val) -> val, the rest -> test
    cfg = SplitConfig(train=0.5, val=0.3, test=0.2, seed=4)
    u = np.array([split.hash_unit(g, 4) for g in IDS[:300]])
    expected = np.where(u < 0.5, "train", np.where(u < 0.8, "val", "test"))
    np.testing.assert_array_equal(split.assign(IDS[:300], cfg), expected)


def test_hash_unit_is_sha256_of_seed_and_id():
    for gid, seed in (("gal00001", 0), ("COSMOS_12345", 7), ("", 3)):
        digest = hashlib.sha256(f"{seed}:{gid}".encode()).digest()
        expected = int.from_bytes(digest[:8], "big") / 2.0**64
        assert split.hash_unit(gid, seed) == expected


def test_hash_unit_is_the_same_in_another_process():
    ids = ["gal00001", "COSMOS_12345", "x"]
    code = (
        "import json, sys; from casnet.pipeline.split import hash_unit; "
        "print(json.dumps([hash_unit(g, 7) for g in json.loads(sys.argv[1])]))"
    )
    # another string-hash salt than this process's: a per-process hash (like hash()) shows here
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(ids)], env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    expected = [
        int.from_bytes(hashlib.sha256(f"7:{g}".encode()).digest()[:8], "big") / 2.0**64 for g in ids
    ]
    # floats survive JSON exactly (repr round trip)
    assert json.loads(out) == [split.hash_unit(g, 7) for g in ids] == expected


def _id_store(path, ids: list[str]) -> StampStore:
    # 4x4 stamps whose value encodes the galaxy: images can be traced through the split
    images = np.stack([np.full((4, 4), int(g.split("-")[1]), np.float32) for g in ids])
    return _write_store(path, [{"galaxy_id": g, "n": int(g.split("-")[1])} for g in ids], images,
                        chunk_size=16)  # fmt: skip


def _split_of(stores: dict[str, StampStore]) -> dict[str, str]:
    return {g: s for s, st in stores.items() for g in st.catalog["galaxy_id"]}


def test_split_stage_is_complete_disjoint_and_carries_images(tmp_path):
    ids = IDS[:120]
    _id_store(tmp_path / "src", ids)
    stores, metrics = split.run(SplitConfig(), StoreConfig(chunk_size=16), tmp_path / "src",
                                tmp_path / "out", show_progress=False)  # fmt: skip
    assert set(stores) == {"train", "val", "test"}
    listed = [g for st in stores.values() for g in st.catalog["galaxy_id"]]
    assert sorted(listed) == sorted(ids)  # complete, and no id twice
    expected = dict(zip(ids, split.assign(ids, SplitConfig()), strict=True))
    assert _split_of(stores) == expected
    for name, st in stores.items():
        assert (st.catalog["split"] == name).all()
        np.testing.assert_array_equal(st.array("image")[:, 0, 0], st.catalog["n"].to_numpy())
        assert metrics[name] == len(st)
    assert metrics["n"] == len(ids)


def test_split_stage_adding_galaxies_never_moves_existing_ones(tmp_path):
    small, grown = IDS[:150], IDS[150:260] + IDS[:150]  # new galaxies come first, even
    _id_store(tmp_path / "small", small)
    _id_store(tmp_path / "grown", grown)
    a, _ = split.run(SplitConfig(), StoreConfig(chunk_size=16), tmp_path / "small",
                     tmp_path / "a", show_progress=False)  # fmt: skip
    b, _ = split.run(SplitConfig(), StoreConfig(chunk_size=16), tmp_path / "grown",
                     tmp_path / "b", show_progress=False)  # fmt: skip
    before, after = _split_of(a), _split_of(b)
    assert {g: after[g] for g in small} == before


def test_split_of_an_empty_store_names_the_stage(tmp_path):
    StoreWriter(tmp_path / "empty", stamp_shape=(4, 4), chunk_size=4).close()
    with pytest.raises(CasnetInputError, match=r"^split: .*empty"):
        split.run(SplitConfig(), STORE, tmp_path / "empty", tmp_path / "out", show_progress=False)


# -- augment -----------------------------------------------------------------------------------

AUG = AugmentConfig(bins=4, half_fraction=0.6, rare_fraction=0.25)


def _labels_flat_a() -> tuple[pd.DataFrame, np.ndarray]:
    """C in 4 equal-width bins with counts [40, 40, 16, 5]; A flat (counts [26, 25, 25, 25]).

    C median count = 28: half rule <= 0.6 * 28 = 16.8 (bin 2: 16 -> 1 copy), rare rule
    <= 0.25 * 28 = 7 (bin 3: 5 -> 5 copies), bins 0-1 (40 > 16.8): none. A: median 25, every
    bin >= 25 > 15: no copies from A.
    """
    c_bin = np.repeat([0, 1, 2, 3], [40, 40, 16, 5])
    a_bin = np.arange(len(c_bin)) % 4
    labels = pd.DataFrame({
        # bin centres of [0, 4) (C) and [0, 0.4) (A): min and max are centres of the end bins,
        # so the equal-width bins over [min, max] put each value in its own bin
        "label_concentration": c_bin + 0.5,
        "label_asymmetry": (a_bin + 0.5) / 10,
    })  # fmt: skip
    expected = np.array([0, 0, 1, 5])[c_bin]
    return labels, expected


def _labels_two_way() -> tuple[pd.DataFrame, np.ndarray]:
    """C counts [40, 40, 16, 5] and A counts [5, 16, 40, 40]: copies per bin C [0, 0, 1, 5],
    A [5, 1, 0, 0] (both medians 28, as in _labels_flat_a); a galaxy takes the larger."""
    groups = [  # (C bin, A bin, galaxies, expected copies = max(C rule, A rule))
        (3, 3, 5, 5),  # rare in C
        (2, 0, 5, 5),  # half in C, rare in A: A wins
        (2, 2, 11, 1),  # half in C
        (1, 1, 16, 1),  # half in A
        (1, 2, 24, 0),
        (0, 2, 5, 0),
        (0, 3, 35, 0),
    ]
    c_bin = np.concatenate([[c] * k for c, _, k, _ in groups])
    a_bin = np.concatenate([[a] * k for _, a, k, _ in groups])
    expected = np.concatenate([[e] * k for _, _, k, e in groups])
    assert np.bincount(c_bin).tolist() == [40, 40, 16, 5]
    assert np.bincount(a_bin).tolist() == [5, 16, 40, 40]
    labels = pd.DataFrame({"label_concentration": 2.0 + c_bin * 0.5,
                           "label_asymmetry": 0.05 + a_bin * 0.1})  # fmt: skip
    return labels, expected


def test_augment_counts_follow_the_rare_bin_rule():
    labels, expected = _labels_flat_a()
    np.testing.assert_array_equal(augment.augment_counts(labels, AUG), expected)


def test_augment_counts_take_the_larger_of_c_and_a():
    labels, expected = _labels_two_way()
    got = augment.augment_counts(labels, AUG)
    np.testing.assert_array_equal(got, expected)
    assert int(got.sum()) == 77  # 10 x 5 + 27 x 1


def test_augment_count_thresholds_are_inclusive():
    # bins=5 with counts [56, 40, 40, 24, 10]: median 40; 24 = 0.6 x 40 exactly (-> 1 copy),
    # 10 = 0.25 x 40 exactly (-> 5 copies); "<=" in both rules
    c_bin = np.repeat([0, 1, 2, 3, 4], [56, 40, 40, 24, 10])
    labels = pd.DataFrame({"label_concentration": c_bin + 0.5,
                           "label_asymmetry": (np.arange(len(c_bin)) % 5) * 0.1})  # fmt: skip
    cfg = AugmentConfig(bins=5, half_fraction=0.6, rare_fraction=0.25)
    got = augment.augment_counts(labels, cfg)
    np.testing.assert_array_equal(got, np.array([0, 0, 0, 1, 5])[c_bin])


def test_augment_counts_on_a_flat_distribution_add_nothing():
    labels = pd.DataFrame({"label_concentration": np.arange(40) % 4 + 2.5,
                           "label_asymmetry": (np.arange(40) // 10) * 0.1})  # fmt: skip
    assert augment.augment_counts(labels, AUG).tolist() == [0] * 40


@pytest.fixture(scope="module")
def augmented(tmp_path_factory):
    """The two-way label set as a training store (6x6 asymmetric stamps) and its augmentation."""
    root = tmp_path_factory.mktemp("augment")
    labels, expected = _labels_two_way()
    n = len(labels)
    rng = np.random.default_rng(11)
    images = rng.normal(0.0, 1.0, (n, 6, 6)).astype(np.float32)  # no symmetry: transforms show
    order = rng.permutation(n)  # rare and common galaxies mixed over the chunks
    rows = (
        labels.iloc[order]
        .reset_index(drop=True)
        .assign(galaxy_id=[f"g{i:03d}" for i in range(n)], split="train")
    )
    src = _write_store(root / "train", rows.to_dict("records"), images, chunk_size=16)
    out, metrics = augment.run(AUG, StoreConfig(chunk_size=16), root / "train", root / "aug",
                               show_progress=False)  # fmt: skip
    return src, out, metrics, expected[order]


def test_augment_stage_adds_the_copies(augmented):
    src, out, metrics, extra = augmented
    assert len(out) == len(src) + int(extra.sum()) == 101 + 77
    assert metrics == {
        "n_before": 101,
        "n_after": 178,
        "galaxies_with_one_copy": 27,
        "galaxies_with_five_copies": 10,
    }
    cat = out.catalog
    per_source = cat[cat["transform"] != "identity"].groupby("source_id").size()
    expected = pd.Series(extra, index=src.catalog["galaxy_id"])
    assert per_source.reindex(expected.index, fill_value=0).tolist() == expected.tolist()
    sets = cat.groupby("source_id")["transform"].apply(frozenset).to_dict()
    for gid, k in expected.items():
        want = {0: {"identity"}, 1: {"identity", "rot90"},
                5: {"identity", "rot90", "rot180", "rot270", "flipud", "fliplr"}}[k]  # fmt: skip
        assert sets[gid] == want, gid


def test_augment_copies_keep_labels_and_name_their_source(augmented):
    src, out, _, _ = augmented
    cat = out.catalog
    originals = src.catalog.set_index("galaxy_id")
    ident = cat[cat["transform"] == "identity"]
    assert (ident["galaxy_id"] == ident["source_id"]).all()
    copies = cat[cat["transform"] != "identity"]
    assert (copies["galaxy_id"] == copies["source_id"] + "~" + copies["transform"]).all()
    assert cat["galaxy_id"].is_unique
    for col in ("label_concentration", "label_asymmetry", "split"):
        np.testing.assert_array_equal(
            copies[col].to_numpy(), originals.loc[copies["source_id"], col].to_numpy()
        )


def test_augment_copy_images_are_exact_rotations_and_mirrors(augmented):
    src, out, _, _ = augmented
    src_images = src.array("image")[:]
    src_row = {g: i for i, g in enumerate(src.catalog["galaxy_id"])}
    out_images = out.array("image")[:]
    transforms = {
        "identity": lambda a: a,
        "rot90": lambda a: np.rot90(a, 1),
        "rot180": lambda a: np.rot90(a, 2),
        "rot270": lambda a: np.rot90(a, 3),
        "flipud": np.flipud,
        "fliplr": np.fliplr,
    }
    for k, (sid, name) in enumerate(zip(out.catalog["source_id"], out.catalog["transform"],
                                        strict=True)):  # fmt: skip
        want = transforms[name](src_images[src_row[sid]])
        np.testing.assert_array_equal(out_images[k], want, err_msg=f"{sid} {name}")


def test_augment_of_an_empty_store_names_the_stage(tmp_path):
    StoreWriter(tmp_path / "empty", stamp_shape=(4, 4), chunk_size=4).close()
    with pytest.raises(CasnetInputError, match=r"^augment: .*empty"):
        augment.run(AUG, STORE, tmp_path / "empty", tmp_path / "out", show_progress=False)


def test_augment_without_labels_names_the_stage(tmp_path):
    rows = [{"galaxy_id": "a", "label_concentration": 3.0, "label_asymmetry": np.nan}]
    _write_store(tmp_path / "train", rows, np.ones((1, 4, 4), np.float32))
    with pytest.raises(CasnetInputError, match=r"^augment: .*without C/A labels"):
        augment.run(AUG, STORE, tmp_path / "train", tmp_path / "out", show_progress=False)


def test_augment_of_a_store_without_label_columns_names_the_stage(tmp_path):
    _write_store(tmp_path / "train", [{"galaxy_id": "a"}], np.ones((1, 4, 4), np.float32))
    with pytest.raises(CasnetInputError, match=r"^augment: "):
        augment.run(AUG, STORE, tmp_path / "train", tmp_path / "out", show_progress=False)


def test_cli_augment_writes_only_its_output(tmp_path):
    # a split folder: augment reads train and must leave train, val and test as they were
    labels, _ = _labels_two_way()
    n = len(labels)
    images = np.random.default_rng(5).normal(0, 1, (n, 6, 6)).astype(np.float32)
    rows = labels.assign(galaxy_id=[f"g{i:03d}" for i in range(n)]).to_dict("records")
    for name in ("train", "val", "test"):
        _write_store(tmp_path / "split" / name, rows, images, chunk_size=16)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"augment": {"bins": 4}, "store": {"chunk_size": 16}}))
    before = _files(tmp_path)
    res = runner.invoke(app, ["data", "augment", "--in", str(tmp_path / "split" / "train"),
                              "--out", str(tmp_path / "aug"), "--metrics",
                              str(tmp_path / "m" / "augment.json"), "--params", str(params),
                              "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    after = _files(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing else changed
    new = {k.split("/")[0] for k in set(after) - set(before)}
    assert new == {"aug", "m"}
    assert not any(p.name.endswith((".partial", ".old")) for p in tmp_path.iterdir())
    assert len(StampStore(tmp_path / "aug")) == n + 77
    assert json.loads((tmp_path / "m" / "augment.json").read_text())["n_after"] == n + 77


def test_select_honours_the_cleaning_flags():
    """A galaxy galclean flagged BLENDED (a touching neighbour's light left) is cut by default and
    kept when the flag is not excluded; the reason names the cleaning flag."""
    import pandas as pd

    from casnet.core.flags import CleanFlag, Flag
    from casnet.data.settings import SelectConfig
    from casnet.pipeline.select import cut_reasons

    table = pd.DataFrame(
        {"flag": [0, 0, int(Flag.STAMP_FILLED)], "snr_p": [20.0, 20.0, 20.0],
         "r_petro": [8.0, 8.0, 8.0],
         "clean_flag": [0, int(CleanFlag.BLENDED | CleanFlag.NO_SKY), 0]}
    )  # fmt: skip
    reasons = cut_reasons(table, SelectConfig())
    assert reasons.tolist() == ["", "clean BLENDED", "flag STAMP_FILLED"]
    kept = cut_reasons(table, SelectConfig(exclude_clean_flags=(), exclude_flags=()))
    assert kept.tolist() == ["", "", ""]
