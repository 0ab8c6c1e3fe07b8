"""Benchmarks that print figures: the measurement vs statmorph, and the data stages.

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
import time
import warnings
from typing import Any

import numpy as np

from casnet.config import MorphologyConfig, SimulateConfig
from casnet.morphology import measure
from casnet.morphology.measure import detect_target
from casnet.morphology.sky import rough_sky
from casnet.sources.simulate import simulate

__all__ = [
    "benchmark_data",
    "benchmark_measure",
    "format_data_report",
    "format_measure_report",
    "machine_info",
]


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
        ``casnet_ms`` (mean over all stamps of each galaxy's median over repeats),
        ``casnet_ms_same``, ``statmorph_ms``, ``statmorph_ca_ms`` (means over the stamps with a
        detected target), ``ratio`` / ``ratio_ca`` (statmorph time over casnet time on those
        same stamps), ``pearson_c``,
        ``pearson_a``, ``median_abs_dc``, ``median_abs_da``, counts and the machine.
    """
    from tqdm import tqdm

    sim = sim or SimulateConfig()
    morph = morph or MorphologyConfig()
    stamps = [
        g.image.astype(np.float64)
        for g in tqdm(simulate(sim, n=n), total=n, desc="simulate", disable=not progress)
    ]
    measure(stamps[0], config=morph)  # load the compiled kernels before timing
    per_galaxy = np.empty((n, repeats))
    for rep in range(repeats):
        results = []
        for k, img in enumerate(stamps):
            t0 = time.perf_counter()
            results.append(measure(img, config=morph))
            per_galaxy[k, rep] = time.perf_counter() - t0
    casnet_s = np.median(per_galaxy, axis=1)  # per galaxy, median over repeats
    report: dict[str, Any] = {
        "n": n,
        "repeats": repeats,
        "stamp_size": sim.stamp_size,
        "casnet_ms": 1e3 * float(casnet_s.mean()),
        "casnet_flagged_fatal": sum(1 for r in results if not np.isfinite(r.concentration)),
        "machine": machine_info(),
    }
    classes = _statmorph_classes() if use_statmorph else None
    if classes is None:
        report["statmorph"] = "not installed" if use_statmorph else "skipped"
        return report
    full_cls, ca_cls = classes
    m = min(statmorph_n or n, n)
    full_t, ca_t, pairs, timed = [], [], [], []
    for k, (img, res) in enumerate(
        tqdm(list(zip(stamps[:m], results[:m], strict=True)), desc="statmorph",
             disable=not progress)
    ):  # fmt: skip
        if not np.isfinite(res.sky_mean) or not res.sky_sigma > 0:
            continue
        data = img - res.sky_mean
        # exactly the detection measure() used (same first-pass sky), so both codes see one target
        seg = detect_target(img, rough_sky(img), morph)
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
        timed.append(k)
        if sm.flag <= 1 and res.flag == 0 and sm.concentration > -90:
            pairs.append(
                (res.concentration, sm.concentration, res.asymmetry, sm.asymmetry, res.snr_p)
            )
    arr = np.array(pairs, dtype=float).reshape(-1, 5)
    c1, c2, a1, a2 = (list(arr[:, i]) for i in range(4))
    bright = arr[arr[:, 4] >= 5.0]
    report.update(
        statmorph_n=len(full_t),
        statmorph_ms=1e3 * float(np.mean(full_t)) if full_t else float("nan"),
        statmorph_ca_ms=1e3 * float(np.mean(ca_t)) if ca_t else float("nan"),
        casnet_ms_same=1e3 * float(casnet_s[timed].mean()) if timed else float("nan"),
        compared=len(pairs),
        pearson_c=_pearson(c1, c2),
        pearson_a=_pearson(a1, a2),
        median_abs_dc=float(np.median(np.abs(np.subtract(c1, c2)))) if pairs else float("nan"),
        median_abs_da=float(np.median(np.abs(np.subtract(a1, a2)))) if pairs else float("nan"),
        compared_snr5=len(bright),
        pearson_c_snr5=_pearson(list(bright[:, 0]), list(bright[:, 1])),
        pearson_a_snr5=_pearson(list(bright[:, 2]), list(bright[:, 3])),
    )
    # Ratios on the same galaxies: those with a detected target, which both codes measured
    # (casnet's fast exits on undetected stamps do not flatter it).
    report["ratio"] = report["statmorph_ms"] / report["casnet_ms_same"]
    report["ratio_ca"] = report["statmorph_ca_ms"] / report["casnet_ms_same"]
    return report


def format_measure_report(r: dict[str, Any]) -> str:
    """Human-readable lines of :func:`benchmark_measure`'s report."""
    mach = r["machine"]
    lines = [
        f"machine: {mach['cpu']}, {mach['cores']} cores, Python {mach['python']}",
        f"stamps: {r['n']} x {r['stamp_size']}x{r['stamp_size']} px, repeats: {r['repeats']}",
        f"casnet conventional C+A : {r['casnet_ms']:8.2f} ms/galaxy (all stamps, mean)",
    ]
    if "statmorph_ms" not in r:
        lines.append(f"statmorph              : {r['statmorph']}")
        return "\n".join(lines)
    lines += [
        f"on the {r['statmorph_n']} stamps with a detected target (means):",
        f"casnet conventional C+A : {r['casnet_ms_same']:8.2f} ms/galaxy",
        f"statmorph (all outputs) : {r['statmorph_ms']:8.2f} ms/galaxy  "
        f"-> casnet is {r['ratio']:.1f}x faster",
        f"statmorph (C+A only)    : {r['statmorph_ca_ms']:8.2f} ms/galaxy  "
        f"-> casnet is {r['ratio_ca']:.1f}x faster",
        f"agreement on {r['compared']} galaxies both measured without flags: "
        f"Pearson C {r['pearson_c']:.3f}, A {r['pearson_a']:.3f}; "
        f"median |dC| {r['median_abs_dc']:.3f}, |dA| {r['median_abs_da']:.3f}",
        f"  of which {r['compared_snr5']} with SNR_p >= 5: "
        f"Pearson C {r['pearson_c_snr5']:.3f}, A {r['pearson_a_snr5']:.3f}",
    ]
    return "\n".join(lines)


_STAGE_SCRIPT = """
import json, resource, sys, time
from casnet.config import load_params
from casnet.stages import clean, simulate
stage, n, chunk, src, out = sys.argv[1:6]
n, chunk = int(n), int(chunk)
p = load_params()
store = p.store.model_copy(update={"chunk_size": chunk})
t0 = time.perf_counter()
if stage == "simulate":
    simulate.run(p.simulate, n, store, out, show_progress=False)
else:
    clean.run(p.clean, store, src, out, show_progress=False)
dt = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
print(json.dumps({"seconds": dt, "peak_rss_mb": peak_mb}))
"""


def _run_stage(stage: str, n: int, chunk: int, src: str, out: str) -> dict[str, float]:
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _STAGE_SCRIPT, stage, str(n), str(chunk), src, out],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def benchmark_data(n: int = 500, *, chunk_size: int = 64, workdir: str | None = None) -> dict:
    """ms/galaxy and peak memory of the simulate and clean stages at N/5 and N galaxies.

    Each run is a fresh process (so its peak RSS is its own) writing a real store; the peak memory
    must not grow with N, because every stage holds one chunk at a time.
    """
    import tempfile
    from pathlib import Path

    small = max(n // 5, 1)
    report: dict[str, Any] = {"n": n, "n_small": small, "chunk_size": chunk_size,
                              "machine": machine_info()}  # fmt: skip
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for size in (small, n):
            sim_out = str(Path(tmp) / f"sim{size}")
            sim = _run_stage("simulate", size, chunk_size, "", sim_out)
            cln = _run_stage("clean", size, chunk_size, sim_out, str(Path(tmp) / f"clean{size}"))
            report[f"simulate_{size}"] = {"ms_per_galaxy": 1e3 * sim["seconds"] / size,
                                          "peak_rss_mb": sim["peak_rss_mb"]}  # fmt: skip
            report[f"clean_{size}"] = {"ms_per_galaxy": 1e3 * cln["seconds"] / size,
                                       "peak_rss_mb": cln["peak_rss_mb"]}  # fmt: skip
    for stage in ("simulate", "clean"):
        a, b = report[f"{stage}_{small}"], report[f"{stage}_{n}"]
        report[f"{stage}_memory_growth"] = b["peak_rss_mb"] / a["peak_rss_mb"] - 1
    return report


def format_data_report(r: dict[str, Any]) -> str:
    """Human-readable lines of :func:`benchmark_data`'s report."""
    mach = r["machine"]
    lines = [
        f"machine: {mach['cpu']}, {mach['cores']} cores, Python {mach['python']}",
        f"chunk size {r['chunk_size']}; one fresh process per run (peak RSS is the process's own)",
        f"{'stage':10s} {'N':>6s} {'ms/galaxy':>10s} {'peak RSS MB':>12s}",
    ]
    for stage in ("simulate", "clean"):
        for size in (r["n_small"], r["n"]):
            x = r[f"{stage}_{size}"]
            lines.append(
                f"{stage:10s} {size:6d} {x['ms_per_galaxy']:10.2f} {x['peak_rss_mb']:12.1f}"
            )
        lines.append(
            f"{stage:10s} memory growth N={r['n_small']} -> {r['n']}: "
            f"{100 * r[f'{stage}_memory_growth']:+.1f}%"
        )
    return "\n".join(lines)
