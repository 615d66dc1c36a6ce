"""Checkpoints of a search, so an interrupted run resumes and loses little.

A checkpoint folder holds ``run.json`` (what the run is: model, data, settings, seed),
``chunk_<i>.pt`` for each finished chunk of classes and ``partial_<i>.pt`` for the chunk
in progress (masks, optimiser, sampler and early-stopping state). All files are written
atomically. Resuming a different run from the folder is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from classwise.errors import UsageError
from classwise.fileio import atomic_path, write_json

DIRNAME = ".checkpoint"


class Checkpoint:
    """Finished and in-progress chunks of one run, kept under ``folder``."""

    def __init__(self, folder: str | Path, identity: dict[str, Any], resume: bool) -> None:
        self.folder = Path(folder)
        self.identity = json.loads(json.dumps(identity, default=str))
        run = self.folder / "run.json"
        if run.is_file():
            saved = json.loads(run.read_text())
            if saved != self.identity:
                changed = sorted(k for k in set(saved) | set(self.identity)
                                 if saved.get(k) != self.identity.get(k))
                raise UsageError(f"{self.folder} holds a checkpoint of a different run "
                                 f"({', '.join(changed)} differ); rerun with the same "
                                 "arguments, or --force to start afresh")
            if not resume:
                shutil.rmtree(self.folder)
        elif resume and not run.is_file():
            raise UsageError(f"nothing to resume in {self.folder.parent}; drop --resume")

    def start(self) -> None:
        """Record the run's identity (once the inputs have been checked)."""
        if not (self.folder / "run.json").is_file():
            write_json(self.folder / "run.json", self.identity)

    def _load(self, name: str) -> dict[str, Any] | None:
        path = self.folder / name
        return torch.load(path, weights_only=False) if path.is_file() else None

    def _save(self, name: str, payload: dict[str, Any]) -> None:
        with atomic_path(self.folder / name) as tmp:
            torch.save(payload, tmp)

    def finished(self, chunk: int) -> dict[str, Any] | None:
        return self._load(f"chunk_{chunk}.pt")

    def partial(self, chunk: int) -> dict[str, Any] | None:
        return self._load(f"partial_{chunk}.pt")

    def save_partial(self, chunk: int, payload: dict[str, Any]) -> None:
        self._save(f"partial_{chunk}.pt", payload)

    def save_finished(self, chunk: int, payload: dict[str, Any]) -> None:
        self._save(f"chunk_{chunk}.pt", payload)
        (self.folder / f"partial_{chunk}.pt").unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
