"""Prediction 1, prunability: removal orders (criteria), accuracy curves (curves), the protocol
that turns encoders into tidy rows (protocol), and the report's verdicts, tables and figures
(view, figures)."""

from predictions.pruning import protocol, view  # noqa: F401  (registers the prediction and its view)
