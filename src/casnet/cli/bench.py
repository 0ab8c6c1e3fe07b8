"""``casnet benchmark``: commands that print figures (speed, agreement, the error budget)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from casnet.cli.common import FromTuneOption, ParamsOption, fail, parse_workers
from casnet.core.config import override
from casnet.core.errors import EXIT_USAGE
from casnet.params import load_params


def _write_report(report: dict, name: str) -> None:
    """Write a benchmark's report to ``benchmarks/<name>.json`` and say where."""
    out = Path("benchmarks") / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    typer.echo(f"written to {out}")


commands = typer.Typer(help="Speed and agreement benchmarks (print figures).", no_args_is_help=True)


@commands.command("measure")
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
    from casnet.bench.speed import benchmark_measure, format_measure_report

    p = load_params(params)
    cfg = override(p.benchmark, source="command line", n=n, repeats=repeats,
                   statmorph_n=statmorph_n)  # fmt: skip
    report = benchmark_measure(
        cfg.n,
        repeats=cfg.repeats,
        use_statmorph=statmorph,
        statmorph_n=cfg.statmorph_n,
        sim=override(p.simulate, stamp_size=101),
        morph=p.morphology,
        progress=True,
    )
    typer.echo(format_measure_report(report))


@commands.command("errors")
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
    from casnet.bench.error_budget import budget_table, error_budget, format_budget, plot_budget

    if n < 1:
        raise fail(f"--n must be >= 1, got {n}", EXIT_USAGE)
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


@commands.command("simulate")
def benchmark_simulate_cmd(
    n: Annotated[int, typer.Option(help="Simulated galaxies (before the cuts).")] = 2000,
    out: Annotated[Path, typer.Option(help="Folder of the report and figure.")] = Path(
        "benchmarks"
    ),
    params: ParamsOption = None,
) -> None:
    """The simulated training set against the paper's: survival per cut and kind, label and
    truth percentiles, the issue-15 targets met or not (writes OUT/simulate.{md,json,png})."""
    from casnet.bench.population import (
        format_population,
        plot_population,
        population,
        population_report,
    )

    if n < 1:
        raise fail(f"--n must be >= 1, got {n}", EXIT_USAGE)
    p = load_params(params)
    rows, metrics = population(n, sim=p.simulate, clean_cfg=p.clean, morph=p.morphology,
                               select_cfg=p.select, dask=p.dask)  # fmt: skip
    report = population_report(rows, metrics)
    out.mkdir(parents=True, exist_ok=True)
    text = format_population(report)
    (out / "simulate.md").write_text(text + "\n")
    (out / "simulate.json").write_text(json.dumps(report, indent=2))
    figure = plot_population(rows, out / "simulate.png")
    typer.echo(text)
    typer.echo(f"report and figure: {out}/simulate.md, simulate.json, {figure}")


@commands.command("realgap")
def benchmark_realgap_cmd(
    n: Annotated[
        int, typer.Option(help="Simulated galaxies (at the real views' magnitudes).")
    ] = 1500,
    k: Annotated[int, typer.Option(help="Simulated galaxies matched to each real view.")] = 50,
    twins: Annotated[int, typer.Option(help="Own-noise twins per real view (x 4 rotations).")] = 2,
    max_galaxies: Annotated[
        int | None, typer.Option(help="Real galaxies: the first N only (default: all 88).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Combined model whose residuals are compared (folder or models:/ "
            "URI; default: the packaged pretrained model)."
        ),
    ] = None,
    network: Annotated[bool, typer.Option(help="Compare the network's residuals too.")] = True,
    out: Annotated[Path, typer.Option(help="Folder of the report and figures.")] = Path(
        "benchmarks"
    ),
    params: ParamsOption = None,
) -> None:
    """Where the simulator fails to cover real morphology (issue 29): the real suite's views
    against simulated galaxies matched in magnitude and size, noise-matched: C, A, smoothness
    and residual peaks of the noise-free stamps, the observed C and A, the network residuals
    (writes OUT/realgap.{md,json} and OUT/realgap/: the rows of the real views, the simulated
    galaxies and the noise-matched pairs, and the figures)."""
    from casnet.bench.realgap import (
        format_realgap,
        plot_outside,
        plot_plane,
        plot_residuals,
        realgap,
        realgap_report,
    )

    if n < 1 or k < 1 or twins < 1 or n < k:
        raise fail(f"--n, --k and --twins must be >= 1 and --n >= --k, got n={n}, k={k}, "
                   f"twins={twins}", EXIT_USAGE)  # fmt: skip
    p = load_params(params)
    real_cfg = override(p.evaluate.real, source="command line", max_galaxies=max_galaxies)
    if network and model is None:
        from casnet.networks.pretrained import available, model_path

        if available():
            model = str(model_path())
        else:
            typer.echo("no packaged pretrained model: network residuals skipped")
    gap = realgap(n, sim=p.simulate, real_cfg=real_cfg, morph=p.morphology, k=k, twins=twins,
                  model=model if network else None, log=typer.echo)  # fmt: skip
    report = realgap_report(gap)
    folder = out / "realgap"
    folder.mkdir(parents=True, exist_ok=True)
    gap.real.to_csv(folder / "real_rows.csv", index=False)
    gap.sims.to_csv(folder / "sim_rows.csv", index=False)
    gap.pairs.to_csv(folder / "pairs.csv.gz", index=False)
    text = format_realgap(report)
    (out / "realgap.md").write_text(text + "\n")
    (out / "realgap.json").write_text(json.dumps(report, indent=2, default=float))
    figures = [plot_plane(gap, folder / "plane.png"), plot_outside(gap, folder / "outside.png")]
    if "net_asymmetry_residual" in gap.real:
        figures.append(plot_residuals(gap, folder / "residuals.png"))
    typer.echo(text)
    typer.echo(f"report: {out}/realgap.md, realgap.json; rows and figures: "
               + ", ".join(str(f) for f in figures))  # fmt: skip


@commands.command("finetune")
def benchmark_finetune_cmd(
    init: Annotated[
        str,
        typer.Option(
            help="The model fine-tuned and scored before: 'pretrained', models:/casnet@champion "
            "or a combined model folder."
        ),
    ] = "pretrained",
    splits: Annotated[int, typer.Option(help="Splits by galaxy (seeds SEED, SEED+1, ...).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the first split.")] = 0,
    fine_fraction: Annotated[
        float, typer.Option(help="Share of the galaxies that fine-tune; the rest are held out.")
    ] = 2 / 3,
    eval_views: Annotated[
        int, typer.Option(help="Real-suite views per galaxy scored (evaluate.real otherwise).")
    ] = 8,
    train_views: Annotated[int, typer.Option(help="Labelled views drawn per galaxy.")] = 16,
    train_share: Annotated[
        float,
        typer.Option(help="Largest own-noise share of the labelled views (the suite's: 0.15)."),
    ] = 0.3,
    label_sn: Annotated[
        float, typer.Option(help="Labelled views: S/N per pixel at least this.")
    ] = 2.5,
    epochs: Annotated[int, typer.Option(help="Maximum epochs of each fine-tuning.")] = 60,
    patience: Annotated[int, typer.Option(help="Early-stopping patience.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Batch size of the fine-tuning.")] = 32,
    learning_rate_factor: Annotated[
        float | None,
        typer.Option(
            help="Learning rate over params.yaml's (default: casnet train --init's, 0.1)."
        ),
    ] = None,
    mirror: Annotated[
        bool, typer.Option(help="Also fine-tune on the mirrored stamps (C and A unchanged).")
    ] = True,
    max_galaxies: Annotated[
        int | None, typer.Option(help="The first N real galaxies only (default: all 88).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder of the report.")] = Path("benchmarks"),
    params: ParamsOption = None,
) -> None:
    """Fine-tune the pretrained networks on real galaxies (issue 29, the worked example of
    `casnet train --init`): labelled by the conventional measurement at high S/N, split by
    galaxy, scored by the real suite on the held-out galaxies before and after (writes
    OUT/finetune.{md,json}; ~10 min on 2 cores)."""
    from casnet.bench.finetune import finetune, format_finetune

    if min(splits, eval_views, train_views, epochs, patience, batch_size) < 1:
        raise fail("--splits, --eval-views, --train-views, --epochs, --patience and "
                   "--batch-size must be >= 1", EXIT_USAGE)  # fmt: skip
    p = load_params(params)
    real_cfg = override(p.evaluate.real, source="command line", max_galaxies=max_galaxies)
    report = finetune(real_cfg=real_cfg, sim=p.simulate, morph=p.morphology,
                      archs=p.model.by_target(),
                      init=init, splits=splits, seed=seed, fine_fraction=fine_fraction,
                      eval_views=eval_views, train_views=train_views, train_share=train_share,
                      label_sn=label_sn, epochs=epochs, patience=patience, batch_size=batch_size,
                      learning_rate_factor=learning_rate_factor, mirror=mirror,
                      log=typer.echo)  # fmt: skip
    text = format_finetune(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "finetune.md").write_text(text + "\n")
    (out / "finetune.json").write_text(json.dumps(report, indent=2, default=float))
    typer.echo(text)
    typer.echo(f"report: {out}/finetune.md, {out}/finetune.json")


@commands.command("realtrain")
def benchmark_realtrain_cmd(
    n: Annotated[
        int, typer.Option(help="Simulated galaxies per simulator (before the cuts).")
    ] = 3000,
    seeds: Annotated[int, typer.Option(help="Training seeds per simulator (1, 2, ...).")] = 3,
    epochs: Annotated[int, typer.Option(help="Maximum epochs of each training.")] = 40,
    patience: Annotated[int, typer.Option(help="Early-stopping patience.")] = 8,
    views: Annotated[
        int | None, typer.Option(help="Real-suite views per galaxy (default: evaluate.real's).")
    ] = None,
    max_galaxies: Annotated[
        int | None, typer.Option(help="Real galaxies: the first N only (default: all 88).")
    ] = None,
    work: Annotated[
        Path, typer.Option(help="Folder of the simulated stores (reused by a later run).")
    ] = Path("data/realtrain"),
    out: Annotated[Path, typer.Option(help="Folder of the report.")] = Path("benchmarks"),
    params: ParamsOption = None,
) -> None:
    """Does the widened simulator close the gap to real galaxies? (issue 29) The shipped
    architectures trained with the same budget on the old simulator (no real-morphology
    structure) and on the new one, several seeds each, scored on the real suite and on both
    simulated test sets, against the issue's targets (writes OUT/realtrain.{md,json}; ~30 min on
    2 cores at the defaults)."""
    from casnet.bench.realtrain import format_realtrain, realtrain

    if min(n, seeds, epochs, patience) < 1 or (views is not None and views < 1):
        raise fail("--n, --seeds, --epochs, --patience and --views must be >= 1", EXIT_USAGE)
    p = load_params(params)
    real_cfg = override(p.evaluate.real, source="command line", max_galaxies=max_galaxies,
                        **({"views": views} if views is not None else {}))  # fmt: skip
    report = realtrain(n, sim=p.simulate, real_cfg=real_cfg, clean_cfg=p.clean,
                       morph=p.morphology, select_cfg=p.select, split_cfg=p.split, dask=p.dask,
                       out=work, seeds=tuple(range(1, seeds + 1)), epochs=epochs,
                       patience=patience, log=typer.echo)  # fmt: skip
    text = format_realtrain(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "realtrain.md").write_text(text + "\n")
    (out / "realtrain.json").write_text(json.dumps(report, indent=2, default=float))
    typer.echo(text)
    typer.echo(f"report: {out}/realtrain.md, {out}/realtrain.json")


@commands.command("data")
def benchmark_data_cmd(
    n: Annotated[int, typer.Option(help="Galaxies of the large run (the small one: N/5).")] = 500,
    chunk_size: Annotated[int, typer.Option(help="Galaxies per chunk.")] = 64,
) -> None:
    """simulate and clean ms/galaxy (one worker) and peak memory at N/5 and N."""
    from casnet.bench.speed import benchmark_pipeline, format_pipeline_report

    if n < 1:
        raise fail(f"--n must be >= 1, got {n}", EXIT_USAGE)
    report = benchmark_pipeline(n, workers=(1,), n_small=max(n // 5, 1), chunk_size=chunk_size,
                                stages=("simulate", "clean"))  # fmt: skip
    typer.echo(format_pipeline_report(report))
    for s in ("simulate", "clean"):
        typer.echo(f"{s}: {1e3 / report[f'{s}_galaxies_per_s'][1]:.2f} ms/galaxy")


@commands.command("pipeline")
def benchmark_pipeline_cmd(
    n: Annotated[int, typer.Option(help="Galaxies (memory is also measured at N/10).")] = 2000,
    workers: Annotated[str, typer.Option(help="Worker counts to compare, e.g. 1,2.")] = "1,2",
    chunk_size: Annotated[int, typer.Option(help="Galaxies per chunk.")] = 64,
) -> None:
    """Data-stage throughput (galaxies/s) per worker count, speed-up, and memory at two N.

    Throughput both with a LocalCluster started by each stage (cold) and on a running cluster
    (warm, as with --scheduler).
    """

    from casnet.bench.speed import benchmark_pipeline, format_pipeline_report

    counts = parse_workers(workers)
    if n < 1:
        raise fail(f"--n must be >= 1, got {n}", EXIT_USAGE)
    report = benchmark_pipeline(n, workers=counts, chunk_size=chunk_size, warm=True)
    typer.echo(format_pipeline_report(report))
    _write_report(report, "pipeline")


@commands.command("train")
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
    from casnet.bench.throughput import benchmark_train, format_train_report

    if n < 1 or repeats < 1 or (batch_size is not None and batch_size < 1):
        raise fail("--n, --repeats and --batch-size must be >= 1", EXIT_USAGE)
    p = load_params(params)
    report = benchmark_train(p.model, n, repeats=repeats, batch_size=batch_size)
    typer.echo(format_train_report(report, p.search))
    _write_report(report, "train")


@commands.command("inputs")
def benchmark_inputs_cmd(
    from_tune: FromTuneOption = None,
    max_train: Annotated[
        int | None, typer.Option(help="Train on the first N training galaxies only.")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Maximum epochs (default: params.yaml).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the table here (.md).")] = None,
    params: ParamsOption = None,
) -> None:
    """Train on galclean'ed stamps or on raw crops (Sec. 4.4)? Trains each network both ways on
    the project's split (same galaxies, architecture, budget, seed) and scores both on the test
    set against the labels and the truth. Run it in a pipeline's root (CASNET_ROOT=science for
    the science run's data)."""
    from casnet.bench.inputs import compare_inputs, format_inputs_report
    from casnet.core.layout import TARGETS, project_root
    from casnet.networks.train import architecture_from_search

    if (max_train is not None and max_train < 1) or (epochs is not None and epochs < 1):
        raise fail("--max-train and --epochs must be >= 1", EXIT_USAGE)
    p = load_params(params)
    root = project_root()
    budget = override(p.search, source="command line", max_epochs=epochs)
    if from_tune is None:
        arch = {t: getattr(p.model, t) for t in TARGETS}
    else:
        arch = {t: architecture_from_search(t, from_tune, root=root)[0] for t in TARGETS}
    table = compare_inputs(root, arch, budget, max_train=max_train, log=typer.echo)
    text = format_inputs_report(table)
    typer.echo(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        typer.echo(f"written to {out}")


@commands.command("uncertainty")
def benchmark_uncertainty_cmd(
    model: Annotated[
        str, typer.Option(help="The combined model whose networks are compared (models:/ URI).")
    ] = "models:/casnet@champion",
    store: Annotated[
        Path | None, typer.Option(help="Network-ready stamps (default: data/split/test).")
    ] = None,
    passes: Annotated[int, typer.Option(help="MC-dropout passes per galaxy.")] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the dropout masks.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Also write the table here (.md).")] = None,
) -> None:
    """Which per-galaxy sigma is calibrated (issue 18)? The Gaussian head's, MC dropout's spread
    and both in quadrature, against the truth and the labels, beside the conventional errors
    (coverage at 1 and 2 sigma; target 0.60-0.76 and 0.90-0.98)."""
    from casnet.bench.uncertainty import (
        compare_uncertainties,
        format_uncertainty_report,
        method_table,
    )
    from casnet.core.layout import TEST, project_root
    from casnet.evaluation.test_set import SNR_EDGES
    from casnet.networks.registry import load

    if passes < 2:
        raise fail("--passes must be >= 2", EXIT_USAGE)
    root = project_root()
    networks = load(model, root).unwrap_python_model().networks
    table = method_table(networks, store or root / TEST, passes=passes, seed=seed,
                         log=typer.echo)  # fmt: skip
    frame, score = compare_uncertainties(table, snr_edges=SNR_EDGES)
    text = format_uncertainty_report(frame, score)
    typer.echo(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        typer.echo(f"written to {out}")


@commands.command("predict")
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

    from casnet.bench.speed import benchmark_predict, format_predict_report

    if n < 1 or rest_batch < 1:
        raise fail("--n and --rest-batch must be >= 1", EXIT_USAGE)
    p = load_params(params)
    report = benchmark_predict(n, model=model, rest=rest, rest_batch=rest_batch,
                               arch_by_target=p.model.by_target())  # fmt: skip
    typer.echo(format_predict_report(report))
    _write_report(report, "predict")


@commands.command("all")
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
    from casnet.bench.harness import benchmark_all, format_report, log_to_mlflow, write_report

    counts = parse_workers(workers)
    if min(n, repeats, batch_size, cnn_n, pipeline_n, train_n) < 1:
        raise fail("sizes and repeats must be >= 1", EXIT_USAGE)
    report = benchmark_all(load_params(params), n=n, repeats=repeats, batch_size=batch_size,
                           cnn_n=cnn_n, pipeline_n=pipeline_n, workers=counts, train_n=train_n,
                           model=model, statmorph=statmorph, pipeline=pipeline)  # fmt: skip
    typer.echo(format_report(report))
    path = write_report(report)
    typer.echo(f"written to {path}")
    if mlflow_log:
        typer.echo(f"MLflow run {log_to_mlflow(report, path)} (experiment casnet-benchmark)")


@commands.command("profile")
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
    from casnet.bench.profiling import format_profile_report, profile_all

    if min(n, cnn_n, batch_size, stage_n) < 1:
        raise fail("sizes must be >= 1", EXIT_USAGE)
    report = profile_all(load_params(params), n=n, cnn_n=cnn_n, batch_size=batch_size,
                         stage_n=stage_n, out=out, cluster=cluster)  # fmt: skip
    typer.echo(format_profile_report(report))
    typer.echo(f"profiles and hotspots.json written to {out}")
