"""casnet: concentration and asymmetry of galaxies, conventionally and with CNNs.

Following Tohill et al. 2021, AJ 162, 4 ("Quantifying Non-parametric Structure of High-redshift
Galaxies with Deep Learning"). The conventional measurement lives in :mod:`casnet.morphology`.
"""

from casnet._version import __version__

__all__ = ["__version__"]
