import pytest
import torch

from bench.catalog import load_all

load_all()
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits():
    from bench.data import load_dataset

    return load_dataset("digits")
