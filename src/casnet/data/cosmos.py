"""Real galaxy morphologies from a GalSim COSMOS catalogue, when the user has one (issue 15).

GalSim's ``COSMOSCatalog`` holds HST/ACS F814W cutouts of COSMOS galaxies with their PSFs (the
I < 23.5 and I < 25.2 training samples, ~4 GB each, fetched with ``galsim_download_cosmos``; they
cannot be downloaded here, so nothing depends on them). A ``RealGalaxy`` made from one is the
galaxy deconvolved by its own ACS PSF (FWHM ~0.1"), which may then be convolved with any broader
PSF: here the F160W-like one of :mod:`casnet.data.psf` (0.18"), so the simulator can draw real
clumps, arms and mergers instead of analytic ones. The galaxy keeps its angular size and shape;
it is rotated by a random angle and scaled to the magnitude the simulator drew (an F814W image
standing in for F160W: the morphological K-correction is not modelled).

The truth of such a galaxy is its deconvolved, re-convolved COSMOS image: it carries the COSMOS
image's own noise, scaled with the flux (GalSim's ``noise_pad_size=0``: no padding noise).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import galsim
import numpy as np

from casnet.core.errors import CasnetInputError

__all__ = ["cosmos_catalog", "cosmos_galaxy"]


@lru_cache(maxsize=2)
def cosmos_catalog(directory: str, file_name: str) -> galsim.COSMOSCatalog:
    """The catalogue ``directory/file_name`` (its ``*_fits.fits`` parameter file beside it), read
    once per process; no exclusion cuts (a ``*_selection.fits`` file is not needed)."""
    path = Path(directory) / file_name
    if not path.is_file():
        raise CasnetInputError(
            f"simulate.cosmos_dir: no COSMOS catalogue {path} (GalSim's galsim_download_cosmos "
            "fetches one; simulate.cosmos_file names it)"
        )
    try:
        catalog = galsim.COSMOSCatalog(file_name=file_name, dir=str(directory),
                                       exclusion_level="none")  # fmt: skip
    except (OSError, KeyError, ValueError, galsim.GalSimError) as exc:
        raise CasnetInputError(f"simulate.cosmos_dir: cannot read {path}: {exc}") from exc
    if catalog.nobjects == 0:
        raise CasnetInputError(f"simulate.cosmos_dir: {path} holds no galaxy")
    return catalog


def cosmos_galaxy(
    catalog: galsim.COSMOSCatalog, rng: np.random.Generator, flux: float
) -> tuple[galsim.GSObject, dict]:
    """A random galaxy of ``catalog``, rotated by a random angle, with total ``flux``.

    Returns
    -------
    profile, info
        ``info``: ``cosmos_index`` (row of the catalogue) and ``pa_deg`` (the rotation).
    """
    index = int(rng.integers(catalog.nobjects))
    angle = float(rng.uniform(0.0, 360.0))
    seed = int(rng.integers(1, 2**31 - 1))
    gal = catalog.makeGalaxy(index, gal_type="real", noise_pad_size=0,
                             rng=galsim.BaseDeviate(seed))  # fmt: skip
    return gal.rotate(angle * galsim.degrees).withFlux(flux), {
        "cosmos_index": index,
        "pa_deg": angle,
    }
