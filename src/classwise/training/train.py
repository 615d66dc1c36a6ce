"""Train a built-in architecture and write it as TorchScript with its meta data."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from classwise.batching import accuracy
from classwise.data import load_data
from classwise.data.base import Dataset, Split
from classwise.fileio import write_json
from classwise.models import create_model, default_arch, default_device, save_torchscript
from classwise.models.registry import architectures
from classwise.progress import progress
from classwise.seeding import rng, seed_everything
from classwise.training.settings import Setting, make_setting
from classwise.versions import versions

SHIFT = 2
"""Pixels by which ``augment`` translates an image at most, in x and in y."""


@dataclass
class TrainedModel:
    """A trained classifier (eval mode, [0, 1] input) and the figures of its training."""

    model: nn.Module
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | Path) -> Path:
        """Write ``model.ts``, ``model.pt`` and ``meta.json`` into ``out``."""
        out = Path(out)
        c, h, w = self.meta["image_shape"]
        save_torchscript(self.model, out / "model.ts", torch.zeros(1, c, h, w))
        from classwise.fileio import atomic_path

        with atomic_path(out / "model.pt") as tmp:
            torch.save(self.model.state_dict(), tmp)
        write_json(out / "meta.json", self.meta)
        return out


def translate(x: torch.Tensor, pixels: int = SHIFT) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) moved by up to ``pixels`` in x and in y.

    Zero padding, then a random crop of the original size (no flips). The offsets are
    drawn on the CPU from torch's global generator.
    """
    n, c, h, w = x.shape
    offsets = torch.randint(0, 2 * pixels + 1, (2, n, 1)).to(x.device)
    rows = offsets[0] + torch.arange(h, device=x.device)
    cols = offsets[1] + torch.arange(w, device=x.device)
    padded = F.pad(x, (pixels, pixels, pixels, pixels))
    return padded[torch.arange(n, device=x.device)[:, None, None, None],
                  torch.arange(c, device=x.device)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def fit(model: nn.Module, split: Split, setting: Setting, epochs: int, batch_size: int,
        lr: float, seed: int, device: torch.device, show_progress: bool = True,
        augment: bool = False) -> None:
    """Train ``model`` in place: AdamW with a one-cycle schedule, cross-entropy.

    Batches follow a numpy generator seeded from ``seed``; every other random draw
    (initial weights aside: the caller's) comes from torch's global generator.
    """
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * int(np.ceil(len(split) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    order = rng(seed, 0xF17)
    labels = torch.from_numpy(split.labels)
    bar = progress(total=steps, enabled=show_progress, desc="train", unit="step")
    for epoch in range(epochs):
        perm = order.permutation(len(split))
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            x, y = split.load(idx).to(device), labels[idx].to(device)
            if augment:
                x = translate(x)
            x = setting.perturb(model, x, y)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()


@contextmanager
def own_random_state(seed: int) -> Iterator[None]:
    """Seed torch (CPU and accelerators), numpy's and Python's global generators with
    ``seed`` inside the block; the caller's states are back after it."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=range(torch.accelerator.device_count())):
        try:
            seed_everything(seed)
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


def train(data: str | Path | Dataset, arch: str | None = None, setting: str = "natural",
          epochs: int = 5, seed: int = 0, out: str | Path | None = None, batch_size: int = 64,
          lr: float = 2e-3, device: str | None = None, show_progress: bool = True,
          augment: bool = False, **options: Any) -> TrainedModel:
    """Train ``arch`` on ``data`` in ``setting``; write it into ``out`` when given.

    ``options`` are the setting's own (e.g. ``attack``, ``target`` for backdoor,
    ``epsilon`` for adversarial). ``augment`` trains on images moved by up to 2 pixels.
    The model takes float ``(N, C, H, W)`` in [0, 1]. The caller's global random
    generators are left as they were.
    """
    from classwise.errors import UsageError

    if epochs < 1:
        raise UsageError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if not 0 < lr < float("inf"):
        raise UsageError(f"learning rate must be a positive number, got {lr}; e.g. 2e-3")
    ds = load_data(data)
    arch = arch or default_arch(ds.image_shape)
    if arch not in architectures():
        raise UsageError(f"unknown architecture {arch!r}; choose one of "
                         f"{', '.join(architectures())}")
    dev = torch.device(device) if device else default_device()
    with own_random_state(seed):
        the_setting = make_setting(setting, ds, seed=seed, **options)
        model = create_model(arch, ds.image_shape, ds.num_classes)
        start = time.perf_counter()
        fit(model, the_setting.train_split(ds), the_setting, epochs, batch_size, lr, seed, dev,
            show_progress, augment)
        seconds = time.perf_counter() - start
        meta = {
            "data": ds.name, "arch": arch, "setting": setting, "epochs": epochs, "seed": seed,
            "batch_size": batch_size, "lr": lr, "augment": augment,
            "image_shape": list(ds.image_shape),
            "num_classes": ds.num_classes, "class_names": ds.class_names,
            "split_sizes": {"train": len(ds.train), "test": len(ds.test)},
            "clean_test_accuracy": accuracy(model, ds.test, device=dev),
            **the_setting.evaluate(model, ds, dev),
            "setting_options": the_setting.options(),
            "seconds": round(seconds, 2), "device": str(dev), "versions": versions(),
        }
    result = TrainedModel(model, meta)
    if out is not None:
        result.save(out)
        the_setting.save_artifacts(Path(out))
    return result
