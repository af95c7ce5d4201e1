"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test with one intra-op thread: the tensors in these tests are tiny, and on
    a busy 2-core machine two threads spend far more time waiting than computing.
    Restored after.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
