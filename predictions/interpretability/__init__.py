"""Prediction 4, interpretability: the metrics live in :mod:`bench.evaluate.factors`; the protocol turns
encoders into tidy rows and matrices (protocol), the view reads them into verdicts (view) and
figures (figures)."""

from predictions.interpretability import protocol, view  # noqa: F401  (registers the prediction and its view)
