"""What a suite returns: metrics, per-galaxy tables, figures and summary rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["SuiteResult"]


@dataclass
class SuiteResult:
    """The output of one evaluation suite.

    Attributes
    ----------
    name : str
        ``test``, ``noise`` or ``redshift``.
    metrics : dict
        Flat ``name -> value`` (logged as MLflow metrics, prefixed by the suite).
    tables : dict
        ``name -> DataFrame`` per-galaxy tables (logged as Parquet).
    figures : list of Path
        PNG files written by the suite (logged as artifacts).
    summary : list of dict
        Rows of the summary table: ``quantity``, ``network``, ``conventional`` (and ``paper``),
        ``target`` (the quantity's network: ``concentration`` / ``asymmetry``), ``n`` (the
        sample size behind the number) and, for a coverage of the network's sigma, ``sigma``
        (True).
    notes : list of str
        Markdown paragraphs printed below the summary table (e.g. the redshift suite's
        dimming / evolution bookkeeping).
    degenerate : dict
        ``target -> reason`` for a network whose test predictions are not a result
        (:func:`casnet.core.scores.degenerate_reason`; the test suite fills it).
    miscalibrated : dict
        ``target -> reason`` for a network whose sigma's coverage against the labels on the
        test set lies outside issue 18's ranges at 1 or 2 sigma
        (:func:`casnet.core.calibration.miscalibration_reason`; the test suite fills it). Its
        summary rows marked ``"sigma": True`` (the coverages) then say "sigma miscalibrated".
    """

    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    degenerate: dict[str, str] = field(default_factory=dict)
    miscalibrated: dict[str, str] = field(default_factory=dict)
