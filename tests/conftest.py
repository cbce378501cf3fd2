import os

import pytest


@pytest.fixture(autouse=True)
def _no_global_seed(monkeypatch):
    # Each test decides whether a global seed is set; none leaks in from an earlier test.
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    yield


def pytest_configure(config):
    # ddp_spawn hands the model and data to its workers through shared memory; file descriptors passing
    # (the default) fails in some sandboxes, files in /dev/shm work everywhere.
    import torch.multiprocessing

    torch.multiprocessing.set_sharing_strategy("file_system")
