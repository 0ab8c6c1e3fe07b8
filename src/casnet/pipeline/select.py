"""Stage ``select``: the training-set cuts, then crop 60x60 + normalise (Tohill+2021 Sec. 3.1).

Keeps galaxies with SNR_p > ``snr_min``, R_p > ``r_petro_min`` px, none of the excluded
measurement flags and none of the excluded cleaning flags (``clean_flag``: galclean's BLENDED says
light of another source was knowingly left in the stamp, so its labels are not the galaxy's);
UNPHYSICAL (values no galaxy can give, :mod:`casnet.morphology.plausibility`) removes a galaxy
whatever ``exclude_flags`` says: such values are never a label;
every removed galaxy is listed in ``rejects.parquet`` with the first cut it failed. Kept stamps
(and truth images) go through :func:`casnet.data.preprocess.crop_normalise`, the function training,
serving and evaluation use too.

The training targets are ``label_concentration`` / ``label_asymmetry``: an external label
catalogue's values when the store carries them (ingest ``--labels``), else our measurement
(``label_source`` says which); our measurement is kept alongside under its own names.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from casnet.core.errors import CasnetInputError
from casnet.core.flags import CleanFlag
from casnet.core.progress import progress_bar
from casnet.core.quantities import SCHEMA
from casnet.data.io.store import Rechunker, StampStore, StoreWriter
from casnet.data.preprocess import NetworkInput
from casnet.data.settings import SelectConfig, StoreConfig
from casnet.morphology import Flag

__all__ = ["cut_reasons", "run", "write_figures"]


def cut_reasons(table: pd.DataFrame, cfg: SelectConfig) -> pd.Series:
    """The first cut each row fails (``''`` when kept), in the order cleaning flags, measurement
    flags, SNR_p, R_p."""
    # not a choice of the configuration: an impossible value must never become a training label
    excluded = int(Flag.UNPHYSICAL)
    for name in cfg.exclude_flags:
        excluded |= int(Flag[name])
    reasons = pd.Series("", index=table.index, dtype=object)
    missing = table["flag"].isna()
    reasons[missing] = "not measured"
    if "clean_flag" in table and cfg.exclude_clean_flags:
        bad_clean = 0
        for name in cfg.exclude_clean_flags:
            bad_clean |= int(CleanFlag[name])
        cflags = table["clean_flag"].fillna(0).astype(int)
        for idx in table.index[((cflags & bad_clean) > 0) & ~missing]:
            names = [f.name for f in CleanFlag if f and f & bad_clean & int(cflags[idx])]
            reasons[idx] = "clean " + "|".join(names)
    flags = table["flag"].fillna(0).astype(int)
    hit = (flags & excluded) > 0
    for idx in table.index[hit & ~missing & (reasons == "")]:
        names = [f.name for f in Flag if f and f & excluded & int(flags[idx])]
        reasons[idx] = "flag " + "|".join(names)
    todo = reasons == ""
    low_snr = todo & ~(table["snr_p"] > cfg.snr_min)
    reasons[low_snr] = [f"snr_p {v:.3g} <= {cfg.snr_min:g}" for v in table.loc[low_snr, "snr_p"]]
    todo = reasons == ""
    small = todo & ~(table["r_petro"] > cfg.r_petro_min)
    reasons[small] = [
        f"r_petro {v:.3g} <= {cfg.r_petro_min:g} px" for v in table.loc[small, "r_petro"]
    ]
    return reasons


def _labels(rows: pd.DataFrame) -> pd.DataFrame:
    """The training labels: a galaxy's external labels where it has one for every quantity,
    else casnet's own measurement (``label_source`` says which)."""
    labels = [t.column("label") for t in SCHEMA]
    have = pd.Series(all(c in rows for c in labels), index=rows.index)
    for c in labels:
        if c in rows:
            have &= rows[c].notna()
    out = rows.copy()
    for t in SCHEMA:
        c = t.column("label")
        out[c] = np.where(have, rows.get(c), rows[t.column("store")])
    out["label_source"] = np.where(have, "external", "casnet")
    return out


def run(
    cfg: SelectConfig,
    store: StoreConfig,
    source: str | Path,
    measurements: str | Path,
    out: str | Path,
    *,
    show_progress: bool = True,
) -> tuple[StampStore, dict[str, Any]]:
    """Apply the cuts to ``source`` (measured in ``measurements``) and write ``out``.

    Returns the store and the stage metrics (counts in, out and removed per reason).
    """
    src = StampStore(source)
    meas_path = Path(measurements)
    if not meas_path.exists():
        raise CasnetInputError(f"select: measurements {meas_path} not found (run 'measure' first)")
    meas = pd.read_parquet(meas_path).set_index("galaxy_id")
    if len(src) == 0:
        raise CasnetInputError(f"select: the input store {source} is empty")
    net_input = NetworkInput(cfg.crop_size)
    size = net_input.size
    if min(src.stamp_shape) < size:
        raise CasnetInputError(
            f"select: stamps of {src.stamp_shape} px are smaller than crop_size={size}"
        )
    names = src.array_names
    writer = StoreWriter(
        out, stamp_shape=(size, size), arrays=names, chunk_size=store.chunk_size,
        meta={"stage": "select", "source": str(source), "params": cfg.model_dump(mode="json")},
        resume=False, inputs=[source, measurements],
    )  # fmt: skip
    buffer = Rechunker(writer)
    removed: Counter[str] = Counter()
    with progress_bar(len(src), desc="select", enabled=show_progress) as bar:
        for chunk in src.iter_chunks(names):
            cat = chunk.catalog
            # our measurement keeps its names; a clashing input column (the simulator's drawn
            # q, sky_sigma) gets the suffix _input
            joined = cat.merge(meas, left_on="galaxy_id", right_index=True, how="left",
                               suffixes=("_input", ""))  # fmt: skip
            if "flag" not in joined:
                joined["flag"] = np.nan
            reasons = cut_reasons(joined, cfg)
            keep = (reasons == "").to_numpy()
            crops, ok = {}, None
            for n in names:
                crops[n], ok_n = net_input.prepare(chunk.arrays[n][keep])
                ok = ok_n if n == "image" else ok
            kept = _labels(joined[keep].reset_index(drop=True))
            if not ok.all():  # a crop with no positive pixel cannot be normalised
                reasons.loc[reasons.index[keep][~ok]] = "empty crop (no positive pixel)"
                kept = kept[ok].reset_index(drop=True)
                crops = {n: a[ok] for n, a in crops.items()}
            rejects = [
                {"source": str(source), "galaxy_id": gid, "reason": why}
                for gid, why in zip(cat["galaxy_id"], reasons, strict=True)
                if why
            ]
            removed.update(r["reason"].split(" ")[0] if r["reason"].startswith(("snr", "r_p"))
                           else r["reason"] for r in rejects)  # fmt: skip
            buffer.add(kept, crops, rejects)
            bar.update(len(chunk))
    result = buffer.close()
    metrics = {
        "n_in": len(src),
        "n_out": len(result),
        "removed": dict(sorted(removed.items())),
        "fraction_kept": len(result) / len(src),
        "labels_external": int((result.catalog.get("label_source") == "external").sum())
        if len(result) else 0,
    }  # fmt: skip
    return result, metrics


def write_figures(source: str | Path, selected: StampStore, plots: str | Path) -> list[Path]:
    """The stage's figures (DVC plots) in ``plots``: H magnitude against size with the selected
    galaxies highlighted (``mag_size.png``, the paper's Fig. 1; simulated sources only) and the 16
    most concentrated and most asymmetric selected stamps (``grid_high_c.png``,
    ``grid_high_a.png``, like Fig. 3)."""
    from casnet.core.figures import mag_size, stamp_grid

    plots = Path(plots)
    written = []
    cat = StampStore(source).catalog
    if {"mag", "r_half_px"} <= set(cat.columns):
        chosen = cat["galaxy_id"].isin(selected.catalog["galaxy_id"]).to_numpy()
        written.append(mag_size(cat["mag"].to_numpy(), cat["r_half_px"].to_numpy(), chosen,
                                plots / "mag_size.png"))  # fmt: skip
    sel = selected.catalog
    for t in SCHEMA:  # grid_high_c.png, grid_high_a.png
        if len(sel) == 0:
            break
        top = np.argsort(-sel[t.column("label")].to_numpy())[:16]
        titles = [
            f"{sel.galaxy_id[i]}\n"
            + " ".join(f"{q.symbol}={sel[q.column('label')][i]:.2f}" for q in SCHEMA)
            for i in top
        ]
        images = [selected.array("image")[int(i)] for i in top]
        written.append(stamp_grid(images, titles, plots / f"grid_high_{t.symbol.lower()}.png"))
    return written
