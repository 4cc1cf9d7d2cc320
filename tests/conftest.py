import pytest
import torch

from bench.catalog import load_all

load_all()
# The tests' models are tiny: one thread avoids OpenMP start-up and barrier costs that
# dominate such ops (and explode when the two cores are shared with another process).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    from bench.data import load_dataset

    return load_dataset("digits")
