"""Checkpoints of a run, so an interrupted run resumes and loses nothing it finished.

A checkpoint folder holds ``run.json`` (what the run is: model and data fingerprints,
settings, seed), ``chunk_<key>.pt`` for each finished piece of work and
``partial_<key>.pt`` for a search in progress (masks, optimiser, sampler and
early-stopping state, as they stood between two steps). All files are written atomically.
Resuming a different run from the folder is refused, naming what differs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from classwise.errors import UsageError
from classwise.fileio import atomic_path, write_json

DIRNAME = ".checkpoint"
EVERY = 30.0
"""Seconds between saves of a search in progress (it is also saved on Ctrl-C)."""


class Checkpoint:
    """Finished and in-progress work of one run, kept under ``folder``.

    ``identity`` is what makes the run this run; a folder holding another run's is refused
    (and without ``resume`` a folder of the same run is cleared). A search in progress is
    saved every ``every`` seconds.
    """

    def __init__(self, folder: str | Path, identity: dict[str, Any], resume: bool,
                 every: float = EVERY) -> None:
        self.folder, self.every = Path(folder), every
        self.identity = json.loads(json.dumps(identity, default=str))
        run = self.folder / "run.json"
        if run.is_file():
            refuse_other_run(json.loads(run.read_text()), self.identity, self.folder)
            if not resume:
                shutil.rmtree(self.folder)
        elif resume:
            raise UsageError(f"nothing to resume in {self.folder.parent}; drop --resume")

    def start(self) -> None:
        """Record the run's identity (once the inputs have been checked)."""
        if not (self.folder / "run.json").is_file():
            write_json(self.folder / "run.json", self.identity)

    def _load(self, name: str) -> Any:
        path = self.folder / name
        return torch.load(path, weights_only=False) if path.is_file() else None

    def _save(self, name: str, payload: Any) -> None:
        with atomic_path(self.folder / name) as tmp:
            torch.save(payload, tmp)

    def finished(self, key: str) -> Any:
        """What :meth:`save_finished` kept under ``key``, or None."""
        return self._load(f"chunk_{key}.pt")

    def partial(self, key: str) -> Any:
        """What :meth:`save_partial` kept under ``key``, or None."""
        return self._load(f"partial_{key}.pt")

    def save_partial(self, key: str, payload: Any) -> None:
        self._save(f"partial_{key}.pt", payload)

    def save_finished(self, key: str, payload: Any) -> None:
        self._save(f"chunk_{key}.pt", payload)
        (self.folder / f"partial_{key}.pt").unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


T = TypeVar("T")


def once(checkpoint: Checkpoint | None, key: str, work: Callable[[], T]) -> T:
    """``work()``, kept under ``key`` in ``checkpoint``: a resumed run reads it back
    instead of doing the work again."""
    done = checkpoint.finished(key) if checkpoint else None
    if done is not None:
        return done
    result = work()
    if checkpoint:
        checkpoint.save_finished(key, result)
    return result


def refuse_other_run(saved: dict[str, Any], identity: dict[str, Any], folder: Path) -> None:
    """A one-line error naming the first setting in which ``saved`` differs from
    ``identity``; nothing when they are the same run."""
    changed = [k for k in dict.fromkeys([*identity, *saved]) if saved.get(k) != identity.get(k)]
    if not changed:
        return
    key = changed[0]
    more = f" (and {len(changed) - 1} more setting(s))" if len(changed) > 1 else ""
    raise UsageError(f"{folder} holds a checkpoint of a different run: {key} was "
                     f"{_short(saved.get(key))}, now {_short(identity.get(key))}{more}; rerun "
                     "with the same arguments, or --force to start afresh")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
