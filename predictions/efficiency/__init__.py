"""Prediction 3, parameter efficiency: parameter counts and accuracy-vs-parameters curves (curves),
the protocol that sweeps widths and writes tidy rows (protocol), and the report's verdicts, tables
and figures (view, tables, figures)."""

from predictions.efficiency import protocol, view  # noqa: F401  (registers the prediction and its view)
