"""Prediction 1, prunability: removal orders (criteria), accuracy curves (curves), the protocol
that turns encoders into tidy rows (protocol), and the report's verdicts, tables and figures
(view, figures).

Imports nothing: :func:`bench.catalog.load_all` registers ``protocol`` and ``view``, and a report
imports the view alone (:func:`bench.catalog.load_views`), never the protocol and never torch."""
