"""One galaxy's measurement drawn (``casnet show`` on FITS files; issue 31), as statmorph's
``make_figure`` draws its own: what was measured, where, and what it left out.

Three panels: the stamp (asinh stretch) with the target's segment outlined, the neighbours'
masked pixels shaded, the light-weighted centroid (the apertures' centre) and the asymmetry's
rotation centre, the ellipses of r20, r80, R_p and the measurement aperture (``aperture_rp`` x
R_p, from which C is measured) and of the asymmetry aperture; the residual ``I - I180`` about
the rotation centre inside the asymmetry aperture (what A sums, before its sky term); and the
values: C, A with their errors, SNR_p, R_p, q and the flags with their reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casnet.morphology.measurement import Measurement, detect_target, measure
from casnet.morphology.rotate import rotate180
from casnet.morphology.segmentation import Segmentation
from casnet.morphology.settings import MorphologyConfig
from casnet.morphology.sky import first_guess_sky

__all__ = ["Diagnosis", "diagnose", "diagnostic_figure"]


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` found: the measurement, the segmentation it started from (None where
    the image could not be segmented) and the residual ``I - I180`` about the rotation centre
    (NaN outside the asymmetry aperture; None without a centre)."""

    measurement: Measurement
    segmentation: Segmentation | None
    residual: np.ndarray | None


def diagnose(image, *, config: MorphologyConfig | None = None) -> Diagnosis:
    """Measure ``image`` (:func:`casnet.morphology.measure`) and keep what the figure draws.

    The segmentation is the measurement's own detection step (:func:`detect_target` on the
    first-guess sky), so the outlines drawn are the segments the measurement used.
    """
    cfg = config or MorphologyConfig()
    arr = np.asarray(image, dtype=np.float64)
    m = measure(arr, config=cfg)
    seg = None
    if arr.ndim == 2 and np.isfinite(arr).any():
        invalid = ~np.isfinite(arr)
        sky = first_guess_sky(arr, mask=invalid, clip_sigma=cfg.sky_clip_sigma,
                              maxiters=cfg.sky_clip_iters)  # fmt: skip
        if sky.sigma > 0 and np.isfinite(sky.mean):
            seg = detect_target(np.where(invalid, sky.mean, arr), sky, cfg, invalid=invalid)
    residual = None
    if np.isfinite(m.x_centre) and np.isfinite(m.r_petro) and m.r_petro > 0:
        img = np.where(np.isfinite(arr), arr - m.sky_mean, np.nan)
        centre = (m.x_centre, m.y_centre)
        rotated = rotate180(np.nan_to_num(img), centre, order=cfg.interpolation_order)
        yy, xx = np.indices(arr.shape)
        inside = _elliptical(xx - m.x_centre, yy - m.y_centre, m.q, m.pa) <= (
            cfg.asymmetry_aperture_rp * m.r_petro
        )
        residual = np.where(inside & np.isfinite(img), img - rotated, np.nan)
    return Diagnosis(m, seg, residual)


def _elliptical(dx, dy, q: float, pa: float):
    q = q if np.isfinite(q) and q > 0 else 1.0
    pa = pa if np.isfinite(pa) else 0.0
    u = dx * math.cos(pa) + dy * math.sin(pa)
    v = -dx * math.sin(pa) + dy * math.cos(pa)
    return np.sqrt(u**2 + (v / q) ** 2)


def _ellipse(ax, x, y, a, q, pa, **style) -> None:
    from matplotlib.patches import Ellipse

    if not (np.isfinite(a) and a > 0):
        return
    q = q if np.isfinite(q) and q > 0 else 1.0
    pa = pa if np.isfinite(pa) else 0.0
    ax.add_patch(Ellipse((x, y), 2 * a, 2 * a * q, angle=math.degrees(pa), fill=False, **style))


def _value(x: float, err: float, digits: int = 3) -> str:
    if not np.isfinite(x):
        return "-"
    return f"{x:.{digits}f}" + (f" ± {err:.{digits}f}" if np.isfinite(err) else "")


def diagnostic_figure(image, out: str | Path, *, title: str = "",
                      config: MorphologyConfig | None = None) -> Path:  # fmt: skip
    """Draw :func:`diagnose`'s panels for ``image`` into the PNG ``out``; returns its path."""
    from matplotlib.figure import Figure

    from casnet.core.figures import asinh_stretch, save_figure

    cfg = config or MorphologyConfig()
    arr = np.asarray(image, dtype=np.float64)
    d = diagnose(arr, config=cfg)
    m = d.measurement
    fig = Figure(figsize=(14.0, 4.3))
    ax_img, ax_res, ax_txt = fig.subplots(1, 3, width_ratios=[1.0, 1.0, 0.8])
    shown = arr if arr.ndim == 2 else np.zeros((1, 1))
    ax_img.imshow(asinh_stretch(shown), origin="lower", cmap="gray_r")
    if d.segmentation is not None and d.segmentation.target:
        target = d.segmentation.target_mask
        others = (d.segmentation.labels > 0) & ~target
        if others.any():
            from matplotlib.colors import ListedColormap

            ax_img.imshow(np.ma.masked_where(~others, others), origin="lower",
                          cmap=ListedColormap(["tab:orange"]), alpha=0.6,
                          interpolation="nearest")  # fmt: skip
        ax_img.contour(target.astype(float), levels=[0.5], colors="tab:blue", linewidths=1.0)
    cx, cy = m.x_centroid, m.y_centroid
    for a, colour, label in ((m.r20, "tab:green", "r20"), (m.r80, "tab:olive", "r80"),
                             (m.r_petro, "tab:orange", "R_p"),
                             (cfg.aperture_rp * m.r_petro, "tab:red",
                              f"{cfg.aperture_rp:g} R_p (C)")):  # fmt: skip
        _ellipse(ax_img, cx, cy, a, m.q, m.pa, edgecolor=colour, lw=1.0, label=label)
    _ellipse(ax_img, m.x_centre, m.y_centre, cfg.asymmetry_aperture_rp * m.r_petro, m.q, m.pa,
             edgecolor="tab:purple", lw=1.0, ls="--",
             label=f"{cfg.asymmetry_aperture_rp:g} R_p (A)")  # fmt: skip
    if np.isfinite(cx):
        ax_img.plot([cx], [cy], "+", color="tab:red", ms=10, label="centroid")
    if np.isfinite(m.x_centre):
        ax_img.plot([m.x_centre], [m.y_centre], "x", color="tab:purple", ms=7,
                    label="rotation centre")  # fmt: skip
    ax_img.set_xlim(-0.5, shown.shape[1] - 0.5)
    ax_img.set_ylim(-0.5, shown.shape[0] - 0.5)
    ax_img.set_title("stamp: target segment (blue), masked neighbours (orange)", fontsize=9)
    ax_img.set_xlabel("x (px)")
    ax_img.set_ylabel("y (px)")
    ax_img.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    if d.residual is not None and np.isfinite(d.residual).any():
        lim = float(np.nanpercentile(np.abs(d.residual), 99)) or 1.0
        ax_res.imshow(d.residual, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax_res.set_title("I - I180 inside the asymmetry aperture", fontsize=9)
        ax_res.set_xlabel("x (px)")
        ys, xs = np.nonzero(np.isfinite(d.residual))  # zoomed on the aperture
        ax_res.set_xlim(xs.min() - 3.5, xs.max() + 3.5)
        ax_res.set_ylim(ys.min() - 3.5, ys.max() + 3.5)
    else:
        ax_res.text(0.5, 0.5, "no residual: no rotation centre", ha="center", va="center")
        ax_res.set_axis_off()
    ax_txt.set_axis_off()
    lines = [
        title,
        "",
        f"C = {_value(m.concentration, m.concentration_err, 2)}",
        f"A = {_value(m.asymmetry, m.asymmetry_err)}",
        f"SNR_p = {m.snr_p:.1f}" if np.isfinite(m.snr_p) else "SNR_p = -",
        f"R_p = {m.r_petro:.1f} px, q = {m.q:.2f}" if np.isfinite(m.r_petro) else "R_p = -",
        f"sky = {m.sky_mean:.3g} ± {m.sky_sigma:.3g} (per pixel)",
        f"flag = {int(m.flag)}",
    ]
    reasons = [r.strip() for r in (m.flag_reasons or "").split(";") if r.strip()]
    lines += [f"  {r[:70]}" for r in reasons[:6]]
    ax_txt.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=9, family="monospace",
                transform=ax_txt.transAxes)  # fmt: skip
    return save_figure(fig, out)
