import pytest


@pytest.fixture(autouse=True)
def _no_global_seed(monkeypatch):
    # Each test decides whether a global seed is set; none leaks in from an earlier test.
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    # Models built before a test seeds would otherwise start from whatever RNG state the previous test left, and
    # a chaotic run (a learning rate far too high) would give other findings depending on the tests run before.
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is many times faster than contending for two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    # ddp_spawn hands the model and data to its workers through shared memory; file descriptors passing
    # (the default) fails in some sandboxes, files in /dev/shm work everywhere.
    import torch.multiprocessing

    torch.multiprocessing.set_sharing_strategy("file_system")
