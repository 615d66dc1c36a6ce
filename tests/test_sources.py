"""The fingerprint a checkpoint records of the model and the data."""

import torch
from helpers import digits
from torch import nn

from classwise.sources import fingerprint


def batch_norm_model() -> nn.Module:
    """A model whose state holds a 0-dim integer tensor (BatchNorm's batch count)."""
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(10))


def test_every_kind_of_weight_is_hashed_and_any_change_shows():
    torch.manual_seed(0)
    model = batch_norm_model()
    model(torch.rand(2, 1, 8, 8))
    data = digits()
    first = fingerprint(model, data)
    assert first == fingerprint(model, data)
    model[1].num_batches_tracked += 1  # the 0-dim counter alone
    assert fingerprint(model, data)["model_weights"] != first["model_weights"]
    assert fingerprint(model, data)["data_labels"] == first["data_labels"]
