"""Prediction 4, interpretability: the metrics live in :mod:`bench.evaluate.factors`; the protocol turns
encoders into tidy rows and matrices (protocol), the view reads them into verdicts (view) and
figures (figures).

Imports nothing: :func:`bench.catalog.load_all` registers ``protocol`` and ``view``, and a report
imports the view alone (:func:`bench.catalog.load_views`), never the protocol and never torch."""
