"""Prediction 3, parameter efficiency: parameter counts and accuracy-vs-parameters curves (curves),
the protocol that sweeps widths and writes tidy rows (protocol), and the report's verdicts, tables
and figures (view, tables, figures).

Imports nothing: :func:`bench.catalog.load_all` registers ``protocol`` and ``view``, and a report
imports the view alone (:func:`bench.catalog.load_views`), never the protocol and never torch."""
