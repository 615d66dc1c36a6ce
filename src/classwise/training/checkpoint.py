"""Checkpoints of a training, so an interrupted run continues to the same weights.

``OUT/.checkpoint/`` holds ``run.json``, the request (data, arch, setting and its options,
epochs, batch size, learning rate, augmentation, seed), and ``state.pt``, everything the
loop needs to go on as if it had never stopped: where it is (epoch, position in the
epoch's order, the order itself), the model, optimiser and schedule, the random states it
draws from (torch's generator, the batch-order generator) and the setting's own state
(the adversarial warm-up's images seen, the backdoor's poisoned rows). Both are written
atomically. Continuing a checkpoint of a different request is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from classwise.errors import UsageError
from classwise.fileio import atomic_path, write_json
from classwise.search.checkpoint import DIRNAME  # the folder runs.check_out knows

REQUEST, STATE = "run.json", "state.pt"


def as_json(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(obj))


def differences(recorded: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """``name (X there, Y here)`` for each setting that differs. Within the same training
    setting, its options (``setting_options``) are compared one by one."""
    def flat(d: dict[str, Any]) -> dict[str, Any]:
        same = recorded.get("setting") == wanted.get("setting")
        return {**{k: v for k, v in d.items() if k != "setting_options"},
                **(d.get("setting_options", {}) if same else {})}

    there, here = flat(recorded), flat(wanted)
    return [f"{k} ({there.get(k)} there, {here.get(k)} here)"
            for k in sorted(set(there) | set(here)) if there.get(k) != here.get(k)]


def recorded_request(out: str | Path) -> dict[str, Any] | None:
    """The request of the checkpoint in ``out``, if it holds one."""
    try:
        return json.loads((Path(out) / DIRNAME / REQUEST).read_text())
    except (OSError, ValueError):
        return None


class TrainingCheckpoint:
    """The checkpoint of the training of ``request`` in ``out/.checkpoint``.

    With ``resume``, the folder must hold a checkpoint of the same request (else a
    :class:`UsageError` naming what differs); without, :meth:`start` discards any
    checkpoint there. Nothing is written or removed before :meth:`start`.
    """

    def __init__(self, out: str | Path, request: dict[str, Any], resume: bool) -> None:
        self.out = Path(out)
        self.folder = self.out / DIRNAME
        self.request = as_json(request)
        self.resume = resume
        if resume:
            recorded = recorded_request(self.out)
            if recorded is None:
                raise UsageError(f"nothing to resume in {self.out}; drop --resume")
            changed = differences(recorded, self.request)
            if changed:
                raise UsageError(f"{self.out} holds an interrupted training with other "
                                 f"settings: {'; '.join(changed)}; rerun with the same "
                                 "arguments, or --force to start afresh")

    def start(self) -> None:
        """Discard another checkpoint unless resuming; record the request."""
        if not self.resume:
            shutil.rmtree(self.folder, ignore_errors=True)
        write_json(self.folder / REQUEST, self.request)

    def load(self) -> dict[str, Any] | None:
        """The saved loop state (None if the run stopped before its first save)."""
        path = self.folder / STATE
        return torch.load(path, weights_only=True) if self.resume and path.is_file() else None

    def save(self, state: dict[str, Any]) -> None:
        """Write the loop state atomically."""
        with atomic_path(self.folder / STATE) as tmp:
            torch.save(state, tmp)

    def remove(self) -> None:
        """Delete the checkpoint (the model files are written)."""
        shutil.rmtree(self.folder, ignore_errors=True)
