"""What a run opens: a model and a data set, described so any process can open them.

A :class:`ModelSource` or :class:`DataSource` holds either the object itself (a run in this
process) or the names and paths that rebuild it (``--model``, ``--weights``, ``--mean``,
``--std``; ``--data``, ``--image-size``), which travel to other processes and machines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from classwise.data.base import Dataset
from classwise.errors import UsageError


@dataclass(frozen=True)
class DataSource:
    """A dataset, or what :func:`classwise.load_data` opens it from."""

    data: str | Dataset
    image_size: int | None = None

    def open(self) -> Dataset:
        from classwise.data import load_data

        return load_data(self.data, image_size=self.image_size)

    @property
    def portable(self) -> bool:
        """Whether another process can open it (a name or path, not an object)."""
        return isinstance(self.data, str)


@dataclass(frozen=True)
class ModelSource:
    """A model, or what :func:`classwise.load_model` builds it from."""

    model: str | nn.Module
    weights: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def open(self, data: Dataset, device: str | None = None) -> nn.Module:
        from classwise.models import load_model

        return load_model(self.model, device=device, weights=self.weights, mean=self.mean,
                          std=self.std, image_shape=data.image_shape,
                          num_classes=data.num_classes)

    @property
    def portable(self) -> bool:
        return isinstance(self.model, str)

    @property
    def name(self) -> str:
        """What results call the model: its path or spec, else its class name."""
        return self.model if isinstance(self.model, str) else type(self.model).__name__


def model_source(model: str | Path | nn.Module | ModelSource, weights: str | Path | None = None,
                 mean: float | Sequence[float] | None = None,
                 std: float | Sequence[float] | None = None) -> ModelSource:
    """``model`` as a :class:`ModelSource` (kept if it is one)."""
    if isinstance(model, ModelSource):
        return model
    return ModelSource(model if isinstance(model, nn.Module) else str(model),
                       None if weights is None else str(weights), _floats(mean), _floats(std))


def data_source(data: str | Path | Dataset | DataSource,
                image_size: int | None = None) -> DataSource:
    """``data`` as a :class:`DataSource` (kept if it is one)."""
    if isinstance(data, DataSource):
        return data
    return DataSource(data if isinstance(data, Dataset) else str(data), image_size)


def _floats(values: float | Sequence[float] | None) -> tuple[float, ...] | None:
    if values is None:
        return None
    return tuple(float(v) for v in np.atleast_1d(np.asarray(values, dtype=np.float64)))


def require_portable(model: ModelSource, data: DataSource, what: str) -> None:
    """Refuse objects where ``what`` has to open the model and data in other processes."""
    if not (model.portable and data.portable):
        raise UsageError(f"{what} opens the model and data in other processes; give them as "
                         "paths or names every worker can open")


def fingerprint(model: nn.Module, data: Dataset) -> dict[str, str]:
    """Short hashes of the model's weights and the data's labels and shapes: a checkpoint
    records them so a run is never resumed on a retrained model or other data."""
    weights = hashlib.sha256()  # the values only: a wrapper around the same model is the same
    for tensor in model.state_dict().values():
        weights.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    labels = hashlib.sha256(repr(data.image_shape).encode())
    for split in (data.train, data.test):
        labels.update(np.ascontiguousarray(split.labels).tobytes())
    return {"model_weights": weights.hexdigest()[:16], "data_labels": labels.hexdigest()[:16]}
