"""The sanity protocol ``probe``: linear-probe and kNN accuracy of every method (protocol, view)."""

from predictions.probe import protocol, view  # noqa: F401  (registers the prediction and its view)
