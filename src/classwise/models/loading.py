"""Load a classifier, check it against a dataset, and export it as TorchScript."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from classwise.errors import UsageError
from classwise.fileio import atomic_path
from classwise.models.factory import build_model, describe, is_code_spec, load_weights
from classwise.models.normalize import Normalized


def default_device() -> torch.device:
    """CUDA or MPS when present, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU when it has none)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def resolve_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """``device`` when given, else the model's own."""
    if device is None:
        return model_device(model)
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if not _available(dev):
        raise UsageError(f"device {device!r} is not available on this machine ("
                         f"{torch.cuda.device_count()} CUDA devices); use --device cpu, or leave "
                         "it out to use a GPU when there is one")
    return dev


def _available(dev: torch.device) -> bool:
    """Whether a CUDA or MPS device exists here (other kinds are left to torch)."""
    if dev.type == "cuda":
        return torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count()
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return mps is not None and mps.is_available()
    return True


def load_model(spec: str | Path | nn.Module, device: str | torch.device | None = None, *,
               weights: str | Path | None = None,
               mean: float | Sequence[float] | None = None,
               std: float | Sequence[float] | None = None,
               image_shape: tuple[int, int, int] | None = None,
               num_classes: int | None = None) -> nn.Module:
    """A classifier taking float ``(N, C, H, W)`` in [0, 1], in eval mode, on ``device``.

    ``spec`` is a module, a TorchScript file, a ``classwise train`` folder holding
    ``model.ts``, or code that builds the model: ``file.py:NAME``, ``package.module:NAME``,
    ``torchvision:NAME`` or ``timm:NAME`` (see :mod:`classwise.models.factory`; factories get
    ``num_classes`` and ``image_shape`` when they take them). ``weights`` is a state_dict
    (``.pt``, ``.pth``, ``.safetensors``) loaded into the model. ``mean`` and ``std`` are the
    normalisation the model expects, in [0, 1] units; the returned model applies it inside
    (:class:`Normalized`). Without ``device`` a module given as such stays where it is, and
    a model read from disk goes to the GPU when one is present.
    """
    if isinstance(spec, nn.Module) or not is_code_spec(str(spec)):
        model = spec if isinstance(spec, nn.Module) else _load_torchscript(spec)
        if weights is not None:
            load_weights(model, weights)
    else:
        model = build_model(str(spec), weights=weights, num_classes=num_classes,
                            image_shape=image_shape)
    if mean is not None or std is not None:
        model = Normalized(model, 0.0 if mean is None else mean, 1.0 if std is None else std)
        if image_shape is not None and model.channels not in (1, image_shape[0]):
            raise UsageError(f"mean/std give {model.channels} values but the images have "
                             f"{image_shape[0]} channels; give one value per channel")
    if device is not None:
        dev = resolve_device(model, device)
    elif isinstance(spec, nn.Module):
        dev = model_device(spec)
    else:
        dev = default_device()
    return model.to(dev).eval()


def _load_torchscript(spec: str | Path) -> nn.Module:
    path = Path(spec)
    if path.is_dir():
        path = path / "model.ts"
    if not path.is_file():
        raise UsageError(f"no model at {str(spec)!r}; give a TorchScript file, a folder written "
                         "by 'classwise train', file.py:FACTORY, package.module:FACTORY, "
                         "torchvision:NAME or timm:NAME")
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # torch raises many types for a bad archive
        raise UsageError(f"cannot read {path} as a TorchScript model ({describe(e)}); export it "
                         "with torch.jit.script, or give the code that builds it "
                         "(file.py:FACTORY) and this file as its weights") from None


def parameter_count(model: nn.Module) -> int:
    """How many parameters ``model`` has (what a scan reference records of its architecture)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def check_model(model: nn.Module, images: torch.Tensor, num_classes: int) -> None:
    """Run ``model`` on a few images; raise a one-line error if its output is unusable."""
    x = images[:2].to(model_device(model))
    try:
        out = model(x)
    except Exception as e:
        raise UsageError(f"the model rejects images of shape {tuple(x.shape[1:])} "
                         f"({describe(e)}); "
                         "give data of the size and channels the model was trained on") from None
    if not isinstance(out, torch.Tensor) or out.shape != (len(x), num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UsageError(f"the model returns {shape} for {len(x)} images; expected "
                         f"({len(x)}, {num_classes}) logits, one per class of the data")
    if not torch.isfinite(out).all():
        raise UsageError("the model returns NaN or infinite logits on clean images; "
                         "check its weights")


@torch.no_grad()
def fast_layout(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """``model``, on the CPU with its 4-D weights laid out channels-last (in place), where
    oneDNN's convolutions run about 1.5x faster; kept only if it then gives the same logits
    on ``images`` (a few clean images). Elsewhere, and for a model that does not, as it was."""
    if model_device(model).type != "cpu":
        return model
    x = images.to("cpu")
    before = model(x)
    model.to(memory_format=torch.channels_last)
    try:
        same = torch.allclose(model(x), before, rtol=1e-4, atol=1e-5)
    except Exception:  # a model that views its weights as contiguous
        same = False
    if not same:
        model.to(memory_format=torch.contiguous_format)
    return model


def checked_layout(model: nn.Module, images: torch.Tensor, num_classes: int) -> nn.Module:
    """``model`` checked on ``images`` (:func:`check_model`), then in its fastest layout
    (:func:`fast_layout`): how evaluate and scan start. A reveal checks once where it is
    called and lays the model out where its search runs (a Ray worker, maybe), apart."""
    check_model(model, images, num_classes)
    return fast_layout(model, images)


def save_torchscript(model: nn.Module, path: str | Path, example: torch.Tensor) -> None:
    """Export ``model`` (eval mode, CPU) as TorchScript at ``path``, atomically."""
    model = model.eval().cpu()
    try:
        scripted = torch.jit.script(model)
    except Exception:
        scripted = torch.jit.trace(model, example.cpu())
    with atomic_path(path) as tmp:
        scripted.save(str(tmp))


def read_meta(model_spec: str | Path) -> dict:
    """The ``meta.json`` beside a trained model, or an empty dict (also for code specs)."""
    if is_code_spec(str(model_spec)):
        return {}
    path = Path(model_spec)
    meta = (path if path.is_dir() else path.parent) / "meta.json"
    try:
        return json.loads(meta.read_text())
    except (OSError, ValueError):
        return {}
