"""Prediction 2, transfer: label-budget probes on new data and unseen classes (protocol, view).

Imports nothing: :func:`bench.catalog.load_all` registers ``protocol`` and ``view``, and a report
imports the view alone (:func:`bench.catalog.load_views`), never the protocol and never torch."""
