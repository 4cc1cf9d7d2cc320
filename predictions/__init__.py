"""Predictions: one file per protocol, registered under its file name (imported by
:func:`bench.catalog.load_all`)."""
