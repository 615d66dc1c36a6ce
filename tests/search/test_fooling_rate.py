"""The held-out rate that picks canvases and stops the search early, counted by hand."""

from __future__ import annotations

import numpy as np
import torch
from helpers import digits, tiny_model

from classwise.reveal.pools import SplitBank, partition
from classwise.search.engine import fooling_rate
from classwise.search.ops import stamp
from classwise.search.rows import Rows, RowSampler


def test_rates_of_rows_batched_together_equal_each_row_counted_alone():
    data, model = digits(), tiny_model()
    pools = partition(data.train.labels)
    bank = SplitBank(data.train, pools.search, torch.device("cpu"))
    labels = data.train.labels[pools.search]
    targets = [3, 3, 7, 0]
    samplers = [RowSampler(np.flatnonzero(labels != t), 0, t, slot, val_images=45)
                for slot, t in enumerate(targets)]
    gen = torch.Generator().manual_seed(0)
    canvases = torch.rand(len(targets), 1, 8, 8, generator=gen)
    patterns = torch.rand(len(targets), 8, 8, generator=gen) > 0.6
    rows = Rows(torch.tensor(targets), canvases, samplers)

    rates = fooling_rate(model, patterns, rows, bank, batch_size=32)  # rows split across batches

    with torch.no_grad():
        by_hand = [float((model(stamp(bank.take(s.val), canvases[i], patterns[i])).argmax(1)
                          == targets[i]).float().mean()) for i, s in enumerate(samplers)]
    assert rates.tolist() == by_hand
    assert len(set(by_hand)) > 1  # the rows really differ, so a mix-up would show
