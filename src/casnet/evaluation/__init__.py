"""Evaluation of registered models (Tohill et al. 2021 Sec. 4): test set, noise and redshift;
and the real-galaxy suite (issue 29).

Each suite is a function of a :class:`~casnet.evaluation.predictor.Predictor` (an in-process
registered model or a scoring server) and data, returning a :class:`SuiteResult`;
:mod:`casnet.evaluation.run` logs them to one MLflow run.
"""

from casnet.evaluation.result import SuiteResult

__all__ = ["SuiteResult"]
