"""One seed for torch, numpy and random."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator(seed: int, *streams: int) -> torch.Generator:
    """A CPU torch generator for one named stream, e.g. ``generator(seed, class_index)``.

    Separate streams make results independent of how work is split or ordered.
    """
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, *streams]).generate_state(1)[0]))
    return g


def rng(seed: int, *streams: int) -> np.random.Generator:
    """A numpy generator for one named stream (see :func:`generator`)."""
    return np.random.default_rng([seed, *streams])
