"""Prediction 2, transfer: label-budget probes on new data and unseen classes (protocol, view)."""

from predictions.transfer import protocol, view  # noqa: F401  (registers the prediction and its view)
