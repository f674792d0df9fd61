"""Fixtures of the anomaly tests."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small SP/TM tensors: one intra-op thread avoids OpenMP overhead on a shared, busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
