"""The networks' commands: ``tune``, ``train`` (and register), ``pull``, ``predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casnet.cli.common import (
    FromTuneOption,
    ParamsOption,
    QuietOption,
    SchedulerOption,
    budget,
    check_target,
    fail,
    parse_hdu,
)
from casnet.core.config import override, override_from_strings
from casnet.core.errors import EXIT_USAGE
from casnet.core.layout import AUGMENTED, COMBINED_MODEL, TEST, VAL
from casnet.data.io.catalog import SUFFIXES, check_output, write_catalog
from casnet.networks.settings import SIGMA_GRADIENTS
from casnet.params import load_params

commands = typer.Typer()


@commands.command()
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
    train: Annotated[Path, typer.Option(help="Training store.")] = Path(AUGMENTED),
    val: Annotated[Path, typer.Option(help="Validation store.")] = Path(VAL),
    role: Annotated[
        str, typer.Option(help="single | chief | worker (Keras Tuner distributed mode).")
    ] = "single",
    oracle: Annotated[
        str | None, typer.Option(help="HOST:PORT of the chief's oracle (chief and workers).")
    ] = None,
    tuner_id: Annotated[str | None, typer.Option(help="Unique id of a worker.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Only the final table.")] = False,
    params: ParamsOption = None,
) -> None:
    """Bayesian optimisation of a network's architecture; every trial an MLflow run.

    Rerunning with the same params and data resumes the search. The MLflow store is the
    project's (sqlite:///<root>/mlflow.db) unless MLFLOW_TRACKING_URI is set.
    """
    check_target(target)
    if role not in ("single", "chief", "worker"):
        raise fail(f"--role must be single, chief or worker, got {role!r}", EXIT_USAGE)
    space = override_from_strings(
        load_params(params).search, search or [], source="search (--search)"
    )
    space = override(space, source="search (command line)", max_trials=budget(max_trials),
                     max_epochs=budget(epochs), patience=budget(patience))  # fmt: skip

    from casnet.networks.dataset import check_inputs
    from casnet.networks.tune import format_trials
    from casnet.networks.tune import tune as run_search

    check_inputs(target, train, val)  # a clear message before any training
    result = run_search(target, space, train=train, val=val, role=role, oracle=oracle,
                        tuner_id=tuner_id, verbose=0 if quiet else 1)  # fmt: skip
    typer.echo(f"search {result.key}: parent run {result.parent_run_id}")
    if role != "worker":
        typer.echo(format_trials(result))
        if result.best_trial_id is None:
            raise fail("no trial completed: see the failed runs in the MLflow UI (make ui)")
        typer.echo(f"best trial {result.best_trial_id}: val RMSE {result.best_val_rmse:.4f} "
                   f"(baseline {result.baseline['baseline_val_rmse']:.4f})")  # fmt: skip


@commands.command()
def train(
    target: Annotated[str, typer.Option(help="concentration | asymmetry.")],
    from_tune: FromTuneOption = None,
    epochs: Annotated[
        str | None, typer.Option(help="Maximum epochs (default: params.yaml).")
    ] = None,
    patience: Annotated[
        str | None, typer.Option(help="Early-stopping patience (default: params.yaml).")
    ] = None,
    train_store: Annotated[Path, typer.Option("--train", help="Training store.")] = Path(AUGMENTED),
    val: Annotated[Path, typer.Option(help="Validation store.")] = Path(VAL),
    test: Annotated[Path, typer.Option(help="Test store.")] = Path(TEST),
    register: Annotated[bool, typer.Option(help="Register the model and update aliases.")] = True,
    promote: Annotated[
        bool, typer.Option("--promote", help="Make it champion even if it does not win.")
    ] = False,
    promote_if: Annotated[
        str | None, typer.Option(hidden=True, help="true|false: --promote for MLproject.")
    ] = None,
    labels: Annotated[
        str,
        typer.Option(
            help="What to learn: label (the training labels, the paper's) or truth (the "
            "simulator's idealised truth; such a network is logged, not registered)."
        ),
    ] = "label",
    init: Annotated[
        str | None,
        typer.Option(
            help="Fine-tune: start from this model's network for TARGET, its architecture and "
            "weights: 'pretrained' or 'pretrained-truth' (the packaged models), "
            "models:/casnet@champion, "
            "models:/casnet-TARGET@champion or a model folder (params/--from-tune layers are "
            "then ignored; their optimizer and batch size are used)."
        ),
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            help="Learning rate (default: the architecture's; with --init a tenth of it)."
        ),
    ] = None,
    seed: Annotated[
        str | None,
        typer.Option(
            help="Random seed of the weights and the shuffling (default: params.yaml "
            "search.seed); the science run trains each network with several."
        ),
    ] = None,
    sigma_gradient: Annotated[
        str | None,
        typer.Option(
            help="Gaussian head: shared (the sigma's likelihood trains the whole network) or "
            "detached (only the sigma's own weights); default: the architecture's. Issue 30 "
            "item 3, compared over seeds by `casnet science --sigma-study`."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-epoch output.")] = False,
    params: ParamsOption = None,
) -> None:
    """Train a network (early stopping, best weights), log it to MLflow and register it.

    The new version is `challenger`; it becomes `champion` if its validation RMSE beats the
    champion's on the same validation set (or with --promote), and then the combined model
    `casnet` is re-registered around the two champions. With --init the network is fine-tuned
    from an existing model's (e.g. the packaged pretrained one on your own labelled stamps).
    """
    check_target(target)
    if init is not None and from_tune not in (None, "", "none", "params"):
        raise fail("give --init or --from-tune, not both (a fine-tuning keeps the init "
                   "network's architecture)", EXIT_USAGE)  # fmt: skip
    if learning_rate is not None and not learning_rate > 0:
        raise fail(f"--learning-rate must be > 0, got {learning_rate}", EXIT_USAGE)
    if labels not in ("label", "truth"):
        raise fail(f"--labels must be label or truth, got {labels!r}", EXIT_USAGE)
    if sigma_gradient not in (None, *SIGMA_GRADIENTS):
        raise fail(f"--sigma-gradient must be {' or '.join(SIGMA_GRADIENTS)}, got "
                   f"{sigma_gradient!r}", EXIT_USAGE)  # fmt: skip
    if sigma_gradient is not None and init is not None:
        raise fail("--sigma-gradient and --init: a fine-tuning keeps the init network's head",
                   EXIT_USAGE)  # fmt: skip
    if labels == "truth" and register:
        typer.echo("labels=truth: the network is logged to MLflow, not registered")
        register = False
    if from_tune in ("", "none", "params"):
        from_tune = None
    if promote_if is not None:
        if promote_if.lower() not in ("true", "false"):
            raise fail(f"promote must be true or false, got {promote_if!r}", EXIT_USAGE)
        promote = promote or promote_if.lower() == "true"
    p = load_params(params)
    limits = override(p.search, source="search (command line)", max_epochs=budget(epochs),
                      patience=budget(patience), seed=budget(seed))  # fmt: skip

    from casnet.networks.dataset import check_inputs
    from casnet.networks.train import architecture_from_search
    from casnet.networks.workflow import train_and_register

    check_inputs(target, train_store, val)
    check_inputs(target, test, val)
    if from_tune is None:
        arch, source = getattr(p.model, target), "params.yaml"
    else:
        arch, source = architecture_from_search(
            target, from_tune, data={"train": train_store, "val": val}
        )
    if sigma_gradient is not None:
        arch = arch.model_copy(update={"sigma_gradient": sigma_gradient})
    if init is None:
        typer.echo(f"{target}: {arch.model_dump()} (from {source})")
    done = train_and_register(target, arch, train_store=train_store, val=val, test=test,
                              budget=limits, source=source, register=register, promote=promote,
                              verbose=0 if quiet else 1, labels=labels,
                              clean=p.clean, init=init, learning_rate=learning_rate)  # fmt: skip
    if init is not None:
        typer.echo(f"{target}: fine-tuned from {init}: {done.result.architecture.model_dump()}")
    result, m = done.result, done.result.metrics
    summary = "; ".join(
        f"{name} RMSE {m[f'{key}_rmse']:.4f}, MAE {m[f'{key}_mae']:.4f}, "
        f"r {m[f'{key}_pearson_r']:.3f}"
        for name, key in (("val", "final_val"), ("test", "test"))
    )
    typer.echo(f"run {result.run_id}: {result.epochs} epochs; {summary}")
    outcome = done.promotion
    if outcome is None:
        return
    # said plainly (issue 31): whether this version now serves, and why
    if outcome.promoted:
        typer.echo(f"registered {outcome.name} version {outcome.version}: it is now the "
                   f"champion ({outcome.reason})")  # fmt: skip
    else:
        typer.echo(f"registered {outcome.name} version {outcome.version} as challenger: the "
                   f"champion stays version {outcome.champion_version} "
                   f"({outcome.reason})")  # fmt: skip
    if done.combined_version is not None:
        typer.echo(f"registered {COMBINED_MODEL} version {done.combined_version} (champion)")
    elif done.combined_reason:
        typer.echo(f"combined model not registered yet: {done.combined_reason}")


@commands.command()
def pull(
    uri: Annotated[
        str | None, typer.Argument(help="models:/casnet@champion, models:/NAME/VERSION.")
    ] = None,
    dest: Annotated[Path, typer.Option(help="Folder to download into.")] = Path("models"),
    pretrained: Annotated[
        bool,
        typer.Option(
            "--pretrained",
            help="Register the packaged pretrained model in the "
            "project's MLflow store instead (champion where there is none yet).",
        ),
    ] = False,
    promote: Annotated[
        bool, typer.Option("--promote", help="With --pretrained: make it the champion anyway.")
    ] = False,
) -> None:
    """Download a registered model from the project's MLflow store (or MLFLOW_TRACKING_URI), or
    register the packaged pretrained one (--pretrained)."""
    from casnet.networks import pretrained as shipped
    from casnet.networks import registry

    if pretrained:
        if uri is not None:
            raise fail("give either a model URI or --pretrained, not both", EXIT_USAGE)
        versions = shipped.register(promote=promote)
        typer.echo(f"registered {shipped.describe()}:")
        for name, version in versions.items():
            typer.echo(f"  {name} version {version}")
        return
    if uri is None:
        raise fail("give a model URI (models:/casnet@champion) or --pretrained", EXIT_USAGE)
    if promote:
        raise fail("--promote goes with --pretrained", EXIT_USAGE)
    path = registry.pull(uri, dest)
    typer.echo(f"{uri} -> {path}")


@commands.command()
def predict(
    inputs: Annotated[list[Path], typer.Argument(help="FITS files, folders, or a casnet store.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="models:/NAME@ALIAS, models:/NAME/VERSION, a local model folder (trusted: "
            "loading a model runs code from it), 'pretrained' (the packaged model that learnt "
            "the conventional labels) or 'pretrained-truth' (the packaged model that learnt the "
            "noise-free values). Default: the project's models:/casnet@champion, or the "
            "packaged default where the project has none (said on stderr). A model named here "
            "must exist."
        ),
    ] = None,
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
    ignore_pixel_scale: Annotated[
        bool,
        typer.Option(
            "--ignore-pixel-scale",
            help="Score FITS stamps whose header gives another pixel scale than the model's "
            "(by default they are refused: the networks learnt sizes in pixels).",
        ),
    ] = False,
    quiet: QuietOption = False,
    params: ParamsOption = None,
) -> None:
    """C and A of new stamps from a registered model; every input gets a row (bad ones flagged)."""
    from casnet.core.locking import scratch_dir
    from casnet.networks import predict as scoring
    from casnet.networks import pretrained as shipped
    from casnet.networks import registry
    from casnet.networks.trust import check_model

    if chunk_size < 1:
        raise fail(f"--chunk-size must be >= 1, got {chunk_size}", EXIT_USAGE)
    if out.suffix.lower() not in SUFFIXES:
        raise fail(f"--out must end in one of {', '.join(SUFFIXES)}", EXIT_USAGE)
    # before any work: a missing folder, or an output that is (inside) an input
    check_output(out, inputs=inputs)
    chunks = scoring.plan_chunks(inputs, chunk_size)
    if workers is None and scheduler is None and len(chunks) <= 4:
        workers = 0
    conventional = load_params(params).morphology if with_conventional else None
    model, notice = shipped.resolve(model)
    if notice:  # which model scores is never hidden, not even by --quiet
        typer.echo(f"casnet: {notice}", err=True)
    # a registered model is pulled into a temporary folder removed when scoring ends (and the
    # folders of killed runs are removed by the next run)
    with scratch_dir("casnet-model-") as tmp:
        local = Path(model) if Path(model).exists() else registry.pull(model, tmp)
        meta = scoring.provenance(model, local)
        # before any worker loads it: a folder that is not casnet's own model is refused unread
        check_model(local, model if meta["model"] not in shipped.NAMES else meta["model"])
        table = scoring.predict(
            inputs, str(local), chunk_size=chunk_size, hdu=parse_hdu(hdu), scheduler=scheduler,
            workers=workers, progress=not quiet, conventional=conventional,
            check_scale=not ignore_pixel_scale, model_name=meta["model"],
        )  # fmt: skip
    write_catalog(table, out, meta)
    bad = int((table["predict_flag"] > 0).sum())
    typer.echo(f"{len(table)} galaxies scored with {meta['model_description']} -> {out} "
               f"({bad} flagged)")  # fmt: skip


@commands.command("ood-fit")
def ood_fit(
    model: Annotated[
        str,
        typer.Argument(
            help="A combined model folder (from `casnet pull`), or 'pretrained' / "
            "'pretrained-truth' (a packaged model's folder)."
        ),
    ],
    store: Annotated[
        list[Path] | None,
        typer.Option(
            help="Store of simulated galaxies like the networks' training set (repeatable; "
            "default: the validation store)."
        ),
    ] = None,
    quantile: Annotated[
        float, typer.Option(help="Share of those galaxies scoring under the threshold.")
    ] = 0.99,
    note: Annotated[str, typer.Option(help="How the stores were made (kept in the fit).")] = "",
) -> None:
    """Fit a model's out-of-distribution score (issue 29): writes MODEL/ood.npz, read by
    `casnet predict` (column ood_score, flag OUT_OF_DISTRIBUTION)."""
    from casnet.networks import ood
    from casnet.networks import pretrained as shipped
    from casnet.networks.trust import check_model

    if not 0.5 < quantile < 1:
        raise fail(f"--quantile must be between 0.5 and 1, got {quantile}", EXIT_USAGE)
    shipped_folder = shipped.folder_of(model) if model in shipped.NAMES else None
    folder = shipped.model_path(shipped_folder) if shipped_folder is not None else Path(model)
    check_model(folder, model)  # a folder that is not casnet's model is refused unread
    fit = ood.fit_model(folder, store or [Path(VAL)], quantile=quantile, note=note)
    n_fit, n_threshold = fit.meta["n_fit"], fit.meta["n_threshold"]
    typer.echo(f"{folder / ood.OOD_FILE}: fitted on {n_fit} galaxies, threshold chosen on "
               f"{n_threshold} ({quantile:g} of them score <= 1)")  # fmt: skip
