"""One benchmark harness: every speed figure of the platform, side by side, in one run.

``casnet benchmark all`` (MLproject entry ``benchmark``) times, on the same generated 101x101
stamps: statmorph's C and A (when installed; as users run it and restricted to C and A), our
conventional C and A, and the networks' C and A (the combined model: ``crop_normalise`` and both
networks); then the data stages with 1 and 2 Dask workers (fresh processes, peak memory at N/10
and N) and training throughput. It prints one table, checks the performance goals (:data:`GOALS`),
writes ``benchmarks/results.json`` and logs everything to MLflow (experiment ``casnet-benchmark``).
Speed is reported as medians over repeats; the machine is recorded with the figures.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from casnet.bench.settings import BenchmarkParams
from casnet.bench.speed import benchmark_measure, benchmark_pipeline, machine_info, model_folder
from casnet.core.config import override
from casnet.core.layout import EXPERIMENTS
from casnet.data.simulate import simulate

__all__ = ["EXPERIMENT", "GOALS", "benchmark_all", "format_report", "log_to_mlflow"]

EXPERIMENT = EXPERIMENTS["benchmark"]

#: The performance goals: (description, key in the report, threshold; higher is better)
GOALS = (
    ("conventional >= 20x faster than statmorph (as run)", "conventional_vs_statmorph", 20.0),
    ("conventional >= 20x faster than statmorph (C+A only)", "conventional_vs_statmorph_ca", 20.0),
    ("conventional Pearson >= 0.95 vs statmorph (C)", "pearson_c", 0.95),
    ("conventional Pearson >= 0.95 vs statmorph (A)", "pearson_a", 0.95),
    ("CNN C+A >= 60x faster than statmorph (as run)", "cnn_vs_statmorph", 60.0),
    ("concentration network >= 60% of matmul GFLOP/s", "concentration_matmul_fraction", 0.60),
    ("asymmetry network >= 60% of matmul GFLOP/s", "asymmetry_matmul_fraction", 0.60),
    ("simulate >= 1.7x with 2 workers (cold)", "simulate_speedup", 1.7),
    ("clean >= 1.7x with 2 workers (cold)", "clean_speedup", 1.7),
    ("measure >= 1.7x with 2 workers (cold)", "measure_speedup", 1.7),
    ("simulate >= 1.7x with 2 workers (running cluster)", "simulate_warm_speedup", 1.7),
    ("clean >= 1.7x with 2 workers (running cluster)", "clean_warm_speedup", 1.7),
    ("measure >= 1.7x with 2 workers (running cluster)", "measure_warm_speedup", 1.7),
    ("data-stage peak memory at N within 10% of N/10", "worst_memory_growth_ok", 1.0),
)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cnn(stamps: np.ndarray, params: BenchmarkParams, model: str | None, batch_size: int,
         repeats: int) -> dict[str, Any]:  # fmt: skip
    """The combined model on the stamps (in-process), and each network's GFLOP/s vs a matmul."""

    from casnet.bench.throughput import keras_flops, matmul_gflops, network_rate
    from casnet.data.preprocess import crop_normalise
    from casnet.networks.trust import load_combined

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        archs = params.model.by_target()
        path, out["model"] = model_folder(model, tmp, archs)
        pyfunc = load_combined(Path(path), str(model or path))  # checked, never unpickled
        combined = pyfunc.unwrap_python_model()
        combined.batch_size = batch_size
        pyfunc.predict(stamps[: min(len(stamps), batch_size)])  # warm-up (tracing)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            pyfunc.predict(stamps)
            times.append(time.perf_counter() - t0)
        out["cnn_ms"] = 1e3 * float(np.median(times)) / len(stamps)
        out["matmul_gflops"] = matmul_gflops()
        x = crop_normalise(stamps)[0][..., None]
        for target, net in combined.networks.items():
            rate = network_rate(net, x, batch_size=batch_size, repeats=repeats)
            out[f"{target}_images_per_s"] = rate
            out[f"{target}_gflops"] = keras_flops(net) * rate / 1e9
            out[f"{target}_matmul_fraction"] = out[f"{target}_gflops"] / out["matmul_gflops"]
    return out


def benchmark_all(
    params: BenchmarkParams,
    *,
    n: int = 200,
    repeats: int = 3,
    batch_size: int = 512,
    cnn_n: int = 2048,
    pipeline_n: int = 2000,
    workers: tuple[int, ...] = (1, 2),
    train_n: int = 1024,
    model: str | None = None,
    statmorph: bool = True,
    pipeline: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every benchmark; return the report (see the module docstring).

    ``n`` stamps are timed with statmorph and the conventional code; the CNN scores the same
    stamps, tiled to ``cnn_n`` (a network's speed needs full batches to be measured fairly).
    """
    from casnet.bench.throughput import accelerators, train_throughput

    sim = override(params.simulate, stamp_size=101)
    report: dict[str, Any] = {"machine": {**machine_info(), "gpus": accelerators()},
                              "n": n, "repeats": repeats, "batch_size": batch_size,
                              "cnn_n": cnn_n, "pipeline_n": pipeline_n}  # fmt: skip
    t0 = time.perf_counter()
    stamps = [g.image.astype(np.float32) for g in simulate(sim, n=n)]
    report["simulate_s"] = time.perf_counter() - t0
    meas = benchmark_measure(n, repeats=repeats, use_statmorph=statmorph, sim=sim,
                             morph=params.morphology, progress=progress,
                             stamps=stamps)  # fmt: skip
    report["measure"] = meas
    # the conventional code on the stamps statmorph measured too (a detected target), when it ran
    report["conventional_ms"] = meas.get("casnet_ms_same", meas["casnet_ms"])
    report["peak_rss_after_measure_mb"] = _peak_rss_mb()
    tiled = np.stack([stamps[i % n] for i in range(max(cnn_n, n))])
    report.update(_cnn(tiled, params, model, batch_size, repeats))
    report["peak_rss_after_cnn_mb"] = _peak_rss_mb()
    if "statmorph_ms" in meas:
        report["statmorph_ms"] = meas["statmorph_ms"]
        report["statmorph_ca_ms"] = meas["statmorph_ca_ms"]
        report["conventional_vs_statmorph"] = meas["ratio"]
        report["conventional_vs_statmorph_ca"] = meas["ratio_ca"]
        report["cnn_vs_statmorph"] = meas["statmorph_ms"] / report["cnn_ms"]
        report["cnn_vs_statmorph_ca"] = meas["statmorph_ca_ms"] / report["cnn_ms"]
        report["pearson_c"], report["pearson_a"] = meas["pearson_c"], meas["pearson_a"]
    report["cnn_vs_conventional"] = report["conventional_ms"] / report["cnn_ms"]
    report["training"] = {
        t: train_throughput(arch, train_n) for t, arch in params.model.by_target().items()
    }
    if pipeline:
        # cold (each stage starts its LocalCluster: a one-off command) and on a running cluster
        # (the steady state of long runs, --scheduler): the start-up is a fixed cost per stage
        pipe = benchmark_pipeline(pipeline_n, workers=workers, chunk_size=params.store.chunk_size,
                                  warm=True)  # fmt: skip
        report["pipeline"] = pipe
        for stage in ("simulate", "clean", "measure"):
            for kind in ("", "warm_"):
                report[f"{stage}_{kind}speedup"] = pipe[f"{stage}_{kind}speedup"]
                report[f"{stage}_{kind}galaxies_per_s"] = pipe[f"{stage}_{kind}galaxies_per_s"]
        growth = [g for s in ("simulate", "clean", "measure")
                  for g in pipe[f"{s}_memory_growth"].values()]  # fmt: skip
        report["worst_memory_growth"] = max(growth)
        report["worst_memory_growth_ok"] = float(max(growth) <= 0.10)
    report["goals"] = {
        text: {"value": report.get(key), "threshold": threshold,
               "met": None if report.get(key) is None else bool(report[key] >= threshold)}
        for text, key, threshold in GOALS
    }  # fmt: skip
    return report


def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return format(value, spec)


def format_report(r: dict[str, Any]) -> str:
    """The harness's table (markdown) and the goals."""
    m = r["machine"]
    gpus = ", ".join(m.get("gpus", [])) or "none"
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, GPU: {gpus}; N = {r['n']} stamps "
             f"101x101 (CNN: {r['cnn_n']}, batch {r['batch_size']}); medians of "
             f"{r['repeats']} repeats", "",
             "| method | galaxies/s | ms/galaxy | x statmorph (as run) | x statmorph (C+A) "
             "| x conventional | GFLOP/s (% of matmul) | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    sm, sm_ca = r.get("statmorph_ms"), r.get("statmorph_ca_ms")
    rows = [("statmorph, as run", sm, "statmorph"), ("statmorph, C+A only", sm_ca, "statmorph"),
            ("casnet conventional C+A", r["conventional_ms"], "conventional"),
            ("casnet CNN C+A (combined model)", r["cnn_ms"], "cnn")]  # fmt: skip
    for name, ms, kind in rows:
        if ms is None:
            continue
        flops = "-"
        if kind == "cnn":
            flops = (f"C {r['concentration_gflops']:.0f} "
                     f"({100 * r['concentration_matmul_fraction']:.0f}%), A "
                     f"{r['asymmetry_gflops']:.0f} ({100 * r['asymmetry_matmul_fraction']:.0f}%)"
                     f"; matmul {r['matmul_gflops']:.0f}")  # fmt: skip
        rss = r["peak_rss_after_cnn_mb"] if kind == "cnn" else r["peak_rss_after_measure_mb"]
        lines.append(
            f"| {name} | {_fmt(1e3 / ms, '.0f')} | {_fmt(ms, '.2f')} "
            f"| {_fmt(sm / ms if sm else None)} | {_fmt(sm_ca / ms if sm_ca else None)} "
            f"| {'' if kind == 'statmorph' else _fmt(r['conventional_ms'] / ms)} "
            f"| {flops} | {rss:.0f} |"
        )
    lines += ["", "| training (params.yaml networks) | images/s | GFLOP/s |", "|---|---|---|"]
    for t, tr in r["training"].items():
        lines.append(f"| {t} | {tr['images_per_s']:.0f} | {tr['gflops']:.0f} |")
    if "pipeline" in r:
        p = r["pipeline"]
        w = p["workers"]
        warm = bool(p.get("warm"))
        head = [f"{k} worker(s) galaxies/s" for k in w] + ["speed-up"]
        if warm:
            head += [f"{k} worker(s), running cluster" for k in w] + ["speed-up"]
        lines += ["", f"| data stage (N = {p['n']}) | " + " | ".join(head)
                  + " | peak RSS growth N/10 -> N |", "|---" * (len(head) + 2) + "|"]  # fmt: skip
        for s in ("simulate", "clean", "measure"):
            kinds = ("", "warm_") if warm else ("",)
            cells = " | ".join(
                " | ".join(f"{p[f'{s}_{kind}galaxies_per_s'][k]:.1f}" for k in w)
                + f" | {p[f'{s}_{kind}speedup']:.2f}x"
                for kind in kinds
            )
            growth = p[f"{s}_memory_growth"]
            mem = (f"driver {100 * growth['driver_rss_mb']:+.1f}%, "
                   f"worker {100 * growth['worker_rss_mb']:+.1f}%")  # fmt: skip
            lines.append(f"| {s} | {cells} | {mem} |")
    lines += ["", "| goal | value | met |", "|---|---|---|"]
    for text, g in r["goals"].items():
        met = "n/a" if g["met"] is None else ("yes" if g["met"] else "NO")
        lines.append(f"| {text} | {_fmt(g['value'], '.3g')} | {met} |")
    return "\n".join(lines)


def log_to_mlflow(report: dict[str, Any], path: Path, root: Path | None = None) -> str:
    """One run in ``casnet-benchmark``: scalar figures as metrics, the JSON as an artifact."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from casnet.core.tracking import ensure_experiment, git_commit, tracking_uri

    client = MlflowClient(tracking_uri(root))
    exp = ensure_experiment(EXPERIMENT, root)
    m = report["machine"]
    tags = {"casnet.git_commit": git_commit(root), "casnet.cpu": str(m["cpu"]),
            "casnet.cores": str(m["cores"]),
            "casnet.gpus": ",".join(m.get("gpus", []))}  # fmt: skip
    run = client.create_run(exp, run_name="benchmark-all", tags=tags).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, 0) for k, v in report.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)
               and np.isfinite(v)]  # fmt: skip
    params = [Param(k, str(report[k])) for k in ("n", "repeats", "batch_size", "cnn_n",
                                                  "pipeline_n")]  # fmt: skip
    client.log_batch(run, metrics=metrics, params=params)
    client.log_artifact(run, str(path))
    client.set_terminated(run, "FINISHED")
    return run


def write_report(report: dict[str, Any], out: str | Path = "benchmarks/results.json") -> Path:
    """``benchmarks/results.json`` (NaN as null), and beside it ``all.md``: the printed tables
    with the command, the date and the commit, the page the docs publish (issue 31: no number
    copied by hand)."""
    from casnet.core.tracking import git_commit

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    page = ["# `casnet benchmark all`", "",
            f"Written by `casnet benchmark all` on {when}"
            f" (git commit `{git_commit()}`); the figures are galaxies/s unless a column says "
            "otherwise. Rerun: `make bench`.", "", format_report(report), ""]  # fmt: skip
    (out.parent / "all.md").write_text("\n".join(page))

    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, np.generic):
            return clean(v.item())
        return v

    out.write_text(json.dumps(clean(report), indent=2))
    return out
