"""Where the time goes: pyinstrument profiles of the benchmarked code paths.

``casnet benchmark profile`` profiles, on generated 101x101 stamps, the conventional measurement
(:func:`casnet.morphology.measure` per stamp), the combined network model (``crop_normalise`` and
both networks, in-process, the registered-model code path) and the per-chunk work of the data
stages (simulate, clean, measure, run in-process as a worker runs a chunk), and times what a
cold data stage pays before its first chunk: starting a LocalCluster whose workers import the
stage's modules. For each profile it writes the pyinstrument text tree and HTML page and a table
of the functions with the most *self* time (time inside compiled code the sampler cannot see
into, numba kernels or NumPy internals, counts towards the Python function that called it;
built-in functions are listed under their own names): how the hotspots were
found.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from casnet.bench.settings import BenchmarkParams
from casnet.core.config import override

__all__ = ["cluster_start_seconds", "format_profile_report", "hotspots", "profile_all"]


def hotspots(root: Any, top: int = 10) -> list[dict[str, Any]]:
    """Functions with the most self time in a pyinstrument frame tree.

    Self time is a frame's time minus its children's; pyinstrument's synthetic ``[self]`` leaves
    (time in C code called from the frame) are credited to the calling function.
    """
    own: dict[tuple[str, str], float] = defaultdict(float)
    total = max(root.time, 1e-12)

    def walk(frame: Any) -> None:
        children = frame.children
        self_time = frame.time - sum(c.time for c in children if not c.is_synthetic_leaf)
        key = (frame.function or "?", frame.file_path_short or "")
        own[key] += self_time
        for child in children:
            if not child.is_synthetic_leaf:
                walk(child)

    walk(root)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    return [{"function": f, "file": p, "self_s": t, "self_fraction": t / total}
            for (f, p), t in ranked]  # fmt: skip


def _profile(fn: Callable[[], Any], name: str, out: Path, interval: float) -> dict[str, Any]:
    from pyinstrument import Profiler

    profiler = Profiler(interval=interval)
    t0 = time.perf_counter()
    profiler.start()
    try:
        fn()
    finally:
        profiler.stop()
    wall = time.perf_counter() - t0
    (out / f"{name}.txt").write_text(profiler.output_text(unicode=False, color=False))
    (out / f"{name}.html").write_text(profiler.output_html())
    root = profiler.last_session.root_frame()
    return {"seconds": wall, "hotspots": hotspots(root), "text": str(out / f"{name}.txt"),
            "html": str(out / f"{name}.html")}  # fmt: skip


def cluster_start_seconds(module: str, workers: int) -> float:
    """Seconds from asking for a LocalCluster to its workers having imported ``module`` (what a
    cold ``casnet data`` stage pays before its first chunk), in a fresh process."""
    import subprocess
    import sys

    script = (
        "import time, importlib\n"
        "from casnet.core.parallel import executor\n"
        f"importlib.import_module({module!r})\n"  # the driver has the stage loaded already
        "t0 = time.perf_counter()\n"
        f"with executor(workers={workers}) as client:\n"
        f"    client.gather(client.map(importlib.import_module, [{module!r}] * {workers},"
        " pure=False))\n"
        "    print(time.perf_counter() - t0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"cluster start-up timing failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def profile_all(
    params: BenchmarkParams,
    *,
    n: int = 100,
    cnn_n: int = 1024,
    batch_size: int = 512,
    stage_n: int = 128,
    out: str | Path = "benchmarks/profiles",
    interval: float = 0.001,
    cluster: bool = True,
) -> dict[str, Any]:
    """Profile the conventional measurement, the combined model and the data stages' chunks.

    Returns the report (per profile: wall seconds, top self-time functions, file paths) and
    writes ``hotspots.json`` beside the profiles in ``out``.
    """

    from casnet.bench.speed import machine_info, model_folder
    from casnet.data.simulate import simulate
    from casnet.morphology import measure
    from casnet.networks.trust import load_combined
    from casnet.pipeline import clean as clean_stage
    from casnet.pipeline import measure as measure_stage
    from casnet.pipeline import simulate as simulate_stage
    from casnet.pipeline.settings import DaskConfig

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sim = override(params.simulate, stamp_size=101)
    stamps = [g.image.astype(np.float64) for g in simulate(sim, n=n)]
    measure(stamps[0], config=params.morphology)  # compiled kernels loaded before profiling
    report: dict[str, Any] = {"machine": machine_info(), "n": n, "cnn_n": cnn_n,
                              "batch_size": batch_size, "stage_n": stage_n,
                              "profiles": {}}  # fmt: skip
    prof = report["profiles"]
    prof["conventional"] = _profile(
        lambda: [measure(s, config=params.morphology) for s in stamps], "conventional", out,
        interval,
    )  # fmt: skip
    prof["conventional"]["ms_per_galaxy"] = 1e3 * prof["conventional"]["seconds"] / n

    tiled = np.stack([stamps[i % n] for i in range(cnn_n)]).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        archs = {"concentration": params.model.concentration,
                 "asymmetry": params.model.asymmetry}  # fmt: skip
        path, _ = model_folder(None, tmp, archs)
        pyfunc = load_combined(Path(path), str(path))  # checked, never unpickled
        pyfunc.unwrap_python_model().batch_size = batch_size
        pyfunc.predict(tiled[:batch_size])  # tracing outside the profile
        prof["cnn"] = _profile(lambda: pyfunc.predict(tiled), "cnn", out, interval)
        prof["cnn"]["ms_per_galaxy"] = 1e3 * prof["cnn"]["seconds"] / cnn_n

        serial = DaskConfig(workers=0)  # in-process: the chunks' own work, no cluster
        store = params.store.model_copy(update={"chunk_size": min(64, stage_n)})
        base = Path(tmp)
        steps = {
            "simulate": lambda: simulate_stage.run(params.simulate, stage_n, store,
                                                   base / "sim", dask=serial,
                                                   show_progress=False),
            "clean": lambda: clean_stage.run(params.clean, store, base / "sim", base / "clean",
                                             dask=serial, show_progress=False),
            "measure": lambda: measure_stage.run(params.morphology, base / "clean",
                                                 base / "m.parquet", dask=serial,
                                                 show_progress=False),
        }  # fmt: skip
        for stage, step in steps.items():
            prof[f"{stage}_stage"] = _profile(step, f"{stage}_stage", out, interval)
            prof[f"{stage}_stage"]["ms_per_galaxy"] = (
                1e3 * prof[f"{stage}_stage"]["seconds"] / stage_n
            )
    if cluster:
        report["cluster_start_s"] = {
            f"{w} worker(s)": cluster_start_seconds("casnet.pipeline.measure", w) for w in (1, 2)
        }
    (out / "hotspots.json").write_text(json.dumps(report, indent=2))
    return report


def format_profile_report(r: dict[str, Any], top: int = 6) -> str:
    """The top self-time functions of each profile (markdown)."""
    lines = []
    for name, p in r["profiles"].items():
        lines += ["", f"{name}: {p['ms_per_galaxy']:.2f} ms/galaxy under the profiler "
                  f"({p['text']})", "", "| function | file | self s | share |",
                  "|---|---|---|---|"]  # fmt: skip
        for h in p["hotspots"][:top]:
            lines.append(f"| {h['function']} | {h['file']} | {h['self_s']:.3f} "
                         f"| {100 * h['self_fraction']:.0f}% |")  # fmt: skip
    if "cluster_start_s" in r:
        starts = ", ".join(f"{k}: {v:.2f} s" for k, v in r["cluster_start_s"].items())
        lines += ["", f"cold data stage: LocalCluster start with the measure stage imported "
                  f"on the workers: {starts}"]  # fmt: skip
    return "\n".join(lines).lstrip()
