"""``casnet data``: the data stages (``dvc repro`` runs them; Tohill et al. 2021 Sec. 3.1-3.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from casnet.cli.common import (
    ParamsOption,
    QuietOption,
    SchedulerOption,
    WorkersOption,
    dask_settings,
    parse_hdu,
    stage,
    store_settings,
)
from casnet.core.config import override
from casnet.core.layout import AUGMENTED, CLEANED, MEASURED, RAW, SELECTED, SPLIT, TARGETS, TRAIN
from casnet.params import load_params

commands = typer.Typer(
    help="Data stages: simulate | ingest -> clean -> measure -> select -> split -> augment "
    "(stores under data/).",
    no_args_is_help=True,
)


StoreOption = Annotated[Path, typer.Option("--out", "-o", help="Output store (a directory).")]

InStoreOption = Annotated[Path, typer.Option("--in", "-i", help="Input store (a directory).")]

ChunkOption = Annotated[
    int | None, typer.Option("--chunk-size", help="Galaxies per chunk (default: store.chunk_size).")
]

MetricsOption = Annotated[Path | None, typer.Option(help="Write the stage metrics (JSON) here.")]

PlotsOption = Annotated[Path | None, typer.Option(help="Write the stage's figures (PNG) here.")]


def _report(stage: str, metrics: dict, path: Path | None) -> None:

    from casnet.pipeline.common import write_metrics

    if path is not None:
        write_metrics(path, metrics)
    typer.echo(f"{stage}: " + json.dumps(metrics, sort_keys=True), err=True)


@commands.command("simulate")
@stage("simulate")
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
    from casnet.pipeline import simulate as stage

    p = load_params(params)
    sim = override(p.simulate, seed=seed)
    count = override(p.data, n_galaxies=n).n_galaxies
    dask = dask_settings(p, scheduler, workers)
    store = stage.run(sim, count, store_settings(p, chunk_size), out, morphology=p.morphology,
                      dask=dask, show_progress=not quiet)  # fmt: skip
    typer.echo(f"simulate: {len(store)} galaxies -> {out}", err=True)


@commands.command("source")
@stage("source")
def data_source(
    out: StoreOption = Path(RAW),
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """The pipeline's first stage: simulate or ingest, as data.source says (params.yaml)."""
    p = load_params(params)
    d = p.data
    if d.source == "simulate":
        from casnet.pipeline import simulate as stage

        dask = dask_settings(p, scheduler, workers)
        store = stage.run(p.simulate, d.n_galaxies, p.store, out, morphology=p.morphology,
                          dask=dask, show_progress=not quiet)  # fmt: skip
    else:
        from casnet.pipeline import ingest as stage

        store = stage.run(p.ingest, p.store, list(d.input), out, catalog=d.catalog,
                          labels=d.labels, show_progress=not quiet)  # fmt: skip
    typer.echo(f"source ({d.source}): {len(store)} galaxies -> {out}", err=True)


@commands.command("ingest")
@stage("ingest")
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
    from casnet.pipeline import ingest as stage

    p = load_params(params)
    cfg = override(p.ingest, hdu=parse_hdu(hdu))
    stage.run(cfg, store_settings(p, chunk_size), inputs, out, catalog=catalog, labels=labels,
              show_progress=not quiet)  # fmt: skip


@commands.command("clean")
@stage("clean")
def data_clean(
    source: InStoreOption = Path(RAW),
    out: StoreOption = Path(CLEANED),
    chunk_size: ChunkOption = None,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Remove neighbours (galclean): other sources replaced by sky samples."""
    from casnet.pipeline import clean as stage

    p = load_params(params)
    dask = dask_settings(p, scheduler, workers)
    store = stage.run(p.clean, store_settings(p, chunk_size), source, out, dask=dask,
                      show_progress=not quiet)  # fmt: skip
    cat = store.catalog
    flagged = int((cat["clean_flag"] > 0).sum())
    typer.echo(
        f"clean: {len(cat)} galaxies -> {out}; mean replaced fraction "
        f"{cat['clean_replaced_fraction'].mean():.3f}; {flagged} flagged",
        err=True,
    )


@commands.command("measure")
@stage("measure")
def data_measure(
    source: InStoreOption = Path(CLEANED),
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet table.")] = Path(MEASURED),
    truth: Annotated[bool, typer.Option(help="Also measure the truth array (*_true).")] = True,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Conventional C and A of every stamp of a store (and of its truth images)."""
    from casnet.data.io.catalog import format_table
    from casnet.pipeline import measure as stage

    p = load_params(params)
    dask = dask_settings(p, scheduler, workers)
    done = stage.run(p.morphology, source, out, with_truth=truth, dask=dask,
                     show_progress=not quiet)  # fmt: skip
    typer.echo(f"measure: {done.n} galaxies ({done.n_ok} without flags) -> {out}", err=True)
    if not quiet:
        cols = ["galaxy_id", *TARGETS, "snr_p", "r_petro", "flag"]
        cols += [c for c in (f"{t}_true" for t in TARGETS) if c in done.head]
        typer.echo(format_table(done.head[cols].to_dict("records"), cols))
        if done.n > len(done.head):
            typer.echo(f"... {done.n - len(done.head)} more rows in {out}")


@commands.command("select")
@stage("select")
def data_select(
    source: InStoreOption = Path(CLEANED),
    measurements: Annotated[Path, typer.Option(help="Parquet from 'casnet data measure'.")] = Path(
        MEASURED
    ),
    out: StoreOption = Path(SELECTED),
    metrics: MetricsOption = None,
    plots: PlotsOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Cuts (SNR_p, R_p, flags), then crop 60x60 + normalise; removed galaxies in rejects."""

    from casnet.pipeline import select as stage

    p = load_params(params)
    store, m = stage.run(p.select, p.store, source, measurements, out, show_progress=not quiet)
    _report("select", m, metrics)
    if plots is not None:
        stage.write_figures(source, store, plots)


@commands.command("split")
@stage("split")
def data_split(
    source: InStoreOption = Path(SELECTED),
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for train/val/test.")] = Path(
        SPLIT
    ),
    metrics: MetricsOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Train/val/test by a hash of galaxy_id (80/10/10 by default)."""
    from casnet.pipeline import split as stage

    p = load_params(params)
    _, m = stage.run(p.split, p.store, source, out, show_progress=not quiet)
    _report("split", m, metrics)


@commands.command("augment")
@stage("augment")
def data_augment(
    source: InStoreOption = Path(TRAIN),
    out: StoreOption = Path(AUGMENTED),
    metrics: MetricsOption = None,
    plots: PlotsOption = None,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """Selective augmentation of rare C/A bins of the training split."""
    from casnet.pipeline import augment as stage

    p = load_params(params)
    store, m = stage.run(p.augment, p.store, source, out, show_progress=not quiet)
    _report("augment", m, metrics)
    if plots is not None:
        stage.write_figures(source, store, p.augment.bins, plots)
