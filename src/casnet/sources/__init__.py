"""Where stamps come from: the GalSim simulator (the embedded default source) and real FITS."""
