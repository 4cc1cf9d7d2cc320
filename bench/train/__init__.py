"""Training: the methods contract, the subject, the losses and the one training loop (eager, compiled, or
the seeds of a cell together). Knows nothing of the engine, the cache or the reports."""
