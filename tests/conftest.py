"""Shared test set-up: one torch thread for the whole session.

Tiny models run fastest, and steadiest on a busy machine, without thread oversubscription;
a session-scoped fixture also covers module-scoped fixtures, which start before
function-scoped ones.
"""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
