"""Benchmarks that print figures: the measurement vs statmorph, and the data stages.

``casnet benchmark measure --n 200`` times casnet and (when installed) statmorph on the same
generated 101x101 stamps, in one process, and prints ms/galaxy, the ratio and the C/A agreement.
statmorph is timed twice: as users run it (``SourceMorphology``, which computes all its
diagnostics) and restricted to C and A only (a subclass that evaluates just those two), so the
ratio is honest either way. Both codes get the same segmentation (casnet's) and the same
sky-subtracted image.

Why ~490 lines: the three speed benchmarks (conventional vs statmorph, the data stages, scoring in
process and over REST) with their reports share the machine description, the timing rules and
the untrained-model fixture; ``casnet benchmark all`` (:mod:`.harness`) runs them together.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from casnet.core.layout import TARGETS
from casnet.core.scores import pearson
from casnet.data.settings import SimulateConfig
from casnet.data.simulate import simulate
from casnet.morphology import measure
from casnet.morphology.measurement import detect_target
from casnet.morphology.settings import MorphologyConfig
from casnet.morphology.sky import rough_sky

__all__ = [
    "benchmark_measure",
    "benchmark_pipeline",
    "benchmark_predict",
    "format_measure_report",
    "format_pipeline_report",
    "format_predict_report",
    "machine_info",
    "statmorph_classes",
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


def statmorph_classes():
    """(statmorph.SourceMorphology, a C-and-A-only subclass); None without statmorph."""
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


def benchmark_measure(
    n: int = 200,
    *,
    repeats: int = 1,
    use_statmorph: bool = True,
    statmorph_n: int | None = None,
    sim: SimulateConfig | None = None,
    morph: MorphologyConfig | None = None,
    progress: bool = False,
    stamps: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Time casnet (and statmorph) on ``n`` generated stamps (or on ``stamps`` when given).

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
    if stamps is None:
        stamps = [
            g.image.astype(np.float64)
            for g in tqdm(simulate(sim, n=n), total=n, desc="simulate", disable=not progress)
        ]
    stamps = [np.asarray(s, dtype=np.float64) for s in stamps]
    n = len(stamps)
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
    classes = statmorph_classes() if use_statmorph else None
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
        pearson_c=pearson(c1, c2),
        pearson_a=pearson(a1, a2),
        median_abs_dc=float(np.median(np.abs(np.subtract(c1, c2)))) if pairs else float("nan"),
        median_abs_da=float(np.median(np.abs(np.subtract(a1, a2)))) if pairs else float("nan"),
        compared_snr5=len(bright),
        pearson_c_snr5=pearson(list(bright[:, 0]), list(bright[:, 1])),
        pearson_a_snr5=pearson(list(bright[:, 2]), list(bright[:, 3])),
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
from casnet.pipeline.settings import DaskConfig
from casnet.params import load_params
from casnet.pipeline import clean, measure, simulate
stage, n, chunk, workers, src, out, scheduler = sys.argv[1:8]
n, chunk, workers = int(n), int(chunk), int(workers)
p = load_params()
store = p.store.model_copy(update={"chunk_size": chunk})
dask = DaskConfig(scheduler=scheduler) if scheduler else DaskConfig(workers=workers)
t0 = time.perf_counter()
if stage == "simulate":
    simulate.run(p.simulate, n, store, out, dask=dask, show_progress=False)
elif stage == "clean":
    clean.run(p.clean, store, src, out, dask=dask, show_progress=False)
else:
    measure.run(p.morphology, src, out, dask=dask, show_progress=False)
dt = time.perf_counter() - t0
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
workers_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"seconds": dt, "driver_rss_mb": own, "worker_rss_mb": workers_mb}))
"""

#: stages timed, in pipeline order, with the input each reads
_STAGES = ("simulate", "clean", "measure")


def _run_stage(
    stage: str, n: int, chunk: int, workers: int, src: str, out: str, scheduler: str = ""
) -> dict:
    import json
    import subprocess
    import sys

    args = [stage, str(n), str(chunk), str(workers), src, out, scheduler]
    proc = subprocess.run(
        [sys.executable, "-c", _STAGE_SCRIPT, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark of stage {stage} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _chain(
    n: int, chunk: int, workers: int, tmp: str, stages: Sequence[str], scheduler: str = ""
) -> dict:
    from pathlib import Path

    tag = "warm" if scheduler else "cold"
    paths = {s: str(Path(tmp) / f"{s}-{n}-{workers}-{tag}") for s in _STAGES}
    inputs = {"simulate": "", "clean": paths["simulate"], "measure": paths["clean"]}
    outs = {**paths, "measure": paths["measure"] + ".parquet"}
    return {s: _run_stage(s, n, chunk, workers, inputs[s], outs[s], scheduler) for s in stages}


def _warm_chain(n: int, chunk: int, workers: int, tmp: str, stages: Sequence[str]) -> dict:
    """The stages on an already running LocalCluster (workers imported and compiled once), as
    with ``--scheduler``: the throughput without the cluster start-up."""
    if workers == 0:
        return _chain(n, chunk, 0, tmp, stages)
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                     dashboard_address=None, silence_logs=50) as cluster,
        Client(cluster),
    ):  # fmt: skip
        _chain(min(n, 2 * chunk * workers), chunk, workers, tmp, stages, cluster.scheduler_address)
        return _chain(n, chunk, workers, tmp, stages, cluster.scheduler_address)


def benchmark_pipeline(
    n: int = 2000,
    *,
    workers: Sequence[int] = (1, 2),
    n_small: int | None = None,
    chunk_size: int = 64,
    stages: Sequence[str] = _STAGES,
    workdir: str | None = None,
    warm: bool = False,
) -> dict[str, Any]:
    """Throughput of the data stages per worker count, and peak memory at two N.

    Cold runs start their own LocalCluster (what a one-off ``casnet data`` command pays); with
    ``warm`` the stages also run on a cluster started beforehand and warmed up on a few chunks (what
    ``--scheduler`` on a running cluster gives, and the steady state of long runs).

    Every run is a fresh process (so peak RSS figures are its own): the driver's peak and the
    largest worker's peak (``workers=0`` runs in the driver). Speed-up is throughput with the
    most workers over throughput with the fewest; memory growth compares N with ``n_small``
    (default N/10) at the largest worker count.
    """
    import tempfile

    stages = tuple(s for s in _STAGES if s in stages)
    small = n_small or max(n // 10, 1)
    report: dict[str, Any] = {"n": n, "n_small": small, "chunk_size": chunk_size,
                              "workers": list(workers), "machine": machine_info(),
                              "warm": warm, "runs": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for w in workers:
            report["runs"][f"n={n},workers={w}"] = _chain(n, chunk_size, w, tmp, stages)
            if warm:
                report["runs"][f"warm,n={n},workers={w}"] = _warm_chain(
                    n, chunk_size, w, tmp, stages
                )
        w_max = max(workers)
        report["runs"][f"n={small},workers={w_max}"] = _chain(small, chunk_size, w_max, tmp, stages)
    runs = report["runs"]
    for s in stages:
        rates = {w: n / runs[f"n={n},workers={w}"][s]["seconds"] for w in workers}
        report[f"{s}_galaxies_per_s"] = rates
        report[f"{s}_speedup"] = rates[max(workers)] / rates[min(workers)]
        if warm:
            hot = {w: n / runs[f"warm,n={n},workers={w}"][s]["seconds"] for w in workers}
            report[f"{s}_warm_galaxies_per_s"] = hot
            report[f"{s}_warm_speedup"] = hot[max(workers)] / hot[min(workers)]
        big, little = runs[f"n={n},workers={w_max}"][s], runs[f"n={small},workers={w_max}"][s]
        peak = {k: max(big[k], 1e-9) / max(little[k], 1e-9) - 1
                for k in ("driver_rss_mb", "worker_rss_mb")}  # fmt: skip
        report[f"{s}_memory_growth"] = peak
    return report


def format_pipeline_report(r: dict[str, Any]) -> str:
    """Human-readable lines of :func:`benchmark_pipeline`'s report."""
    mach = r["machine"]
    ws = r["workers"]
    lines = [
        f"machine: {mach['cpu']}, {mach['cores']} cores, Python {mach['python']}",
        f"N = {r['n']} (memory also at N = {r['n_small']}), chunk size {r['chunk_size']}, "
        "one fresh process per run",
        f"{'stage':9s} " + " ".join(f"{f'{w} worker(s) gal/s':>20s}" for w in ws)
        + f" {'speed-up':>9s} {'peak driver/worker MB at N':>27s}"
        + f" {'growth N=' + str(r['n_small']) + ' -> N':>19s}",
    ]  # fmt: skip
    for s in _STAGES:
        if f"{s}_speedup" not in r:
            continue
        big = r["runs"][f"n={r['n']},workers={max(ws)}"][s]
        g = r[f"{s}_memory_growth"]
        lines.append(
            f"{s:9s} "
            + " ".join(f"{r[f'{s}_galaxies_per_s'][w]:20.1f}" for w in ws)
            + f" {r[f'{s}_speedup']:8.2f}x"
            + f" {big['driver_rss_mb']:13.0f} / {big['worker_rss_mb']:<11.0f}"
            + f" {100 * g['driver_rss_mb']:+6.1f}% / {100 * g['worker_rss_mb']:+.1f}%"
        )
    if r.get("warm"):
        lines.append("on a running cluster (started and warmed up beforehand, as --scheduler):")
        for s in _STAGES:
            if f"{s}_warm_speedup" not in r:
                continue
            lines.append(
                f"{s:9s} "
                + " ".join(f"{r[f'{s}_warm_galaxies_per_s'][w]:20.1f}" for w in ws)
                + f" {r[f'{s}_warm_speedup']:8.2f}x"
            )
    return "\n".join(lines)


# --- the combined network model: in-process and through the REST server ---------------------


def synthetic_stamps(n: int, size: int = 101, seed: int = 0) -> np.ndarray:
    """``n`` galaxy-like stamps fast (exponential profiles on noise): the arithmetic of scoring
    does not depend on the content, and GalSim at ~20 ms a stamp would dominate the run."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        dx, dy = rng.normal(0, 1, 2)
        scale = rng.uniform(2, 8)
        r = np.hypot(xx - dx, (yy - dy) / rng.uniform(0.4, 1))
        out[i] = rng.uniform(0.5, 5) * np.exp(-r / scale) + rng.normal(0, 0.02, (size, size))
    return out


def _table1_model(dest: str, arch_by_target: dict) -> str:
    """A local combined model around untrained networks of the given architectures."""
    import mlflow

    from casnet.networks.architecture import build_model
    from casnet.networks.mlmodel import model_requirements, network_signature
    from casnet.networks.registry import CasnetModel

    artifacts = {}
    for target, arch in arch_by_target.items():
        artifacts[target] = f"{dest}/{target}"
        mlflow.keras.save_model(build_model(arch), artifacts[target],
                                signature=network_signature(),
                                pip_requirements=model_requirements())  # fmt: skip
    mlflow.pyfunc.save_model(f"{dest}/casnet", python_model=CasnetModel(), artifacts=artifacts,
                             pip_requirements=model_requirements(combined=True))  # fmt: skip
    return f"{dest}/casnet"


def model_folder(model: str | None, tmp: str, arch_by_target: dict) -> tuple[str, str]:
    """(local folder, description) of the model to time: a folder as is, a ``models:/`` URI
    pulled into ``tmp``, or (None) untrained networks of ``arch_by_target``."""
    if model is None:
        return _table1_model(tmp, arch_by_target), "params.yaml networks (untrained)"
    if Path(model).exists():
        return model, model
    from casnet.networks.registry import pull

    return str(pull(model, f"{tmp}/pulled")), model


def benchmark_predict(
    n: int,
    *,
    arch_by_target: dict,
    model: str | None = None,
    rest: bool = True,
    rest_batch: int = 250,
    repeats: int = 3,
) -> dict[str, Any]:
    """Galaxies/s of the combined model in-process and via ``mlflow models serve``, and each
    network's achieved GFLOP/s against a matrix product timed in the same run.

    ``model``: a local folder or ``models:/`` URI; default an untrained combined model of
    ``arch_by_target`` (the params.yaml networks: speed does not depend on the weights).
    """
    import tempfile

    from casnet.bench.throughput import keras_flops, matmul_gflops, network_rate
    from casnet.data.preprocess import crop_normalise
    from casnet.networks.trust import load_combined

    report: dict[str, Any] = {"machine": machine_info(), "n": n}
    stamps = synthetic_stamps(n)
    with tempfile.TemporaryDirectory() as tmp:
        path, report["model"] = model_folder(model, tmp, arch_by_target)
        pyfunc = load_combined(Path(path), str(model or path))  # checked, never unpickled
        pyfunc.predict(stamps[:64])
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            pyfunc.predict(stamps)
            times.append(time.perf_counter() - t0)
        report["in_process_galaxies_per_s"] = n / float(np.median(times))
        report["matmul_gflops"] = matmul_gflops()
        x = crop_normalise(stamps)[0][..., None]
        for target, net in pyfunc.unwrap_python_model().networks.items():
            rate = network_rate(net, x, repeats=repeats)
            report[f"{target}_images_per_s"] = rate
            report[f"{target}_gflops"] = keras_flops(net) * rate / 1e9
        if rest:
            from casnet.networks.serve import invoke, scoring_server

            with scoring_server(path) as url:
                invoke(url, {"inputs": stamps[:8].tolist()})  # warm-up
                t0 = time.perf_counter()
                for lo in range(0, n, rest_batch):
                    status, body = invoke(url, {"inputs": stamps[lo : lo + rest_batch].tolist()})
                    if status != 200:
                        raise RuntimeError(f"scoring server answered {status}: {body}")
                report["rest_galaxies_per_s"] = n / (time.perf_counter() - t0)
                report["rest_batch"] = rest_batch
    return report


def format_predict_report(r: dict[str, Any]) -> str:
    """The predict benchmark as a short table."""
    m = r["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores; model: {r['model']}; N = {r['n']} "
        "stamps of 101x101",
        f"combined model in-process (crop_normalise + both networks): "
        f"{r['in_process_galaxies_per_s']:.0f} galaxies/s",
    ]
    if "rest_galaxies_per_s" in r:
        lines.append(f"through mlflow models serve (JSON, {r['rest_batch']} stamps a request): "
                     f"{r['rest_galaxies_per_s']:.0f} galaxies/s")  # fmt: skip
    for target in TARGETS:
        if f"{target}_gflops" in r:
            lines.append(
                f"{target} network alone: {r[f'{target}_images_per_s']:.0f} images/s, "
                f"{r[f'{target}_gflops']:.1f} GFLOP/s = "
                f"{100 * r[f'{target}_gflops'] / r['matmul_gflops']:.0f}% of the matmul "
                f"({r['matmul_gflops']:.0f} GFLOP/s)"
            )
    return "\n".join(lines)
