"""Train a built-in architecture and write it as TorchScript with its meta data."""

from __future__ import annotations

import json
import random
import shutil
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
from classwise.errors import UsageError
from classwise.fileio import atomic_path, write_json
from classwise.interrupt import safe_points
from classwise.models import create_model, default_arch, default_device, save_torchscript
from classwise.models.registry import architectures
from classwise.progress import progress
from classwise.seeding import rng, seed_everything
from classwise.training.checkpoint import TrainingCheckpoint, as_json, recorded_request
from classwise.training.settings import Setting, make_setting
from classwise.versions import versions

SHIFT = 2
"""Pixels by which ``augment`` translates an image at most, in x and in y."""
BEFORE_AUGMENT = {"augment": False}
"""What a ``meta.json`` written before the option existed trained with."""


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
        augment: bool = False, checkpoint: TrainingCheckpoint | None = None) -> float:
    """Train ``model`` in place: AdamW with a one-cycle schedule, cross-entropy.

    Batches follow a numpy generator seeded from ``seed``; every other random draw
    (initial weights aside: the caller's) comes from torch's global generator. With
    ``checkpoint``, the loop saves its state after every epoch and, on the first Ctrl-C,
    after the current batch (then raises ``KeyboardInterrupt``); it continues a saved
    state. Returns the seconds spent training, over all sessions.
    """
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    per_epoch = int(np.ceil(len(split) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * per_epoch,
                                                pct_start=0.15)
    order = rng(seed, 0xF17)
    epoch, start, perm, seconds = 0, 0, None, 0.0
    saved = checkpoint.load() if checkpoint else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        setting.load_state_dict(saved["setting"])
        _set_random_states(saved["random"], order, device)
        epoch, start, seconds = saved["epoch"], saved["start"], saved["seconds"]
        perm = None if saved["perm"] is None else saved["perm"].numpy()

    def state() -> dict[str, Any]:
        return {"epoch": epoch, "start": start,
                "perm": None if perm is None else torch.from_numpy(perm),
                "random": _random_states(order, device), "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "setting": setting.state_dict(),
                "seconds": seconds + time.perf_counter() - began}

    labels = torch.from_numpy(split.labels)
    bar = progress(total=epochs * per_epoch, initial=epoch * per_epoch + start // batch_size,
                   enabled=show_progress, desc="train", unit="step")
    began = time.perf_counter()
    with safe_points() as stop:
        while epoch < epochs:
            if perm is None:
                perm = order.permutation(len(split))
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
            start += batch_size
            if start >= len(perm):
                epoch, start, perm = epoch + 1, 0, None
            if checkpoint is not None and (start == 0 or stop.requested):
                checkpoint.save(state())
            stop.check()
    bar.close()
    model.eval()
    return seconds + time.perf_counter() - began


def _random_states(order: np.random.Generator, device: torch.device) -> dict[str, Any]:
    """The states of the generators the loop draws from: the batch order's, torch's CPU
    generator and, on a CUDA device, that device's (dropout would draw there)."""
    return {"order": order.bit_generator.state, "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_random_states(states: dict[str, Any], order: np.random.Generator,
                       device: torch.device) -> None:
    """Put back what :func:`_random_states` took."""
    order.bit_generator.state = states["order"]
    torch.set_rng_state(states["torch"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


@contextmanager
def own_random_state(seed: int) -> Iterator[None]:
    """Seed torch (CPU and accelerators), numpy's and Python's global generators with
    ``seed`` inside the block; the caller's states are back after it."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6; fork_rng forks CUDA before
    devices = (accelerator or torch.cuda).device_count()
    with torch.random.fork_rng(devices=range(devices)):
        try:
            seed_everything(seed)
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


def train(data: str | Path | Dataset, arch: str | None = None, setting: str = "natural",
          epochs: int = 5, seed: int = 0, out: str | Path | None = None, batch_size: int = 64,
          lr: float = 2e-3, device: str | None = None, show_progress: bool = True,
          augment: bool = False, reuse: bool = False, resume: bool = False,
          **options: Any) -> TrainedModel:
    """Train ``arch`` on ``data`` in ``setting``; write it into ``out`` when given.

    ``options`` are the setting's own (e.g. ``attack``, ``target`` for backdoor,
    ``epsilon`` for adversarial). ``augment`` trains on images moved by up to 2 pixels.
    The model takes float ``(N, C, H, W)`` in [0, 1]. The caller's global random
    generators are left as they were.

    With ``out``, training keeps a checkpoint in ``out/.checkpoint`` (removed at the
    end); ``resume`` continues it to the weights an uninterrupted run gives. ``reuse``
    makes ``out`` a cache: a model there trained with the same data, arch, setting and
    options, epochs, batch size, lr, augmentation and seed is returned without training,
    an interrupted training of the same is continued, and anything else is replaced.
    """
    if epochs < 1:
        raise UsageError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if not 0 < lr < float("inf"):
        raise UsageError(f"learning rate must be a positive number, got {lr}; e.g. 2e-3")
    if (reuse or resume) and out is None:
        raise UsageError(f"{'reuse' if reuse else 'resume'} needs the folder 'out' to look in")
    ds = load_data(data)
    arch = arch or default_arch(ds.image_shape)
    if arch not in architectures():
        raise UsageError(f"unknown architecture {arch!r}; choose one of "
                         f"{', '.join(architectures())}")
    dev = torch.device(device) if device else default_device()
    with own_random_state(seed):
        the_setting = make_setting(setting, ds, seed=seed, **options)
        request = {"data": ds.name, "arch": arch, "setting": setting,
                   "setting_options": the_setting.options(), "epochs": epochs, "seed": seed,
                   "batch_size": batch_size, "lr": lr, "augment": augment,
                   "image_shape": list(ds.image_shape),
                   "split_sizes": {"train": len(ds.train), "test": len(ds.test)}}
        ckpt = None
        if out is not None:
            out = Path(out)
            if reuse and _trained_as(out, request):
                return _load(out, ds, dev)
            if reuse and not resume:
                resume = recorded_request(out) == as_json(request)
                if not resume and (out / "meta.json").is_file():  # a model of other settings
                    shutil.rmtree(out)
            ckpt = TrainingCheckpoint(out, request, resume)
            ckpt.start()
        model = create_model(arch, ds.image_shape, ds.num_classes)
        seconds = fit(model, the_setting.train_split(ds), the_setting, epochs, batch_size, lr,
                      seed, dev, show_progress, augment, ckpt)
        meta = {
            **request, "num_classes": ds.num_classes, "class_names": ds.class_names,
            "clean_test_accuracy": accuracy(model, ds.test, device=dev),
            **the_setting.evaluate(model, ds, dev),
            "seconds": round(seconds, 2), "device": str(dev), "versions": versions(),
        }
    result = TrainedModel(model, meta)
    if out is not None:
        result.save(out)
        the_setting.save_artifacts(out)
        ckpt.remove()
    return result


def _trained_as(out: Path, request: dict[str, Any]) -> bool:
    """Whether ``out`` holds a model whose ``meta.json`` records ``request``."""
    try:
        meta = json.loads((out / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    recorded = {k: meta.get(k, BEFORE_AUGMENT.get(k)) for k in request}
    return (recorded == as_json(request) and (out / "model.pt").is_file()
            and (out / "model.ts").is_file())


def _load(out: Path, ds: Dataset, device: torch.device) -> TrainedModel:
    """The model that ``out`` holds, as :func:`train` returns it."""
    meta = json.loads((out / "meta.json").read_text())
    model = create_model(meta["arch"], ds.image_shape, ds.num_classes)
    model.load_state_dict(torch.load(out / "model.pt", map_location="cpu", weights_only=True))
    return TrainedModel(model.to(device).eval(), meta)
