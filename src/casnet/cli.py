"""The ``casnet`` command line.

Every command loads ``params.yaml`` once (``--params`` to choose another file), passes the typed
sections down, and turns a :class:`~casnet.errors.CasnetError` into a one-line message and a
non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from casnet.config import load_params, override
from casnet.errors import CasnetError

__all__ = ["app", "main"]

app = typer.Typer(
    name="casnet",
    help="Concentration and asymmetry of galaxies, conventionally and with CNNs "
    "(Tohill et al. 2021).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
benchmark_app = typer.Typer(
    help="Speed and agreement benchmarks (print figures).", no_args_is_help=True
)
app.add_typer(benchmark_app, name="benchmark")
data_app = typer.Typer(
    help="Data stages: simulate | ingest -> clean -> measure (stores under data/).",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

ParamsOption = Annotated[
    Path | None,
    typer.Option("--params", help="Parameters file (default: params.yaml at the project root)."),
]


def _stage(name: str):
    """Decorate a data-stage command: an input error names the stage that met it."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except CasnetError as exc:
                text = str(exc)
                prefix = f"{name}: "
                raise type(exc)(text if text.startswith(prefix) else prefix + text) from None

        return run

    return wrap


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"casnet: error: {message}", err=True)
    return typer.Exit(code)


def _hdu(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.lstrip("-").isdigit() else value


@app.command()
def measure(
    paths: Annotated[list[Path], typer.Argument(help="FITS stamps, or folders of them.")],
    hdu: Annotated[
        str | None, typer.Option(help="HDU index or EXTNAME (default: first image HDU).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json | csv | fits")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here.")] = None,
    params: ParamsOption = None,
) -> None:
    """Measure C, A and companions on FITS stamps (one row per file, bad files flagged)."""
    from tqdm import tqdm

    from casnet.catalog import FORMATS, write_rows
    from casnet.fitsio import expand_paths, read_image
    from casnet.morphology import COLUMNS, Flag, measure

    if fmt not in FORMATS:
        raise _fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}", 2)
    if fmt == "fits" and out is None:
        raise _fail("--format fits needs --out FILE", 2)
    cfg = load_params(params).morphology
    files = expand_paths(paths)
    if not files:
        raise _fail("no FITS files found in " + ", ".join(map(str, paths)))
    rows = []
    for f in tqdm(files, desc="measure", unit="stamp", disable=len(files) < 20, file=sys.stderr):
        row: dict = {"source": str(f)}
        try:
            image, _ = read_image(f, _hdu(hdu))
        except CasnetError as exc:
            if len(files) == 1:
                raise _fail(str(exc)) from None
            row.update(dict.fromkeys(COLUMNS, float("nan")))
            row.update(n_sky_cells=0, flag=int(Flag.BAD_INPUT), flag_reasons=f"BAD_INPUT: {exc}")
        else:
            row.update(measure(image, config=cfg).to_dict())
        rows.append(row)
    text = write_rows(rows, fmt, out)  # type: ignore[arg-type]
    if text is not None:
        typer.echo(text)
    elif out is not None:
        typer.echo(f"wrote {len(rows)} rows to {out}", err=True)


@app.command()
def stamps(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the FITS stamps.")],
    n: Annotated[int, typer.Option(help="How many stamps.")] = 12,
    seed: Annotated[int | None, typer.Option(help="Master seed (default: simulate.seed).")] = None,
    params: ParamsOption = None,
) -> None:
    """Generate CANDELS-like GalSim stamps as FITS (primary: observed; HDU TRUTH: noiseless)."""
    from astropy.io import fits
    from tqdm import tqdm

    from casnet.fitsio import write_image
    from casnet.sources.simulate import simulate

    cfg = override(load_params(params).simulate, seed=seed)
    count = n
    if count < 1:
        raise _fail(f"--n must be >= 1, got {count}", 2)
    out.mkdir(parents=True, exist_ok=True)
    for g in tqdm(simulate(cfg, n=count), total=count, desc="stamps", file=sys.stderr):
        header = fits.Header()
        header["SEED"] = (cfg.seed, "casnet simulate master seed")
        header["INDEX"] = (g.index, "galaxy index in the simulation")
        header["SKYSIG"] = (g.sky_sigma, "per-pixel sky noise added")
        header["PIXSCALE"] = (cfg.pixel_scale, "arcsec/pixel")
        header["GALID"] = (g.galaxy_id, "casnet galaxy id")
        for key, value in g.params.items():
            if isinstance(value, float) and not math.isfinite(value):
                continue  # FITS headers cannot hold NaN: an undefined parameter is left out
            header[f"HIERARCH SIM {key.upper()}"] = value
        write_image(
            out / f"stamp_{g.index:05d}.fits", g.image, header=header, extra={"TRUTH": g.truth}
        )
    typer.echo(f"wrote {count} stamps to {out}", err=True)


@benchmark_app.command("measure")
def benchmark_measure_cmd(
    n: Annotated[int | None, typer.Option(help="Stamps (default: benchmark.n).")] = None,
    repeats: Annotated[int | None, typer.Option(help="Repeats (median reported).")] = None,
    statmorph: Annotated[bool, typer.Option(help="Compare with statmorph if installed.")] = True,
    statmorph_n: Annotated[
        int | None, typer.Option(help="Stamps given to statmorph (default: all).")
    ] = None,
    params: ParamsOption = None,
) -> None:
    """ms/galaxy of casnet vs statmorph on the same stamps, and their C/A agreement."""
    from casnet.benchmark import benchmark_measure, format_measure_report

    p = load_params(params)
    report = benchmark_measure(
        n or p.benchmark.n,
        repeats=repeats or p.benchmark.repeats,
        use_statmorph=statmorph,
        statmorph_n=statmorph_n or p.benchmark.statmorph_n,
        sim=override(p.simulate, stamp_size=101),
        morph=p.morphology,
        progress=True,
    )
    typer.echo(format_measure_report(report))


@benchmark_app.command("errors")
def benchmark_errors_cmd(
    n: Annotated[int, typer.Option(help="Simulated galaxies (before the cuts).")] = 600,
    statmorph: Annotated[bool, typer.Option(help="Compare with statmorph if installed.")] = True,
    out: Annotated[Path, typer.Option(help="Folder of the table, rows and figure.")] = Path(
        "benchmarks"
    ),
    params: ParamsOption = None,
) -> None:
    """Error budget: bias and scatter of C and A against the idealised truth, by galaxy kind
    and SNR_p bin, for casnet and statmorph on the same cleaned stamps (writes
    OUT/error_budget.{md,json,png} and the per-galaxy rows OUT/error_budget_rows.csv)."""
    from casnet.error_budget import budget_table, error_budget, format_budget, plot_budget

    p = load_params(params)
    rows = error_budget(
        n, sim=p.simulate, clean=p.clean, morph=p.morphology, use_statmorph=statmorph,
        progress=True,
    )  # fmt: skip
    table = budget_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / "error_budget_rows.csv", index=False)
    table.to_json(out / "error_budget.json", orient="records", indent=1)
    text = format_budget(table)
    (out / "error_budget.md").write_text(text + "\n")
    figure = plot_budget(rows, out / "error_budget.png")
    typer.echo(text)
    typer.echo(f"rows, table and figure: {out}/error_budget_rows.csv, error_budget.md, {figure}")


StoreOption = Annotated[Path, typer.Option("--out", "-o", help="Output store (a directory).")]
InStoreOption = Annotated[Path, typer.Option("--in", "-i", help="Input store (a directory).")]
ChunkOption = Annotated[
    int | None, typer.Option("--chunk-size", help="Galaxies per chunk (default: store.chunk_size).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
SchedulerOption = Annotated[
    str | None,
    typer.Option(help="Dask scheduler address (tcp://host:8786); default: a LocalCluster."),
]
WorkersOption = Annotated[
    int | None, typer.Option(help="LocalCluster workers (default: all cores; 0: no Dask).")
]


def _dask_cfg(params, scheduler: str | None, workers: int | None):
    return override(params.dask, scheduler=scheduler, workers=workers)


def _store_cfg(params, chunk_size: int | None):
    return (
        params.store
        if chunk_size is None
        else params.store.model_copy(update={"chunk_size": chunk_size})
    )


@data_app.command("simulate")
@_stage("simulate")
def data_simulate(
    out: StoreOption = Path("data/simulated"),
    n: Annotated[int | None, typer.Option(help="Galaxies (default: data.n_galaxies).")] = None,
    seed: Annotated[int | None, typer.Option(help="Master seed (default: simulate.seed).")] = None,
    chunk_size: ChunkOption = None,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Simulate CANDELS-like stamps with noiseless truth into a store."""
    from casnet.stages import simulate as stage

    p = load_params(params)
    sim = override(p.simulate, seed=seed)
    count = override(p.data, n_galaxies=n).n_galaxies
    store = stage.run(sim, count, _store_cfg(p, chunk_size), out,
                      dask=_dask_cfg(p, scheduler, workers), show_progress=not quiet)  # fmt: skip
    typer.echo(f"simulate: {len(store)} galaxies -> {out}", err=True)


@data_app.command("source")
@_stage("source")
def data_source(
    out: StoreOption = Path("data/raw"),
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """The pipeline's first stage: simulate or ingest, as data.source says (params.yaml)."""
    p = load_params(params)
    d = p.data
    if d.source == "simulate":
        from casnet.stages import simulate as stage

        dask = _dask_cfg(p, scheduler, workers)
        store = stage.run(p.simulate, d.n_galaxies, p.store, out, dask=dask,
                          show_progress=not quiet)  # fmt: skip
    else:
        from casnet.stages import ingest as stage

        store = stage.run(p.ingest, p.store, list(d.input), out, catalog=d.catalog,
                          labels=d.labels, show_progress=not quiet)  # fmt: skip
    typer.echo(f"source ({d.source}): {len(store)} galaxies -> {out}", err=True)


@data_app.command("ingest")
@_stage("ingest")
def data_ingest(
    inputs: Annotated[
        list[str],
        typer.Option("--input", help="FITS cutouts: files, folders or globs; or one mosaic."),
    ],
    out: StoreOption = Path("data/ingested"),
    catalog: Annotated[
        Path | None, typer.Option(help="Positions on the mosaic (CSV, ECSV or FITS table).")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="External C/A labels joined by galaxy_id.")
    ] = None,
    hdu: Annotated[str | None, typer.Option(help="HDU index or EXTNAME.")] = None,
    chunk_size: ChunkOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Ingest real FITS data (cutout files, or a mosaic + catalogue) into a store."""
    from casnet.stages import ingest as stage

    p = load_params(params)
    cfg = override(p.ingest, hdu=_hdu(hdu))
    stage.run(cfg, _store_cfg(p, chunk_size), inputs, out, catalog=catalog, labels=labels,
              show_progress=not quiet)  # fmt: skip


@data_app.command("clean")
@_stage("clean")
def data_clean(
    source: InStoreOption = Path("data/raw"),
    out: StoreOption = Path("data/cleaned"),
    chunk_size: ChunkOption = None,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Remove neighbours (galclean): other sources replaced by sky samples."""
    from casnet.stages import clean as stage

    p = load_params(params)
    store = stage.run(p.clean, _store_cfg(p, chunk_size), source, out,
                      dask=_dask_cfg(p, scheduler, workers), show_progress=not quiet)  # fmt: skip
    cat = store.catalog
    flagged = int((cat["clean_flag"] > 0).sum())
    typer.echo(
        f"clean: {len(cat)} galaxies -> {out}; mean replaced fraction "
        f"{cat['clean_replaced_fraction'].mean():.3f}; {flagged} flagged",
        err=True,
    )


@data_app.command("measure")
@_stage("measure")
def data_measure(
    source: InStoreOption = Path("data/cleaned"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet table.")] = Path(
        "data/measured.parquet"
    ),
    truth: Annotated[bool, typer.Option(help="Also measure the truth array (*_true).")] = True,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Conventional C and A of every stamp of a store (and of its truth images)."""
    from casnet.catalog import format_table
    from casnet.stages import measure as stage

    p = load_params(params)
    done = stage.run(p.morphology, source, out, with_truth=truth,
                     dask=_dask_cfg(p, scheduler, workers), show_progress=not quiet)  # fmt: skip
    typer.echo(f"measure: {done.n} galaxies ({done.n_ok} without flags) -> {out}", err=True)
    if not quiet:
        cols = ["galaxy_id", "concentration", "asymmetry", "snr_p", "r_petro", "flag"]
        cols += [c for c in ("concentration_true", "asymmetry_true") if c in done.head]
        typer.echo(format_table(done.head[cols].to_dict("records"), cols))
        if done.n > len(done.head):
            typer.echo(f"... {done.n - len(done.head)} more rows in {out}")


MetricsOption = Annotated[Path | None, typer.Option(help="Write the stage metrics (JSON) here.")]
PlotsOption = Annotated[Path | None, typer.Option(help="Write the stage's figures (PNG) here.")]


def _report(stage: str, metrics: dict, path: Path | None) -> None:
    import json

    from casnet.stages._common import write_metrics

    if path is not None:
        write_metrics(path, metrics)
    typer.echo(f"{stage}: " + json.dumps(metrics, sort_keys=True), err=True)


@data_app.command("select")
@_stage("select")
def data_select(
    source: InStoreOption = Path("data/cleaned"),
    measurements: Annotated[Path, typer.Option(help="Parquet from 'casnet data measure'.")] = Path(
        "data/measured.parquet"
    ),
    out: StoreOption = Path("data/selected"),
    metrics: MetricsOption = None,
    plots: PlotsOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Cuts (SNR_p, R_p, flags), then crop 60x60 + normalise; removed galaxies in rejects."""
    import numpy as np

    from casnet.stages import select as stage

    p = load_params(params)
    store, m = stage.run(p.select, p.store, source, measurements, out, show_progress=not quiet)
    _report("select", m, metrics)
    if plots is not None:
        from casnet.figures import mag_size, stamp_grid
        from casnet.store import StampStore

        cat = StampStore(source).catalog
        if {"mag", "r_half_px"} <= set(cat.columns):
            chosen = cat["galaxy_id"].isin(store.catalog["galaxy_id"]).to_numpy()
            mag_size(cat["mag"].to_numpy(), cat["r_half_px"].to_numpy(), chosen,
                     plots / "mag_size.png")  # fmt: skip
        sel = store.catalog
        for key, name in (("label_concentration", "high_c"), ("label_asymmetry", "high_a")):
            if len(sel) == 0:
                break
            top = np.argsort(-sel[key].to_numpy())[:16]
            titles = [f"{sel.galaxy_id[i]}\nC={sel.label_concentration[i]:.2f} "
                      f"A={sel.label_asymmetry[i]:.2f}" for i in top]  # fmt: skip
            images = [store.array("image")[int(i)] for i in top]
            stamp_grid(images, titles, plots / f"grid_{name}.png")


@data_app.command("split")
@_stage("split")
def data_split(
    source: InStoreOption = Path("data/selected"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for train/val/test.")] = Path(
        "data/split"
    ),
    metrics: MetricsOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Train/val/test by a hash of galaxy_id (80/10/10 by default)."""
    from casnet.stages import split as stage

    p = load_params(params)
    _, m = stage.run(p.split, p.store, source, out, show_progress=not quiet)
    _report("split", m, metrics)


@data_app.command("augment")
@_stage("augment")
def data_augment(
    source: InStoreOption = Path("data/split/train"),
    out: StoreOption = Path("data/augmented"),
    metrics: MetricsOption = None,
    plots: PlotsOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Selective augmentation of rare C/A bins of the training split."""
    from casnet.stages import augment as stage

    p = load_params(params)
    store, m = stage.run(p.augment, p.store, source, out, show_progress=not quiet)
    _report("augment", m, metrics)
    if plots is not None:
        from casnet.figures import label_histograms
        from casnet.store import StampStore

        before, after = StampStore(source).catalog, store.catalog
        keys = ("label_concentration", "label_asymmetry")
        label_histograms({k: before[k].to_numpy() for k in keys},
                         {k: after[k].to_numpy() for k in keys}, p.augment.bins,
                         plots / "augment_distributions.png")  # fmt: skip


@app.command()
def show(
    store: Annotated[Path, typer.Argument(help="A store directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("grid.png"),
    n: Annotated[int, typer.Option(help="How many stamps.")] = 16,
    array: Annotated[str, typer.Option(help="Which array: image, truth, ...")] = "image",
    measurements: Annotated[
        Path | None, typer.Option(help="Parquet from 'casnet data measure' for C/A labels.")
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(help="Show the highest values of this column first (e.g. asymmetry)."),
    ] = None,
) -> None:
    """Draw a grid of stamps with ids and C/A when known (like the paper's Fig. 3)."""
    import pandas as pd

    from casnet.figures import stamp_grid
    from casnet.store import StampStore

    st = StampStore(store)
    cat = st.catalog.reset_index(drop=True).assign(_row=lambda d: range(len(d)))
    if measurements is not None:
        meas = pd.read_parquet(measurements)
        keep = [c for c in ("galaxy_id", "concentration", "asymmetry") if c in meas]
        cat = cat.drop(columns=[c for c in keep if c != "galaxy_id" and c in cat]).merge(
            meas[keep], on="galaxy_id", how="left"
        )
    if sort is not None:
        if sort not in cat:
            raise _fail(f"--sort {sort!r}: no such column (have {', '.join(cat.columns)})", 2)
        cat = cat.sort_values(sort, ascending=False, na_position="last")
    cat = cat.head(max(n, 0))
    if cat.empty:
        raise _fail(f"{store}: the store is empty")
    rows = sorted(cat["_row"].tolist())
    arr = st.array(array)
    images = {r: arr[r] for r in rows}
    titles = []
    for _, r in cat.iterrows():
        t = str(r["galaxy_id"])
        c = r.get("concentration", r.get("label_concentration"))
        a = r.get("asymmetry", r.get("label_asymmetry"))
        if c is not None and pd.notna(c):
            t += f"\nC={c:.2f} A={a:.2f}"
        titles.append(t)
    path = stamp_grid([images[r] for r in cat["_row"]], titles, out)
    typer.echo(f"grid of {len(titles)} stamps written to {path}")


@benchmark_app.command("data")
def benchmark_data_cmd(
    n: Annotated[int, typer.Option(help="Galaxies of the large run (the small one: N/5).")] = 500,
    chunk_size: Annotated[int, typer.Option(help="Galaxies per chunk.")] = 64,
) -> None:
    """simulate and clean ms/galaxy (one worker) and peak memory at N/5 and N."""
    from casnet.benchmark import benchmark_pipeline, format_pipeline_report

    if n < 1:
        raise _fail(f"--n must be >= 1, got {n}", 2)
    report = benchmark_pipeline(n, workers=(1,), n_small=max(n // 5, 1), chunk_size=chunk_size,
                                stages=("simulate", "clean"))  # fmt: skip
    typer.echo(format_pipeline_report(report))
    for s in ("simulate", "clean"):
        typer.echo(f"{s}: {1e3 / report[f'{s}_galaxies_per_s'][1]:.2f} ms/galaxy")


@benchmark_app.command("pipeline")
def benchmark_pipeline_cmd(
    n: Annotated[int, typer.Option(help="Galaxies (memory is also measured at N/10).")] = 2000,
    workers: Annotated[str, typer.Option(help="Worker counts to compare, e.g. 1,2.")] = "1,2",
    chunk_size: Annotated[int, typer.Option(help="Galaxies per chunk.")] = 64,
) -> None:
    """Data-stage throughput (galaxies/s) per worker count, speed-up, and memory at two N.

    Throughput both with a LocalCluster started by each stage (cold) and on a running cluster
    (warm, as with --scheduler).
    """
    import json
    from pathlib import Path

    from casnet.benchmark import benchmark_pipeline, format_pipeline_report

    try:
        counts = tuple(int(w) for w in workers.split(","))
    except ValueError:
        raise _fail(f"--workers must be comma-separated integers, got {workers!r}", 2) from None
    if n < 1 or not counts or min(counts) < 0:
        raise _fail("--n must be >= 1 and worker counts >= 0", 2)
    report = benchmark_pipeline(n, workers=counts, chunk_size=chunk_size, warm=True)
    typer.echo(format_pipeline_report(report))
    out = Path("benchmarks/pipeline.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    typer.echo(f"written to {out}")


def _budget(value: str | None) -> int | str | None:
    """A budget flag: ``params`` (or absent) keeps params.yaml; otherwise the number (validated
    by the config, so ``0`` fails with the params.yaml message)."""
    if value is None or value == "params":
        return None
    try:
        return int(value)
    except ValueError:
        return value  # rejected by the typed config with a message naming the key


def _search_overrides(items: list[str]) -> dict:
    import yaml

    changes = {}
    for item in (part.strip() for entry in items for part in entry.split(";")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise _fail(f"--search takes KEY=VALUE (e.g. filters=[8,32]), got {item!r}", 2)
        changes[key.strip()] = yaml.safe_load(value)
    return changes


@app.command()
def tune(
    target: Annotated[str, typer.Option(help="concentration | asymmetry.")],
    max_trials: Annotated[str | None, typer.Option(help="Trials (default: params.yaml).")] = None,
    epochs: Annotated[
        str | None, typer.Option(help="Maximum epochs per trial (default: params.yaml).")
    ] = None,
    patience: Annotated[
        str | None, typer.Option(help="Early-stopping patience (default: params.yaml).")
    ] = None,
    search: Annotated[
        list[str] | None,
        typer.Option(
            help="Override search params: KEY=VALUE (YAML value), repeatable or ';'-separated, "
            "e.g. 'filters=[8,32];dense_units=[128,256]'."
        ),
    ] = None,
    train: Annotated[Path, typer.Option(help="Training store.")] = Path("data/augmented"),
    val: Annotated[Path, typer.Option(help="Validation store.")] = Path("data/split/val"),
    role: Annotated[
        str, typer.Option(help="single | chief | worker (Keras Tuner distributed mode).")
    ] = "single",
    oracle: Annotated[
        str | None, typer.Option(help="HOST:PORT of the chief's oracle (chief and workers).")
    ] = None,
    tuner_id: Annotated[str | None, typer.Option(help="Unique id of a worker.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-epoch output.")] = False,
    params: ParamsOption = None,
) -> None:
    """Bayesian optimisation of a network's architecture; every trial an MLflow run.

    Rerunning with the same params and data resumes the search. The MLflow store is the
    project's (sqlite:///<root>/mlflow.db) unless MLFLOW_TRACKING_URI is set.
    """
    from casnet.models.data import TARGETS

    if target not in TARGETS:
        raise _fail(f"--target must be one of {', '.join(TARGETS)}, got {target!r}", 2)
    if role not in ("single", "chief", "worker"):
        raise _fail(f"--role must be single, chief or worker, got {role!r}", 2)
    changes = _search_overrides(search or [])
    changes.update(max_trials=_budget(max_trials), max_epochs=_budget(epochs),
                   patience=_budget(patience))  # fmt: skip
    space = override(load_params(params).search, source="search (command line)", **changes)

    from casnet.tuning import check_inputs, format_trials
    from casnet.tuning import tune as run_search

    check_inputs(target, train, val)  # a clear message before any training
    result = run_search(target, space, train=train, val=val, role=role, oracle=oracle,
                        tuner_id=tuner_id, verbose=0 if quiet else 1)  # fmt: skip
    typer.echo(f"search {result.key}: parent run {result.parent_run_id}")
    if role != "worker":
        typer.echo(format_trials(result))
        if result.best_trial_id is None:
            raise _fail("no trial completed: see the failed runs in the MLflow UI (make ui)")
        typer.echo(f"best trial {result.best_trial_id}: val RMSE {result.best_val_rmse:.4f} "
                   f"(baseline {result.baseline['baseline_val_rmse']:.4f})")  # fmt: skip


@app.command()
def train(
    target: Annotated[str, typer.Option(help="concentration | asymmetry.")],
    from_tune: Annotated[
        str | None,
        typer.Option(
            help="Hyperparameters from a search: its parent run id, or 'best'. "
            "Default: params.yaml (the paper's Table 1)."
        ),
    ] = None,
    epochs: Annotated[
        str | None, typer.Option(help="Maximum epochs (default: params.yaml).")
    ] = None,
    patience: Annotated[
        str | None, typer.Option(help="Early-stopping patience (default: params.yaml).")
    ] = None,
    train_store: Annotated[Path, typer.Option("--train", help="Training store.")] = Path(
        "data/augmented"
    ),
    val: Annotated[Path, typer.Option(help="Validation store.")] = Path("data/split/val"),
    test: Annotated[Path, typer.Option(help="Test store.")] = Path("data/split/test"),
    register: Annotated[bool, typer.Option(help="Register the model and update aliases.")] = True,
    promote: Annotated[
        bool, typer.Option("--promote", help="Make it champion even if it does not win.")
    ] = False,
    promote_if: Annotated[
        str | None, typer.Option(hidden=True, help="true|false: --promote for MLproject.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-epoch output.")] = False,
    params: ParamsOption = None,
) -> None:
    """Train a network (early stopping, best weights), log it to MLflow and register it.

    The new version is `challenger`; it becomes `champion` if its validation RMSE beats the
    champion's on the same validation set (or with --promote), and then the combined model
    `casnet` is re-registered around the two champions.
    """
    from casnet.models.data import TARGETS

    if target not in TARGETS:
        raise _fail(f"--target must be one of {', '.join(TARGETS)}, got {target!r}", 2)
    if from_tune in ("", "none", "params"):
        from_tune = None
    if promote_if is not None:
        if promote_if.lower() not in ("true", "false"):
            raise _fail(f"promote must be true or false, got {promote_if!r}", 2)
        promote = promote or promote_if.lower() == "true"
    p = load_params(params)
    budget = override(p.search, source="search (command line)", max_epochs=_budget(epochs),
                      patience=_budget(patience))  # fmt: skip

    from casnet.tuning import check_inputs

    check_inputs(target, train_store, val)
    check_inputs(target, test, val)
    from casnet import registry, training

    if from_tune is None:
        arch, source = getattr(p.model, target), "params.yaml"
    else:
        arch, source = training.architecture_from_search(
            target, from_tune, data={"train": train_store, "val": val}
        )
    typer.echo(f"{target}: {arch.model_dump()} (from {source})")
    result = training.train(target, arch, train=train_store, val=val, test=test, budget=budget,
                            source=source, verbose=0 if quiet else 1)  # fmt: skip
    m = result.metrics
    summary = "; ".join(
        f"{name} RMSE {m[f'{key}_rmse']:.4f}, MAE {m[f'{key}_mae']:.4f}, "
        f"r {m[f'{key}_pearson_r']:.3f}"
        for name, key in (("val", "final_val"), ("test", "test"))
    )
    typer.echo(f"run {result.run_id}: {result.epochs} epochs; {summary}")
    if not register:
        return
    outcome = registry.register_network(result.run_id, result.model_uri, target, val_store=val,
                                        val_rmse=m["final_val_rmse"], promote=promote)  # fmt: skip
    status = "champion" if outcome.promoted else "not promoted"
    typer.echo(f"registered {outcome.name} version {outcome.version} (challenger); "
               f"{status}: {outcome.reason}")  # fmt: skip
    if outcome.promoted:
        try:
            version = registry.register_combined()
        except CasnetError as exc:  # the other network has no champion yet
            typer.echo(f"combined model not registered yet: {exc}")
        else:
            typer.echo(f"registered {registry.COMBINED} version {version} (champion)")


@app.command()
def pull(
    uri: Annotated[str, typer.Argument(help="models:/casnet@champion, models:/NAME/VERSION.")],
    dest: Annotated[Path, typer.Option(help="Folder to download into.")] = Path("models"),
) -> None:
    """Download a registered model from the project's MLflow store (or MLFLOW_TRACKING_URI)."""
    from casnet import registry

    path = registry.pull(uri, dest)
    typer.echo(f"{uri} -> {path}")


@app.command()
def predict(
    inputs: Annotated[list[Path], typer.Argument(help="FITS files, folders, or a casnet store.")],
    model: Annotated[
        str, typer.Option(help="models:/NAME@ALIAS, models:/NAME/VERSION or a local model folder.")
    ] = "models:/casnet@champion",
    out: Annotated[Path, typer.Option(help="Catalogue: .parquet, .csv, .fits or .ecsv.")] = Path(
        "catalog.parquet"
    ),
    with_conventional: Annotated[
        bool, typer.Option("--with-conventional", help="Add our conventional C and A columns.")
    ] = False,
    hdu: Annotated[str | None, typer.Option(help="HDU index or EXTNAME of FITS inputs.")] = None,
    chunk_size: Annotated[int, typer.Option(help="Galaxies per chunk (unit of work).")] = 256,
    scheduler: SchedulerOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Dask LocalCluster workers (0: in-process). Default: in-process up to "
            "4 chunks, else all cores."
        ),
    ] = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """C and A of new stamps from a registered model; every input gets a row (bad ones flagged)."""
    from casnet import predict as scoring
    from casnet import registry

    if chunk_size < 1:
        raise _fail(f"--chunk-size must be >= 1, got {chunk_size}", 2)
    if out.suffix.lower() not in scoring.OUTPUT_FORMATS:
        raise _fail(f"--out must end in one of {', '.join(scoring.OUTPUT_FORMATS)}", 2)
    chunks = scoring.plan_chunks(inputs, chunk_size)
    if workers is None and scheduler is None and len(chunks) <= 4:
        workers = 0
    local = Path(model)
    if not local.exists():
        import tempfile

        local = registry.pull(model, Path(tempfile.mkdtemp(prefix="casnet-model-")))
    table = scoring.predict(
        inputs, str(local), chunk_size=chunk_size, hdu=_hdu(hdu), scheduler=scheduler,
        workers=workers, progress=not quiet,
        conventional=load_params(params).morphology if with_conventional else None,
    )  # fmt: skip
    scoring.write_catalog(table, out)
    bad = int(table["flag"].sum())
    typer.echo(f"{len(table)} galaxies scored with {model} -> {out} ({bad} flagged)")


def _nested_overrides(section, items: list[str], source: str):
    """``a.b=VALUE`` overrides (YAML values) of a nested params section, validated."""
    import yaml

    data = section.model_dump(mode="json")
    for item in (part.strip() for entry in items for part in entry.split(";")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise _fail(f"--set takes KEY=VALUE (e.g. noise.max_galaxies=20), got {item!r}", 2)
        *parents, leaf = key.strip().split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise _fail(f"--set: {key!r} is not a key of {source}", 2)
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    from pydantic import ValidationError

    from casnet.config import _format_validation_error

    try:
        return type(section).model_validate(data)
    except ValidationError as exc:
        raise CasnetError(_format_validation_error(exc, f"{source} (command line)",
                                                   type(section))) from None  # fmt: skip


@app.command()
def evaluate(
    model: Annotated[
        str,
        typer.Option(
            help="models:/NAME@ALIAS, models:/NAME/VERSION, a model folder, or "
            "http://HOST:PORT of mlflow models serve."
        ),
    ] = "models:/casnet@champion",
    suite: Annotated[
        list[str] | None, typer.Option(help="test | noise | redshift | all (repeatable).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override evaluate params, KEY=VALUE (YAML), e.g. "
            "'redshift.n_galaxies=20;noise.max_galaxies=30'.",
        ),
    ] = None,
    test: Annotated[Path, typer.Option(help="Test store.")] = Path("data/split/test"),
    val: Annotated[Path, typer.Option(help="Validation store (noise suite).")] = Path(
        "data/split/val"
    ),
    raw: Annotated[Path, typer.Option(help="Raw stamps of the val galaxies (noise suite).")] = Path(
        "data/cleaned"
    ),
    params: ParamsOption = None,
) -> None:
    """Test-set, noise and redshift suites (Sec. 4) against a registered or served model; one
    MLflow run (experiment casnet-evaluate) with metrics, figures and tables; prints a summary."""
    from casnet.evaluation.run import SUITES
    from casnet.evaluation.run import evaluate as run_evaluation

    names = [n.strip() for entry in (suite or ["all"]) for n in entry.split(",") if n.strip()]
    if "all" in names:
        names = list(SUITES)
    bad = [n for n in names if n not in SUITES]
    if bad:
        raise _fail(f"--suite must be test, noise, redshift or all, got {', '.join(bad)}", 2)
    p = load_params(params)
    if set_:
        p = p.model_copy(update={"evaluate": _nested_overrides(p.evaluate, set_, "evaluate")})
    result = run_evaluation(model, names, p, test=test, val=val, raw=raw)
    typer.echo(result.summary)
    typer.echo(f"evaluation run {result.run_id} (experiment casnet-evaluate)")


#: training images of the paper after augmentation (Tohill et al. 2021 Sec. 3.2)
PAPER_TRAINING_IMAGES = 141_453


@benchmark_app.command("train")
def benchmark_train_cmd(
    n: Annotated[int, typer.Option(help="Random 60x60 images per timed epoch.")] = 2048,
    repeats: Annotated[int, typer.Option(help="Timed epochs (median reported).")] = 1,
    batch_size: Annotated[
        int | None, typer.Option(help="Batch size (default: each network's, params.yaml).")
    ] = None,
    params: ParamsOption = None,
) -> None:
    """Training and inference throughput of the params.yaml (Table 1) networks, and what a
    paper-scale search costs at that speed (writes benchmarks/train.json)."""
    import json

    from casnet.benchmark import machine_info
    from casnet.models.throughput import (
        accelerators,
        forward_flops,
        matmul_gflops,
        predict_throughput,
        train_throughput,
    )

    if n < 1 or repeats < 1 or (batch_size is not None and batch_size < 1):
        raise _fail("--n, --repeats and --batch-size must be >= 1", 2)
    import keras

    p = load_params(params)
    machine = {**machine_info(), "gpus": accelerators(), "keras_backend": keras.config.backend()}
    ref = matmul_gflops()
    rows = {}
    for target in ("asymmetry", "concentration"):
        arch = getattr(p.model, target)
        train = train_throughput(arch, n, batch_size=batch_size, repeats=repeats)
        pred = predict_throughput(arch, n, batch_size=batch_size or 512, repeats=repeats)
        rows[target] = {"train": train, "predict": pred,
                        "gflop_per_image": forward_flops(arch) / 1e9}  # fmt: skip
    lines = [
        f"machine: {machine['cpu']}, {machine['cores']} cores, GPU: "
        f"{', '.join(machine['gpus']) or 'none'}; Keras backend {machine['keras_backend']}; "
        f"float32 matmul {ref:.0f} GFLOP/s",
        "| network | batch | train images/s | train GFLOP/s | predict images/s "
        "| predict GFLOP/s | paper-scale epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for target, r in rows.items():
        epoch_min = PAPER_TRAINING_IMAGES / r["train"]["images_per_s"] / 60
        lines.append(
            f"| {target} | {r['train']['batch_size']} | {r['train']['images_per_s']:.0f} "
            f"| {r['train']['gflops']:.1f} | {r['predict']['images_per_s']:.0f} "
            f"| {r['predict']['gflops']:.1f} | {epoch_min:.1f} min |"
        )
    s = p.search
    slowest = min(r["train"]["images_per_s"] for r in rows.values())
    hours = s.max_trials * s.max_epochs * PAPER_TRAINING_IMAGES / slowest / 3600
    lines.append(
        f"a paper-scale search ({s.max_trials} trials x at most {s.max_epochs} epochs x "
        f"{PAPER_TRAINING_IMAGES} images) at the slower network's speed: at most {hours:.0f} h "
        "(early stopping ends most trials sooner; searched architectures vary in cost)"
    )
    typer.echo("\n".join(lines))
    out = Path("benchmarks/train.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "matmul_gflops": ref, "n": n,
                               "networks": rows}, indent=2))  # fmt: skip
    typer.echo(f"written to {out}")


@benchmark_app.command("predict")
def benchmark_predict_cmd(
    n: Annotated[int, typer.Option(help="Stamps (101x101).")] = 5000,
    model: Annotated[
        str | None,
        typer.Option(
            help="A model folder or models:/ URI (default: untrained params.yaml "
            "networks; speed does not depend on the weights)."
        ),
    ] = None,
    rest: Annotated[bool, typer.Option(help="Also time the REST scoring server.")] = True,
    rest_batch: Annotated[int, typer.Option(help="Stamps per REST request.")] = 250,
    params: ParamsOption = None,
) -> None:
    """Galaxies/s of the combined model in-process and through `mlflow models serve`, and
    each network's GFLOP/s against a matmul in the same run (writes benchmarks/predict.json)."""
    import json

    from casnet.benchmark import benchmark_predict, format_predict_report

    if n < 1 or rest_batch < 1:
        raise _fail("--n and --rest-batch must be >= 1", 2)
    p = load_params(params)
    report = benchmark_predict(n, model=model, rest=rest, rest_batch=rest_batch,
                               arch_by_target={"concentration": p.model.concentration,
                                               "asymmetry": p.model.asymmetry})  # fmt: skip
    typer.echo(format_predict_report(report))
    out = Path("benchmarks/predict.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    typer.echo(f"written to {out}")


@benchmark_app.command("all")
def benchmark_all_cmd(
    n: Annotated[int, typer.Option(help="Stamps timed with statmorph and casnet.")] = 200,
    repeats: Annotated[int, typer.Option(help="Repeats (medians reported).")] = 3,
    batch_size: Annotated[int, typer.Option(help="CNN batch size.")] = 512,
    cnn_n: Annotated[int, typer.Option(help="Stamps scored by the CNN (the n, tiled).")] = 2048,
    pipeline_n: Annotated[int, typer.Option(help="Galaxies through the data stages.")] = 2000,
    workers: Annotated[str, typer.Option(help="Worker counts for the data stages.")] = "1,2",
    train_n: Annotated[int, typer.Option(help="Images per timed training epoch.")] = 1024,
    model: Annotated[
        str | None, typer.Option(help="models:/ URI or folder (default: params.yaml networks).")
    ] = None,
    statmorph: Annotated[bool, typer.Option(help="Include statmorph if installed.")] = True,
    pipeline: Annotated[bool, typer.Option(help="Include the data stages.")] = True,
    mlflow_log: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log to MLflow.")] = True,
    params: ParamsOption = None,
) -> None:
    """Every speed figure in one run: statmorph, conventional and CNN C+A on the same stamps,
    the data stages with 1 and 2 workers, training; goals checked; benchmarks/results.json."""
    from casnet.harness import benchmark_all, format_report, log_to_mlflow, write_report

    try:
        counts = tuple(int(w) for w in workers.split(","))
    except ValueError:
        raise _fail(f"--workers must be comma-separated integers, got {workers!r}", 2) from None
    if min(n, repeats, batch_size, cnn_n, pipeline_n, train_n) < 1 or min(counts) < 0:
        raise _fail("sizes and repeats must be >= 1 and worker counts >= 0", 2)
    report = benchmark_all(load_params(params), n=n, repeats=repeats, batch_size=batch_size,
                           cnn_n=cnn_n, pipeline_n=pipeline_n, workers=counts, train_n=train_n,
                           model=model, statmorph=statmorph, pipeline=pipeline)  # fmt: skip
    typer.echo(format_report(report))
    path = write_report(report)
    typer.echo(f"written to {path}")
    if mlflow_log:
        typer.echo(f"MLflow run {log_to_mlflow(report, path)} (experiment casnet-benchmark)")


@benchmark_app.command("profile")
def benchmark_profile_cmd(
    n: Annotated[int, typer.Option(help="Stamps measured by the conventional code.")] = 100,
    cnn_n: Annotated[int, typer.Option(help="Stamps scored by the combined model.")] = 1024,
    batch_size: Annotated[int, typer.Option(help="CNN batch size.")] = 512,
    stage_n: Annotated[int, typer.Option(help="Galaxies through each data stage.")] = 128,
    out: Annotated[Path, typer.Option(help="Folder of the profiles.")] = Path(
        "benchmarks/profiles"
    ),
    cluster: Annotated[bool, typer.Option(help="Also time a LocalCluster start.")] = True,
    params: ParamsOption = None,
) -> None:
    """Where the time goes: pyinstrument profiles (text + HTML) of the conventional measurement,
    the combined model and the data stages' chunks, and the top self-time functions."""
    from casnet.profiling import format_profile_report, profile_all

    if min(n, cnn_n, batch_size, stage_n) < 1:
        raise _fail("sizes must be >= 1", 2)
    report = profile_all(load_params(params), n=n, cnn_n=cnn_n, batch_size=batch_size,
                         stage_n=stage_n, out=out, cluster=cluster)  # fmt: skip
    typer.echo(format_profile_report(report))
    typer.echo(f"profiles and hotspots.json written to {out}")


@app.command("params")
def show_params(params: ParamsOption = None) -> None:
    """Print the validated parameters (defaults filled in) as YAML."""
    import yaml

    typer.echo(yaml.safe_dump(load_params(params).model_dump(mode="json"), sort_keys=False))


def main() -> None:
    """Entry point of the ``casnet`` console script."""
    try:
        app()
    except CasnetError as exc:
        typer.echo(f"casnet: error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
