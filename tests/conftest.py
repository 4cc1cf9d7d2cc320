import os

import pytest
import torch

from bench.catalog import load_all

load_all()
# The tests' models are tiny: one thread avoids OpenMP start-up and barrier costs that
# dominate such ops (and explode when the two cores are shared with another process).
torch.set_num_threads(1)
# Exploratory reports print the published confirm run's headline (bench.report.publish): the tests' own
# reports must not depend on what is published in this checkout, so they look nowhere unless a test says.
os.environ["BENCH_PUBLISHED"] = ""


@pytest.fixture(scope="session")
def digits():
    from bench.data import load_dataset

    return load_dataset("digits")
