"""Shared test set-up: one torch thread for the whole session, and Ctrl-C as a terminal has it.

Tiny models run fastest, and steadiest on a busy machine, without thread oversubscription;
a session-scoped fixture also covers module-scoped fixtures, which start before
function-scoped ones.
"""

import signal

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt in this process, as in a terminal: a suite started in
    the background by a non-interactive shell inherits SIGINT ignored."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)
