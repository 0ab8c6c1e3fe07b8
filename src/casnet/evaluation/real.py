"""The real-morphology suite (issue 29): real COSMOS HST galaxies seen as CANDELS F160W stamps.

Every number of the other suites comes from casnet's own simulator. This suite scores the network
on galaxies it has never seen the like of: the 88 COSMOS HST ACS F814W galaxies vendored in
``casnet/data/real_galaxies`` (clumpy and lopsided disks, irregulars, spheroids, pairs),
re-rendered by :func:`casnet.data.real.render_real` as the pipeline's stamps (F160W PSF,
0.06"/px, several views per galaxy: rotations and magnitudes), each with a noise-free twin.
F814W morphology stands in for F160W (no morphological K-correction). No shipped network is
trained on these galaxies.

Three values per stamp and target:

- ``net_*``: the network on the observed stamp (through the :class:`Predictor`, the served
  model's path too: the model crops, cleans and normalises the raw stamp itself);
- ``conv_*``: the conventional measurement (:func:`casnet.morphology.measure`) of the observed
  stamp, what ``casnet measure`` gives;
- ``ref_*``: the *reference*, the conventional measurement of the noise-free stamp:
  :func:`casnet.morphology.measurement.measure_truth`, the function the measure stage uses for
  the simulator's truth columns (the target is every pixel of the smoothed noise-free image above
  the observed stamp's detection threshold, ``detect_nsigma`` times its *measured* noise
  ``noise_sigma``; no deblending or masks; sky 0; centred on the light-weighted centroid, as a
  real galaxy has no known centre, the asymmetry minimisation moving from there), with one
  addition: the noise-free stamp of a real galaxy is not noise-free. It carries the cutout's own
  HST noise (``own_noise_sigma`` per pixel, correlated by the F160W PSF), and these COSMOS
  cutouts are faint: over statmorph's galaxy pixels their own S/N per pixel
  (``ref_sn_per_pixel``) is 1-20, median ~4. ``measure_truth`` takes its image as noiseless (no
  asymmetry background term), so that noise went into A whole: on the default render the
  reference A was 0.48 on average, the same at every magnitude of a galaxy (the own noise scales
  with its flux). The reference A is therefore corrected by :func:`own_noise_term`, the
  conventional measurement's own rule (``N b`` with the sky term withheld from signal pixels,
  :func:`casnet.morphology.asymmetry.signal_pixels`) with the own noise's known per-pixel
  sigma inside the cutout's footprint (0 beyond it) in place of sky cells. Checked on simulated
  galaxies with PSF-correlated noise added inside a 24 px footprint (16 galaxies x 3 draws; A
  minus the clean truth's; own S/N = mean light inside R_p over the own sigma): at own S/N 8 the
  corrected A is off by -0.007 +- 0.033 where the uncorrected is +0.083 +- 0.068; at 15,
  -0.002 +- 0.023 against +0.042 +- 0.036; at 3-5 by +0.02-0.04 +- 0.09-0.13 (uncorrected
  +0.16-0.27): below ~8 the reference is itself
  a noisy measurement, which ``ref_sn_per_pixel`` says per stamp (the headline cut,
  ``sn_per_pixel >= 2.5`` with the own noise at most 10% of the variance, keeps galaxies at own
  S/N >= ~8). ``measure`` on the noise-free stamp instead would take its sky from that
  footprint-bounded own noise (zero beyond the cutout): a detection threshold far deeper than
  any observed stamp, and sky cells of mostly empty pixels.

Stamps are scored only when both measurements are values (neither has a bit of
:data:`casnet.core.flags.BAD_VALUES`: fatal or UNPHYSICAL, the reference's A checked again
after the correction), the reference's ``aperture_rp`` x
R_p aperture fits the network's crop (half of ``CROP_SIZE``, as in the redshift suite), and the
network answered; the others are counted by reason (the first that applies, in the order of
:data:`EXCLUSIONS`) and kept in the per-stamp table with the reason.

Scores per target (:func:`real_scores`), overall, for ``sn_per_pixel >= 2.5`` (the issue's
headline cut; :data:`HEADLINE_SN`), per bin of S/N per pixel (:data:`SN_EDGES`) and of the
conventional SNR_p (:data:`SNR_EDGES`), of the reference's own S/N per pixel
(:data:`REF_SN_EDGES`), and per visual kind: Pearson r, the least-squares slope
of the first on the second (``slope``) and the reverse slope (``reverse_slope``, second on first)
of network vs conventional, network vs reference and conventional vs reference; RMSE and bias of
network and conventional against the reference and their RMSE ratio. Against a noisy reference
the best predictor has a forward slope below 1; a calibrated conditional mean has reverse slope
1 (design guide, section 8, "Regression to the mean").

Knowing when not to trust the network (issue 29 item 3): with the model's out-of-distribution
fit (:mod:`casnet.networks.ood`; threshold chosen on simulated galaxies, 1% of which exceed it)
every view gets ``ood_score`` and ``ood_flagged`` (above 1, what ``casnet predict`` flags
OUT_OF_DISTRIBUTION). :func:`ood_by_group` gives the share of views flagged, overall, per S/N
bin and per visual kind, and whether the flagged views are the ones the network gets wrong: the
RMSE of network and conventional against the reference over flagged and unflagged views
(metrics ``ood_*``, table ``real_ood``). A model without a fit has NaN scores and no such
table.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.figures import save_figure, stamp_grid
from casnet.core.flags import BAD_VALUES, Flag
from casnet.core.layout import ERR, TARGETS
from casnet.core.quantities import symbol
from casnet.core.scores import pearson
from casnet.data.preprocess import CROP_SIZE
from casnet.data.real import cutout_footprint
from casnet.data.settings import RealSuiteConfig, SimulateConfig
from casnet.evaluation.predictor import Predictor
from casnet.evaluation.result import SuiteResult
from casnet.morphology import Measurement, measure
from casnet.morphology.asymmetry import asymmetry_terms, signal_pixels, smooth_signal
from casnet.morphology.measurement import measure_truth
from casnet.morphology.plausibility import unphysical
from casnet.morphology.rotate import rotate180
from casnet.morphology.settings import MorphologyConfig
from casnet.morphology.shape import elliptical_radius
from casnet.morphology.uncertainty import NoiseCorrelation

__all__ = [
    "EXCLUSIONS",
    "HEADLINE",
    "HEADLINE_SN",
    "PAIRS",
    "REF_SN_EDGES",
    "SNR_EDGES",
    "SN_EDGES",
    "agreement",
    "ood_by_group",
    "own_noise_term",
    "real_scores",
    "real_suite",
    "reference",
    "scores_by_group",
]

#: the issue's headline cut: stamps with S/N per pixel at least this (statmorph's docs distrust
#: S/N per pixel < 2.5; design guide section 8)
HEADLINE_SN = 2.5
#: the name of the headline selection in the tables and the metrics (``real_*_sn2p5_*``)
HEADLINE = "sn_per_pixel >= 2.5"
#: bins of the stamps' S/N per pixel (``sn_per_pixel`` of the render)
SN_EDGES = (0.0, 1.0, 2.5, 5.0, 10.0, np.inf)
#: bins of the conventional SNR_p of the observed stamp (Sec. 3.1; the test suite's, from 0)
SNR_EDGES = (0.0, 2.0, 3.0, 5.0, 10.0, 20.0, np.inf)
#: bins of the reference's own S/N per pixel (the noise-free stamp's own noise alone): below ~8
#: the reference is itself a noisy measurement (the module docstring)
REF_SN_EDGES = (0.0, 4.0, 8.0, np.inf)
#: the compared pairs: name -> (first, second); ``slope`` is first on second
PAIRS = {"net_conv": ("net", "conv"), "net_ref": ("net", "ref"), "conv_ref": ("conv", "ref")}
#: why a stamp is not scored, in the order the reasons are tested (one reason per stamp)
EXCLUSIONS = {
    "reference_flagged": "the reference measurement has a BAD_VALUES flag (fatal or UNPHYSICAL)",
    "too_large": "the reference's aperture does not fit the network's crop",
    "conventional_flagged": "the conventional measurement has a BAD_VALUES flag",
    "network_failed": "the network gave no value",
}
#: outliers drawn per target in the outlier figure (one view per galaxy, the worst)
N_OUTLIERS = 8


def _galaxy(table: pd.DataFrame) -> pd.Series:
    """Which galaxy each row (a view) is of: ``cosmos_ident``, else ``galaxy_id``."""
    return table["cosmos_ident"] if "cosmos_ident" in table else table["galaxy_id"]


def agreement(first, second) -> dict[str, float]:
    """How ``first`` follows ``second``: Pearson r, the least-squares slope of ``first`` on
    ``second`` (``cov / var(second)``) and the reverse slope, ``second`` on ``first``
    (``cov / var(first)``), over the pairs where both are finite; ``n`` those pairs.

    Slopes and r are NaN with fewer than 3 pairs or a constant sample. ``slope * reverse_slope
    = r**2``.
    """
    x = np.asarray(second, dtype=np.float64)
    y = np.asarray(first, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"n": int(x.size), "r": np.nan, "slope": np.nan, "reverse_slope": np.nan}
    if x.size < 3 or not (np.var(x) > 0 and np.var(y) > 0):
        return out
    cov = float(np.mean((x - x.mean()) * (y - y.mean())))
    out.update(r=pearson(x, y), slope=cov / float(np.var(x)), reverse_slope=cov / float(np.var(y)))
    return out


def real_scores(table: pd.DataFrame, target: str) -> dict[str, float]:
    """The suite's scores of ``target`` over the rows of ``table`` (columns ``net_<target>``,
    ``conv_<target>``, ``ref_<target>``): ``n`` and, per pair of :data:`PAIRS`,
    ``<pair>_r``, ``<pair>_slope`` and ``<pair>_reverse_slope`` (:func:`agreement`); RMSE and
    bias (mean of method - reference) of ``net`` and ``conv`` against ``ref``, and
    ``rmse_ratio`` = RMSE_net / RMSE_conv. Rows where any of the three is NaN are left out."""
    cols = {k: table[f"{k}_{target}"].to_numpy(float) for k in ("net", "conv", "ref")}
    ok = np.logical_and.reduce([np.isfinite(v) for v in cols.values()])
    cols = {k: v[ok] for k, v in cols.items()}
    out: dict[str, float] = {"n": int(ok.sum())}
    for name, (a, b) in PAIRS.items():
        s = agreement(cols[a], cols[b])
        out.update({f"{name}_{k}": s[k] for k in ("r", "slope", "reverse_slope")})
    for m in ("net", "conv"):
        res = cols[m] - cols["ref"]
        out[f"{m}_rmse"] = float(np.sqrt(np.mean(res**2))) if res.size else np.nan
        out[f"{m}_bias"] = float(res.mean()) if res.size else np.nan
    conv = out["conv_rmse"]
    out["rmse_ratio"] = out["net_rmse"] / conv if conv > 0 else np.nan
    return out


def _bins(values: np.ndarray, edges) -> list[tuple[str, np.ndarray]]:
    return [(f"{lo:g}-{hi:g}", (values >= lo) & (values < hi))
            for lo, hi in itertools.pairwise(edges)]  # fmt: skip


def selections(table: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """(group, bin, row mask) of every selection the suite scores: ``all``, the headline
    (``sn_per_pixel >= 2.5``), the ``sn_per_pixel``, ``snr_p`` and (where the table has it)
    ``ref_sn_per_pixel`` bins and each ``kind``."""
    sn = table["sn_per_pixel"].to_numpy(float)
    snr = table["snr_p"].to_numpy(float)
    out = [("all", "all", np.ones(len(table), bool)), ("headline", HEADLINE, sn >= HEADLINE_SN)]
    out += [("sn_per_pixel", b, m) for b, m in _bins(sn, SN_EDGES)]
    out += [("snr_p", b, m) for b, m in _bins(snr, SNR_EDGES)]
    if "ref_sn_per_pixel" in table:
        ref_sn = table["ref_sn_per_pixel"].to_numpy(float)
        out += [("ref_sn_per_pixel", b, m) for b, m in _bins(ref_sn, REF_SN_EDGES)]
    kinds = table["kind"].astype(str).to_numpy()
    out += [("kind", k, kinds == k) for k in sorted(set(kinds))]
    return out


def scores_by_group(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`real_scores` per selection (:func:`selections`) and target: one row each, with
    ``group``, ``bin`` and ``target`` first. ``table``: the scored stamps."""
    rows = []
    for group, name, mask in selections(table):
        for t in TARGETS:
            rows.append({"group": group, "bin": name, "target": t,
                         **real_scores(table[mask], t)})  # fmt: skip
    return pd.DataFrame(rows)


def ood_by_group(table: pd.DataFrame) -> pd.DataFrame:
    """The out-of-distribution flag per selection (:func:`selections`) of ``table`` (columns
    ``ood_score``, ``net_*``, ``conv_*``, ``ref_*``): ``n`` (views with a score),
    ``n_flagged`` and ``flagged_share`` (``ood_score > 1``), ``median_ood_score`` and, per
    target, the RMSE against the reference of the network and of the conventional measurement
    over flagged and unflagged views (``<target>_net_rmse_flagged``, ...; NaN for an empty
    set): flagged views whose network RMSE is far above the unflagged ones', and above the
    conventional's on the same views, are the network's extrapolations the flag is for."""
    rows = []
    score = table["ood_score"].to_numpy(float)
    for group, name, mask in selections(table):
        has = mask & np.isfinite(score)
        flagged = has & (score > 1)
        n = int(has.sum())
        row = {"group": group, "bin": name, "n": n, "n_flagged": int(flagged.sum()),
               "flagged_share": flagged.sum() / n if n else np.nan,
               "median_ood_score": float(np.median(score[has])) if n else np.nan}  # fmt: skip
        for t in TARGETS:
            for which, sel in (("flagged", flagged), ("unflagged", has & ~flagged)):
                s = real_scores(table[sel], t)
                row[f"{t}_net_rmse_{which}"] = s["net_rmse"]
                row[f"{t}_conv_rmse_{which}"] = s["conv_rmse"]
        rows.append(row)
    return pd.DataFrame(rows)


def _ood_scores(predictor: Predictor, images: np.ndarray, preds: pd.DataFrame) -> np.ndarray:
    """Each stamp's ``ood_score``: the model's answer's column where it gives one, else from an
    in-process model's out-of-distribution fit (its features of the same stamps, cleaned as
    scoring cleans them); NaN without a fit (or for a served model that sends none)."""
    from casnet.networks.ood import OOD_SCORE

    if OOD_SCORE in preds:
        return preds[OOD_SCORE].to_numpy(float)
    nan = np.full(len(images), np.nan)
    if predictor.pyfunc is None or not len(images):
        return nan
    model = predictor.pyfunc.unwrap_python_model()
    fit = getattr(model, "ood_fit", None)
    if fit is None or not hasattr(fit, "score"):
        return nan
    return fit.score(model.features(np.asarray(images, np.float32)))


def own_noise_term(truth: np.ndarray, ref: Measurement, variance: np.ndarray,
                   morph: MorphologyConfig) -> float:  # fmt: skip
    """What the noise-free stamp's own noise adds to its raw asymmetry, in units of A.

    At the reference's rotation centre and aperture, the conventional sky term ``N b``
    (:mod:`casnet.morphology.asymmetry`) with ``b`` per pixel from the known own noise,
    ``b = sqrt(2 / pi) tau`` with ``tau^2 = v(p) + v(p180)`` (``variance``: the own noise's
    per-pixel variance, 0 outside the cutout), and withheld as the conventional measurement
    withholds it from signal pixels (:func:`casnet.morphology.asymmetry.signal_pixels`, at
    ``morph.asymmetry_signal_nsigma`` times the smoothed std of white noise, the threshold it
    applies to a white sky: the calibration in the module docstring), divided by ``sum |I|``.
    0 where the reference has no values.
    """
    if not (np.isfinite(ref.asymmetry_raw) and ref.r_petro > 0 and variance.any()):
        return 0.0
    x, y = ref.x_centre, ref.y_centre
    radius = morph.asymmetry_aperture_rp * ref.r_petro
    order = morph.interpolation_order
    _, abs_flux, _ = asymmetry_terms(truth, (x, y), radius=radius, q=ref.q, pa=ref.pa, order=order)
    if not abs_flux > 0:
        return 0.0
    yy, xx = np.indices(truth.shape)
    rotated = rotate180(truth, (x, y), order=order)
    inside = elliptical_radius(xx - x, yy - y, ref.q, ref.pa) <= radius
    valid = inside & np.isfinite(truth) & np.isfinite(rotated)
    partner = np.nan_to_num(rotate180(variance, (x, y), order=1))  # off the stamp: no noise
    tau = np.sqrt(np.clip(variance + partner, 0.0, None))[valid]
    b = math.sqrt(2 / math.pi) * tau
    term = float(b.sum())
    if morph.asymmetry_signal_nsigma is not None:
        signal = smooth_signal(np.where(valid, truth - rotated, 0.0), valid)[valid]
        shrink = NoiseCorrelation.white().smoothed_std(1.0)
        # signal_pixels takes one noise level: the pixels grouped by theirs (tau takes a few
        # values: the own noise in both, one or none of a pixel and its rotated partner)
        levels = np.round(tau / tau.max(), 3) if tau.max() > 0 else np.zeros_like(tau)
        withheld = 0.0
        for level in np.unique(levels[levels > 0]):
            group = levels == level
            t = float(tau[group].mean())
            n = signal_pixels(signal[group] / t, 1.0, shrink, morph.asymmetry_signal_nsigma)
            withheld += n * math.sqrt(2 / math.pi) * t
        term -= float(withheld)
    return term / abs_flux


def reference(
    truth: np.ndarray,
    *,
    noise_sigma: float,
    own_sigma: float,
    own_region: np.ndarray | None,
    morph: MorphologyConfig,
) -> tuple[Measurement, float]:
    """The reference measurement of a noise-free real stamp and the own-noise term taken off
    its A (the module docstring): ``measure_truth`` at the observed stamp's noise
    ``noise_sigma``, A corrected by :func:`own_noise_term` for ``own_sigma`` inside
    ``own_region`` (None: the whole stamp), UNPHYSICAL re-checked on the corrected values."""
    ref = measure_truth(truth, centre=None, sky_sigma=noise_sigma, config=morph)
    if not (np.isfinite(own_sigma) and own_sigma > 0) or (int(ref.flag) & int(BAD_VALUES)):
        return ref, 0.0
    region = np.ones(truth.shape, bool) if own_region is None else own_region
    term = own_noise_term(truth, ref, np.where(region, own_sigma**2, 0.0), morph)
    ref = replace(ref, asymmetry=ref.asymmetry - term, asymmetry_bkg=term)
    problems = unphysical(ref)
    if problems:
        new = [f"UNPHYSICAL: {p}" for p in problems]
        reasons = "; ".join(filter(None, [ref.flag_reasons, *new]))
        ref = replace(ref, flag=int(ref.flag) | int(Flag.UNPHYSICAL), flag_reasons=reasons)
    return ref, term


def _measure_all(stamps, catalog: pd.DataFrame, morph: MorphologyConfig,
                 pixel_scale: float) -> pd.DataFrame:  # fmt: skip
    """Per stamp: the conventional measurement of the observed and the reference of the
    noise-free stamp (:func:`reference`), as table columns."""
    rows = []
    for k, (image, clean) in enumerate(zip(stamps.image, stamps.truth, strict=True)):
        cat = catalog.iloc[k]
        m = measure(np.asarray(image, np.float64), config=morph)
        sigma = float(cat["noise_sigma"])
        if not (np.isfinite(sigma) and sigma > 0):
            sigma = m.sky_sigma  # the render's measured noise is missing: the measurement's
        own = float(cat.get("own_noise_sigma", 0.0))
        region = None
        if "cutout_arcsec" in cat and np.isfinite(cat["cutout_arcsec"]):
            side = float(cat["cutout_arcsec"]) / pixel_scale
            offset = (float(cat.get("x_offset_px", 0.0)), float(cat.get("y_offset_px", 0.0)))
            region = cutout_footprint(clean.shape, side_px=side, offset_px=offset,
                                      rotation_deg=float(cat.get("rotation_deg", 0.0)))  # fmt: skip
        ref, term = reference(np.asarray(clean, np.float64), noise_sigma=sigma, own_sigma=own,
                              own_region=region, morph=morph)  # fmt: skip
        row = {"snr_p": m.snr_p, "conv_flag": int(m.flag), "conv_flag_reasons": m.flag_reasons,
               "ref_flag": int(ref.flag), "ref_flag_reasons": ref.flag_reasons,
               "ref_aperture_px": ref.r_petro * morph.aperture_rp, "ref_snr_p": ref.snr_p,
               "ref_asymmetry_uncorrected": ref.asymmetry_raw,
               "ref_own_noise_term": term}  # fmt: skip
        for t in TARGETS:
            row[f"conv_{t}"] = getattr(m, t)
            row[f"conv_{t}{ERR}"] = getattr(m, f"{t}{ERR}")
            row[f"ref_{t}"] = getattr(ref, t)
        rows.append(row)
    return pd.DataFrame(rows)


def _excluded(table: pd.DataFrame) -> pd.Series:
    """The reason each stamp is not scored ('' where it is), the first of :data:`EXCLUSIONS`."""
    bad = int(BAD_VALUES)
    tests = {
        "reference_flagged": (table["ref_flag"].astype(int) & bad) != 0,
        "too_large": ~(table["ref_aperture_px"] <= CROP_SIZE / 2),
        "conventional_flagged": (table["conv_flag"].astype(int) & bad) != 0,
        "network_failed": ~np.isfinite(table[[f"net_{t}" for t in TARGETS]]).all(axis=1),
    }
    reason = pd.Series("", index=table.index, dtype=object)
    for name in reversed(list(EXCLUSIONS)):  # the first reason wins: set it last
        reason[tests[name].to_numpy()] = name
    return reason


def real_suite(
    predictor: Predictor,
    cfg: RealSuiteConfig,
    simulate: SimulateConfig,
    morphology: MorphologyConfig,
    out: str | Path,
) -> SuiteResult:
    """Run the real-morphology suite (``cfg``: params ``evaluate.real``; the stamps' PSF, pixel
    scale, zero point and noise from ``simulate``; the conventional measurement's settings
    ``morphology``); figures go to folder ``out``.

    Returns the per-stamp table (``real_galaxies``: the render's catalogue, the three values per
    target, the flags, ``ref_sn_per_pixel``, the reference's uncorrected A and own-noise term,
    ``excluded`` and ``headline``), the scores per selection (``real_by_bin``), metrics
    (``n_*`` counts; ``<target>_all_*`` and ``<target>_sn2p5_*``: :func:`real_scores`), the
    headline summary rows, and two figures: ``real_scatter.png`` (network and conventional
    against the reference, coloured by kind) and ``real_outliers.png`` (the stamps with the
    largest ``|net - ref|``, one view per galaxy, :data:`N_OUTLIERS` per target).
    """
    from casnet.data.real import render_real

    result = SuiteResult("real")
    stamps = render_real(cfg, simulate)
    catalog = stamps.catalog.reset_index(drop=True)
    table = pd.concat([catalog, _measure_all(stamps, catalog, morphology, simulate.pixel_scale)],
                      axis=1)  # fmt: skip
    if "own_noise_sigma" in table:
        # the noise-free stamp's own S/N per pixel: sn_per_pixel's signal over the own noise
        total = np.hypot(table["noise_sigma"], table["own_noise_sigma"])
        with np.errstate(divide="ignore", invalid="ignore"):
            table["ref_sn_per_pixel"] = table["sn_per_pixel"] * total / table["own_noise_sigma"]
    preds = predictor.predict(stamps.image)
    for t in TARGETS:
        table[f"net_{t}"] = preds[t].to_numpy(float)
        table[f"net_{t}{ERR}"] = preds[f"{t}{ERR}"].to_numpy(float)
    table["ood_score"] = _ood_scores(predictor, stamps.image, preds)
    table["ood_flagged"] = table["ood_score"] > 1
    table["excluded"] = _excluded(table)
    table["headline"] = (table["excluded"] == "") & (table["sn_per_pixel"] >= HEADLINE_SN)
    scored = table[table["excluded"] == ""].reset_index(drop=True)
    counts = {"n_stamps": len(table), "n_galaxies": int(_galaxy(table).nunique()),
              "n_scored": len(scored), "n_headline": int(table["headline"].sum())}  # fmt: skip
    counts.update({f"n_excluded_{k}": int((table["excluded"] == k).sum()) for k in EXCLUSIONS})
    result.metrics.update(counts)
    result.tables["real_galaxies"] = table
    by_group = scores_by_group(scored)
    result.tables["real_by_bin"] = by_group
    for t in TARGETS:
        for key, name in (("all", "all"), ("sn2p5", HEADLINE)):
            row = by_group[(by_group["bin"] == name) & (by_group["target"] == t)].iloc[0]
            for k, v in row.drop(["group", "bin", "target"]).items():
                result.metrics[f"{t}_{key}_{k}"] = float(v)
    _summary(result, by_group)
    result.notes.append(_note(counts))
    if np.isfinite(table["ood_score"]).any():
        _ood_results(result, table, scored)
    else:
        result.notes.append("Out of distribution: the model has no out-of-distribution fit "
                            "(`casnet ood-fit`), no view is flagged.")  # fmt: skip
    out = Path(out)
    if len(scored):
        result.figures.append(scatter(scored, out / "real_scatter.png"))
        rows = table.index[table["excluded"] == ""]
        result.figures.append(
            _outliers(scored, stamps.image[rows], stamps.truth[rows], out / "real_outliers.png")
        )
    return result


def _ood_results(result: SuiteResult, table: pd.DataFrame, scored: pd.DataFrame) -> None:
    """The out-of-distribution flag's hit rate on the real views: metrics ``ood_*``, table
    ``real_ood`` (:func:`ood_by_group` of the scored views) and a note."""
    answered = np.isfinite(table["ood_score"].to_numpy(float))
    flagged = int(table["ood_flagged"][answered].sum())
    result.metrics["n_ood_scored"] = int(answered.sum())
    result.metrics["n_ood_flagged"] = flagged
    result.metrics["ood_flagged_share"] = flagged / answered.sum()
    by_group = ood_by_group(scored)
    result.tables["real_ood"] = by_group
    parts = []
    for key, name in (("all", "all"), ("sn2p5", HEADLINE)):
        row = by_group[by_group["bin"] == name].iloc[0]
        result.metrics[f"ood_scored_{key}_flagged_share"] = float(row["flagged_share"])
        for t in TARGETS:
            for col in ("net_rmse_flagged", "net_rmse_unflagged", "conv_rmse_flagged",
                        "conv_rmse_unflagged"):  # fmt: skip
                result.metrics[f"{t}_{key}_ood_{col}"] = float(row[f"{t}_{col}"])
    row = by_group[by_group["bin"] == "all"].iloc[0]
    for t in TARGETS:
        x = symbol(t)
        parts.append(f"{x} RMSE vs the reference, network {row[f'{t}_net_rmse_flagged']:.3f} "
                     f"flagged / {row[f'{t}_net_rmse_unflagged']:.3f} unflagged (conventional "
                     f"{row[f'{t}_conv_rmse_flagged']:.3f} / "
                     f"{row[f'{t}_conv_rmse_unflagged']:.3f})")  # fmt: skip
    kinds = by_group[by_group["group"] == "kind"]
    per_kind = ", ".join(f"{r['bin']} {r['flagged_share']:.0%}" for _, r in kinds.iterrows())
    result.notes.append(
        f"Out of distribution (issue 29; the model's threshold lets 1% of simulated galaxies "
        f"through): {flagged} of {int(answered.sum())} real views flagged "
        f"({flagged / answered.sum():.0%}); of the {int(row['n'])} scored views "
        f"{int(row['n_flagged'])} ({row['flagged_share']:.0%}); per kind: {per_kind}. "
        + "; ".join(parts)
        + ". Per S/N bin: table real_ood."
    )


#: the headline rows of the summary: (quantity, network column, conventional column or None)
HEADLINE_ROWS = (
    ("Pearson r, network vs conventional", "net_conv_r", None),
    ("slope of network on conventional", "net_conv_slope", None),
    ("Pearson r vs the noise-free reference", "net_ref_r", "conv_ref_r"),
    ("slope on the noise-free reference", "net_ref_slope", "conv_ref_slope"),
    ("reverse slope, reference on method", "net_ref_reverse_slope", "conv_ref_reverse_slope"),
    ("RMSE vs the noise-free reference", "net_rmse", "conv_rmse"),
    ("RMSE ratio, network / conventional", "rmse_ratio", None),
    # what any network can reach against the conventional value: a network returning the
    # noise-free reference has r = r(ref, conv) and slope = the reference's slope on conv
    # (benchmarks/realgap.md: issue 29's r targets are above it)
    ("Pearson r vs conventional of a perfect network (the reference)", "conv_ref_r", None),
    ("slope on conventional of a perfect network (the reference)", "conv_ref_reverse_slope", None),
)


def _summary(result: SuiteResult, by_group: pd.DataFrame) -> None:
    head = by_group[by_group["group"] == "headline"]
    for t in TARGETS:
        row = head[head["target"] == t].iloc[0]
        for quantity, net, conv in HEADLINE_ROWS:
            result.summary.append({"quantity": f"{symbol(t)} {quantity} "
                                               f"(real, {HEADLINE})",
                                   "network": float(row[net]),
                                   "conventional": float(row[conv]) if conv else np.nan,
                                   "target": t, "n": int(row["n"])})  # fmt: skip


def _note(counts: dict) -> str:
    gone = ", ".join(f"{counts[f'n_excluded_{k}']} {k.replace('_', ' ')}" for k in EXCLUSIONS)
    return (
        f"Real suite: {counts['n_stamps']} stamps of {counts['n_galaxies']} real COSMOS "
        f"galaxies (HST F814W morphology re-rendered as CANDELS F160W; no shipped network is "
        f"trained on them); not scored: {gone}; {counts['n_scored']} scored, "
        f"{counts['n_headline']} with S/N per pixel >= {HEADLINE_SN:g} (the rows above). "
        "Reference: the conventional measurement of the noise-free stamp, its A corrected for "
        "the cutout's own HST noise. Per S/N bin, reference S/N and "
        "visual kind: table real_by_bin."
    )


def scatter(table: pd.DataFrame, out: str | Path) -> Path:
    """Network (left) and conventional (right) against the noise-free reference, C (top) and A
    (bottom), coloured by visual kind; stamps below the headline S/N per pixel hollow. Each
    panel's title gives N, r, slope and RMSE of the headline stamps. The axes span the 1st-99th
    percentiles of the values."""
    from matplotlib.figure import Figure

    kinds = sorted(set(table["kind"].astype(str)))
    colours = {k: f"C{i % 10}" for i, k in enumerate(kinds)}
    bright = (table["sn_per_pixel"] >= HEADLINE_SN).to_numpy()
    fig = Figure(figsize=(9.0, 8.4))
    axes = fig.subplots(2, 2)
    names = {"net": "network", "conv": "conventional"}
    for row, t in zip(axes, TARGETS, strict=True):
        ref = table[f"ref_{t}"].to_numpy(float)
        for ax, m in zip(row, names, strict=True):
            val = table[f"{m}_{t}"].to_numpy(float)
            for k in kinds:
                sel = (table["kind"].astype(str) == k).to_numpy()
                ax.scatter(ref[sel & bright], val[sel & bright], s=10, color=colours[k],
                           label=k)  # fmt: skip
                ax.scatter(ref[sel & ~bright], val[sel & ~bright], s=10, facecolors="none",
                           edgecolors=colours[k], linewidths=0.6)  # fmt: skip
            both = np.concatenate([ref, val])
            both = both[np.isfinite(both)]
            # the 1st-99th percentiles: a few faint stamps far off would squash the rest
            lo, hi = np.percentile(both, [1, 99]) if both.size else (0.0, 1.0)
            pad = 0.05 * (hi - lo if hi > lo else 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=0.8)
            s = real_scores(table[bright], t)
            rmse = s[f"{m}_rmse"]
            ax.set_title(f"{names[m]}, S/N/px >= {HEADLINE_SN:g}: N={s['n']}, "
                         f"r={s[f'{m}_ref_r']:.2f}, slope={s[f'{m}_ref_slope']:.2f}, "
                         f"RMSE={rmse:.3f}", fontsize=8)  # fmt: skip
            ax.set_xlabel(f"{t} (noise-free reference)")
            ax.set_ylabel(f"{t} ({names[m]})")
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
    axes[0][0].legend(fontsize=7, title=f"filled: S/N/px >= {HEADLINE_SN:g}", title_fontsize=7)
    return save_figure(fig, out)


def outliers(table: pd.DataFrame, target: str, n: int = N_OUTLIERS) -> pd.DataFrame:
    """The ``n`` rows of ``table`` with the largest ``|net - ref|`` of ``target``, one per
    galaxy (its worst view; ``cosmos_ident``, else ``galaxy_id``), among the headline stamps
    (all, when none is there)."""
    pool = table[table["sn_per_pixel"] >= HEADLINE_SN]
    pool = pool if len(pool) else table
    err = (pool[f"net_{target}"] - pool[f"ref_{target}"]).abs()
    worst = pool.assign(_err=err, _galaxy=_galaxy(pool)).sort_values("_err", ascending=False)
    return worst.drop_duplicates("_galaxy").head(n).drop(columns=["_err", "_galaxy"])


def _outliers(table: pd.DataFrame, images: np.ndarray, truths: np.ndarray, out: Path) -> Path:
    """The worst stamps in each quantity: the network's crop of each observed stamp, its three
    values in the title, beside the same crop of the noise-free stamp."""
    picks, titles = [], []
    for t in TARGETS:
        x = symbol(t)
        for i, r in outliers(table, t).iterrows():
            picks += [_crop(images[i]), _crop(truths[i])]
            titles += [
                f"{x}: net {r[f'net_{t}']:.2f} conv {r[f'conv_{t}']:.2f} ref {r[f'ref_{t}']:.2f}"
                f"\n{r['kind']}, S/N/px {r['sn_per_pixel']:.1f}",
                f"noise-free, {r['galaxy_id']}",
            ]
    return stamp_grid(
        picks,
        titles,
        out,
        ncols=8,
        suptitle="Real galaxies with the largest |network - reference|: A (top rows), C; "
        f"the network's {CROP_SIZE}x{CROP_SIZE} crop, observed and noise-free",
    )


def _crop(image: np.ndarray) -> np.ndarray:
    """The central ``CROP_SIZE`` square (the network's crop)."""
    ny, nx = image.shape
    y0, x0 = max((ny - CROP_SIZE) // 2, 0), max((nx - CROP_SIZE) // 2, 0)
    return image[y0 : y0 + CROP_SIZE, x0 : x0 + CROP_SIZE]
