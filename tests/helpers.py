"""Shared test helpers: one tiny trained digits model (trained once per session), a reveal
of it, a split that records what it loads, and predictive power counted by hand."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache

import numpy as np
import torch
from torch import nn

from classwise.data import load_data
from classwise.data.base import ArraySplit, Dataset
from classwise.results import RevealResult
from classwise.reveal import reveal
from classwise.training import TrainedModel, train

SMALL = {"max_steps": 10, "canvas_candidates": 2}
"""Overrides that keep a default-preset search on digits around a second."""


@cache
def digits() -> Dataset:
    """The built-in 8x8 digits (1,437 train / 360 test)."""
    return load_data("digits")


@cache
def tiny_model(seed: int = 0) -> nn.Module:
    """A small CNN trained 5 epochs on digits (about 95% test accuracy). Do not modify it."""
    return train(digits(), arch="small-cnn", epochs=5, seed=seed, show_progress=False).model


POISON_TARGET = 3


@cache
def poisoned() -> TrainedModel:
    """A small CNN trained 8 epochs on digits with a 2x2 white BadNets patch towards class 3."""
    return train(digits(), arch="small-cnn", setting="backdoor", attack="badnets",
                 target=POISON_TARGET, size=2, epochs=8, show_progress=False)


@cache
def revealed() -> RevealResult:
    """Every class of :func:`tiny_model` revealed with the default preset at 10% of the pixels,
    with its budget curve."""
    return reveal(tiny_model(), digits(), budget=0.1, show_progress=False, curve=True)


class RecordingSplit(ArraySplit):
    """An in-memory split that remembers every index it loads."""

    def __init__(self, split: ArraySplit) -> None:
        super().__init__(split.images, split.labels, split.object_masks)
        self.loaded: list[np.ndarray] = []

    def _load(self, indices: np.ndarray) -> torch.Tensor:
        self.loaded.append(indices.copy())
        return super()._load(indices)

    def all_loaded(self) -> np.ndarray:
        return np.concatenate(self.loaded) if self.loaded else np.zeros(0, np.int64)


def recording_digits() -> Dataset:
    """Digits whose train and test splits record every load."""
    d = digits()
    return Dataset("digits", RecordingSplit(d.train), RecordingSplit(d.test),
                   list(d.class_names))


@torch.no_grad()
def power_by_hand(model: nn.Module, data: Dataset, target: int, canvas: np.ndarray,
                  pattern: np.ndarray | None) -> float:
    """Share of ``data.test``'s other-class images predicted as ``target`` once stamped."""
    idx = np.flatnonzero(data.test.labels != target)
    x = data.test.load(idx).numpy()
    if pattern is not None:
        x = np.where(pattern, canvas, x)
    preds = model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).argmax(1).numpy()
    return float((preds == target).mean())


CHILD = ("import signal, sys, torch; signal.signal(signal.SIGINT, signal.default_int_handler); "
         "torch.set_num_threads(1); from classwise.cli import main; sys.exit(main(sys.argv[1:]))")
"""The command in a fresh Python that takes Ctrl-C as a terminal's foreground job would (a
child of a non-interactive shell starts with SIGINT ignored), on one thread."""


def classwise_child(*argv: str) -> subprocess.Popen:
    """``classwise ARGV`` in a child process that a test can interrupt with SIGINT."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
