"""Commands on FITS stamps and stores: ``measure`` (conventional C and A), ``stamps`` (simulated
FITS), ``show`` (a grid of stamps)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casnet.cli.common import (
    ParamsOption,
    fail,
    parse_hdu,
)
from casnet.core.config import override
from casnet.core.errors import EXIT_BAD_INPUT, EXIT_USAGE, CasnetError, exit_status
from casnet.core.layout import TARGETS
from casnet.core.quantities import SCHEMA
from casnet.params import load_params

commands = typer.Typer()


@commands.command()
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
    from casnet.data.io.catalog import FORMATS, check_output, write_rows
    from casnet.data.io.fits import expand_paths
    from casnet.pipeline.measure import measure_files

    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}", EXIT_USAGE)
    if fmt == "fits" and out is None:
        raise fail("--format fits needs --out FILE", EXIT_USAGE)
    if out is not None:
        # before any work: a missing folder, or an output that is (inside) an input
        check_output(out, inputs=paths)
    cfg = load_params(params).morphology
    files = expand_paths(paths)
    if not files:
        raise fail("no FITS files found in " + ", ".join(map(str, paths)))
    try:
        rows = measure_files(files, cfg, hdu=parse_hdu(hdu), strict=len(files) == 1)
    except CasnetError as exc:
        raise fail(str(exc), exit_status(exc)) from None
    from casnet import __version__

    text = write_rows(rows, fmt, out, {"casnet_version": __version__})  # type: ignore[arg-type]
    if text is not None:
        typer.echo(text)
    elif out is not None:
        typer.echo(f"wrote {len(rows)} rows to {out}", err=True)


@commands.command()
def stamps(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the FITS stamps.")],
    n: Annotated[int, typer.Option(help="How many stamps.")] = 12,
    seed: Annotated[int | None, typer.Option(help="Master seed (default: simulate.seed).")] = None,
    params: ParamsOption = None,
) -> None:
    """Generate CANDELS-like GalSim stamps as FITS (primary: observed; HDU TRUTH: noiseless)."""
    from casnet.data.simulate import write_stamps

    if n < 1:
        raise fail(f"--n must be >= 1, got {n}", EXIT_USAGE)
    cfg = override(load_params(params).simulate, seed=seed)
    count = len(write_stamps(cfg, n, out))
    typer.echo(f"wrote {count} stamps to {out}", err=True)


@commands.command()
def show(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="A store directory (a grid of its stamps), or FITS files and "
            "folders of them (one diagnostic figure per galaxy)."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="PNG to write (a store's grid: grid.png; one FITS "
            "file: <name>.png), or the folder of several FITS files' figures "
            "(default show/).",
        ),
    ] = None,
    n: Annotated[int, typer.Option(help="How many stamps (a store's grid).")] = 16,
    array: Annotated[str, typer.Option(help="Which array: image, truth, ...")] = "image",
    measurements: Annotated[
        Path | None, typer.Option(help="Parquet from 'casnet data measure' for C/A labels.")
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(help="Show the highest values of this column first (e.g. asymmetry)."),
    ] = None,
    hdu: Annotated[str | None, typer.Option(help="FITS HDU: index or EXTNAME.")] = None,
    params: ParamsOption = None,
) -> None:
    """Draw a store's stamps as a grid with ids and C/A (like the paper's Fig. 3), or, for FITS
    files, each galaxy's measurement: the stamp with the target's segment, the masked
    neighbours, the apertures and centres, the 180-degree residual, and C, A, SNR_p and flags
    (as statmorph's make_figure)."""
    from casnet.data.io.store import CATALOG

    if len(inputs) == 1 and inputs[0].is_dir() and (inputs[0] / CATALOG).exists():
        _store_grid(inputs[0], out or Path("grid.png"), n, array, measurements, sort)
        return
    _diagnostics(inputs, out, hdu, load_params(params).morphology)


def _diagnostics(inputs: list[Path], out: Path | None, hdu: str | None, morph) -> None:
    """One diagnostic figure per FITS file (:func:`casnet.morphology.diagnostic.
    diagnostic_figure`); an unreadable file is reported and the others drawn (exit 3)."""
    from casnet.data.io.fits import expand_paths, read_image
    from casnet.morphology.diagnostic import diagnostic_figure

    files = expand_paths(list(inputs))
    if not files:
        raise fail("no FITS file in " + ", ".join(str(p) for p in inputs), EXIT_BAD_INPUT)
    several = len(files) > 1
    folder = (out or Path("show")) if several else None
    failed = 0
    for path in files:
        try:
            image, _ = read_image(path, parse_hdu(hdu))
        except CasnetError as exc:
            typer.echo(f"casnet: error: {exc}", err=True)
            failed += 1
            continue
        target = folder / f"{path.stem}.png" if folder else (out or Path(f"{path.stem}.png"))
        written = diagnostic_figure(image, target, title=path.name, config=morph)
        typer.echo(f"{path}: {written}")
    if failed:
        raise fail(f"{failed} of {len(files)} file(s) could not be drawn", EXIT_BAD_INPUT)


def _store_grid(store: Path, out: Path, n: int, array: str, measurements: Path | None,
                sort: str | None) -> None:  # fmt: skip
    """The grid of a store's stamps with their ids and C/A."""
    import pandas as pd

    from casnet.core.figures import stamp_grid
    from casnet.data.io.store import StampStore

    st = StampStore(store)
    cat = st.catalog.reset_index(drop=True).assign(_row=lambda d: range(len(d)))
    if measurements is not None:
        meas = pd.read_parquet(measurements)
        keep = [c for c in ("galaxy_id", *TARGETS) if c in meas]
        cat = cat.drop(columns=[c for c in keep if c != "galaxy_id" and c in cat]).merge(
            meas[keep], on="galaxy_id", how="left"
        )
    if sort is not None:
        if sort not in cat:
            raise fail(
                f"--sort {sort!r}: no such column (have {', '.join(cat.columns)})", EXIT_USAGE
            )
        cat = cat.sort_values(sort, ascending=False, na_position="last")
    cat = cat.head(max(n, 0))
    if cat.empty:
        raise fail(f"{store}: the store is empty")
    rows = sorted(cat["_row"].tolist())
    arr = st.array(array)
    images = {r: arr[r] for r in rows}
    titles = []
    for _, r in cat.iterrows():
        t = str(r["galaxy_id"])
        values = {q.symbol: r.get(q.name, r.get(q.column("label"))) for q in SCHEMA}
        if all(v is not None and pd.notna(v) for v in values.values()):
            t += "\n" + " ".join(f"{k}={v:.2f}" for k, v in values.items())
        titles.append(t)
    path = stamp_grid([images[r] for r in cat["_row"]], titles, out)
    typer.echo(f"grid of {len(titles)} stamps written to {path}")
