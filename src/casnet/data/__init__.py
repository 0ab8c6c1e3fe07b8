"""Data preparation (Tohill et al. 2021 Sec. 3.1-3.2), as pure functions on arrays and catalogues.

Sources: :mod:`.simulate` (GalSim with noiseless truth; :mod:`.psf`, :mod:`.noise`) and
:mod:`.ingest` (real FITS); :mod:`.clean` (galclean); :mod:`.preprocess` (the network input: crop
and normalisation). :mod:`casnet.data.io` reads and writes stamp stores, FITS and catalogues.
The DVC stages that run these over whole stores are in :mod:`casnet.pipeline`.
"""
