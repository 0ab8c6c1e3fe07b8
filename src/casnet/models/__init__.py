"""The CASNET networks (Tohill et al. 2021 Sec. 3.3-3.4, Table 1): architecture and metrics."""
