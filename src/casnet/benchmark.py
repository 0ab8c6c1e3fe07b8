"""Speed and agreement of the conventional measurement, side by side with statmorph.

``casnet benchmark measure --n 200`` times casnet and (when installed) statmorph on the same
generated 101x101 stamps, in one process, and prints ms/galaxy, the ratio and the C/A agreement.
statmorph is timed twice: as users run it (``SourceMorphology``, which computes all its
diagnostics) and restricted to C and A only (a subclass that evaluates just those two), so the
ratio is honest either way. Both codes get the same segmentation (casnet's) and the same
sky-subtracted image.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
import warnings
from typing import Any

import numpy as np

from casnet.config import MorphologyConfig, SimulateConfig
from casnet.morphology import measure
from casnet.morphology.segmentation import segment
from casnet.sources.simulate import simulate

__all__ = ["benchmark_measure", "format_measure_report", "machine_info"]


def machine_info() -> dict[str, Any]:
    """CPU, core count and Python of this machine (recorded with every figure)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def _statmorph_classes():
    try:
        import statmorph
    except ImportError:
        return None

    class _CAOnly(statmorph.SourceMorphology):
        """statmorph computing only C and A (its constructor otherwise computes everything)."""

        def _calculate_morphology(self) -> None:
            _ = self.concentration, self.asymmetry

        def _check_segmaps(self) -> None:  # needs the Gini/MID segmaps, not computed here
            pass

    return statmorph.SourceMorphology, _CAOnly


def _pearson(a: list[float], b: list[float]) -> float:
    if len(a) < 3:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def benchmark_measure(
    n: int = 200,
    *,
    repeats: int = 1,
    use_statmorph: bool = True,
    statmorph_n: int | None = None,
    sim: SimulateConfig | None = None,
    morph: MorphologyConfig | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Time casnet (and statmorph) on ``n`` generated stamps.

    Returns
    -------
    dict
        ``casnet_ms``, ``statmorph_ms``, ``statmorph_ca_ms`` (median over repeats, per galaxy),
        ``ratio`` / ``ratio_ca`` (statmorph time over casnet time), ``pearson_c``,
        ``pearson_a``, ``median_abs_dc``, ``median_abs_da``, counts and the machine.
    """
    from tqdm import tqdm

    sim = sim or SimulateConfig()
    morph = morph or MorphologyConfig()
    stamps = [
        g.image.astype(np.float64)
        for g in tqdm(simulate(sim, n=n), total=n, desc="simulate", disable=not progress)
    ]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        results = [measure(img, config=morph) for img in stamps]
        times.append((time.perf_counter() - t0) / n)
    report: dict[str, Any] = {
        "n": n,
        "repeats": repeats,
        "stamp_size": sim.stamp_size,
        "casnet_ms": 1e3 * statistics.median(times),
        "casnet_flagged_fatal": sum(1 for r in results if not np.isfinite(r.concentration)),
        "machine": machine_info(),
    }
    classes = _statmorph_classes() if use_statmorph else None
    if classes is None:
        report["statmorph"] = "not installed" if use_statmorph else "skipped"
        return report
    full_cls, ca_cls = classes
    m = min(statmorph_n or n, n)
    full_t, ca_t, pairs = [], [], []
    for img, res in tqdm(
        list(zip(stamps[:m], results[:m], strict=True)), desc="statmorph", disable=not progress
    ):
        if not np.isfinite(res.sky_mean) or not res.sky_sigma > 0:
            continue
        data = img - res.sky_mean
        seg = segment(
            data,
            threshold=morph.detect_nsigma * res.sky_sigma,
            npixels=morph.detect_npixels,
            smooth_fwhm=morph.smooth_fwhm,
        )
        if seg.target == 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            sm = full_cls(data, seg.labels, seg.target, gain=1e4)
            full_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ca_cls(data, seg.labels, seg.target, gain=1e4)
            ca_t.append(time.perf_counter() - t0)
        if sm.flag <= 1 and res.flag == 0 and sm.concentration > -90:
            pairs.append((res.concentration, sm.concentration, res.asymmetry, sm.asymmetry))
    c1, c2, a1, a2 = (list(x) for x in zip(*pairs, strict=True)) if pairs else ([], [], [], [])
    report.update(
        statmorph_n=len(full_t),
        statmorph_ms=1e3 * statistics.median(full_t) if full_t else float("nan"),
        statmorph_ca_ms=1e3 * statistics.median(ca_t) if ca_t else float("nan"),
        compared=len(pairs),
        pearson_c=_pearson(c1, c2),
        pearson_a=_pearson(a1, a2),
        median_abs_dc=float(np.median(np.abs(np.subtract(c1, c2)))) if pairs else float("nan"),
        median_abs_da=float(np.median(np.abs(np.subtract(a1, a2)))) if pairs else float("nan"),
    )
    # casnet's per-galaxy time is a mean over all stamps; statmorph's a median per galaxy.
    report["ratio"] = report["statmorph_ms"] / report["casnet_ms"]
    report["ratio_ca"] = report["statmorph_ca_ms"] / report["casnet_ms"]
    return report


def format_measure_report(r: dict[str, Any]) -> str:
    """Human-readable lines of :func:`benchmark_measure`'s report."""
    mach = r["machine"]
    lines = [
        f"machine: {mach['cpu']}, {mach['cores']} cores, Python {mach['python']}",
        f"stamps: {r['n']} x {r['stamp_size']}x{r['stamp_size']} px, repeats: {r['repeats']}",
        f"casnet conventional C+A : {r['casnet_ms']:8.2f} ms/galaxy",
    ]
    if "statmorph_ms" not in r:
        lines.append(f"statmorph              : {r['statmorph']}")
        return "\n".join(lines)
    lines += [
        f"statmorph (all outputs) : {r['statmorph_ms']:8.2f} ms/galaxy  "
        f"-> casnet is {r['ratio']:.1f}x faster",
        f"statmorph (C+A only)    : {r['statmorph_ca_ms']:8.2f} ms/galaxy  "
        f"-> casnet is {r['ratio_ca']:.1f}x faster",
        f"agreement on {r['compared']} galaxies both measured without flags: "
        f"Pearson C {r['pearson_c']:.3f}, A {r['pearson_a']:.3f}; "
        f"median |dC| {r['median_abs_dc']:.3f}, |dA| {r['median_abs_da']:.3f}",
    ]
    return "\n".join(lines)
