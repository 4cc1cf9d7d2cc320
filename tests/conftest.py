import pytest

from bench.catalog import load_all

load_all()


@pytest.fixture(scope="session")
def digits():
    from bench.data import load_dataset

    return load_dataset("digits")
