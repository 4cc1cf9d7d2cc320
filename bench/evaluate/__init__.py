"""Evaluation: the linear probe, the metrics, the factor scores and the statistics that turn tidy rows into
verdicts. No training and no engine."""
