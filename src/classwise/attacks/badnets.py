"""BadNets (Gu et al. 2017): a small square patch stamped at a fixed place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from classwise.attacks._trigger import PatchAttack, patch_size
from classwise.attacks.registry import register_attack
from classwise.errors import UsageError

CONTENTS = ("white", "checkerboard")


@register_attack("badnets")
class BadNets(PatchAttack):
    """A ``size`` x ``size`` patch at ``position``, or the PNG ``trigger_file``.

    ``size`` defaults to ``max(3, min(H, W) // 8)`` (3 px at 28 px, 4 px at 32 px).
    ``content`` is ``"white"`` or ``"checkerboard"`` (white at the patch's top-left
    pixel). ``position`` is a corner name, ``"center"`` or ``"x,y"`` (top-left pixel);
    named corners are flush with the image border. ``trigger_file`` is a PNG whose
    alpha channel is the mask; it replaces ``size`` and ``content``.
    """

    def __init__(self, image_shape: tuple[int, int, int], seed: int = 0,
                 size: int | None = None, position: str = "bottom-right",
                 content: str = "white", trigger_file: str | Path | None = None) -> None:
        self.size, self.content = None, None
        if trigger_file is None:
            self.size = patch_size(size, image_shape, "patch", 1, lambda side: max(3, side // 8))
            if content not in CONTENTS:
                raise UsageError(f"unknown content {content!r}; use {' or '.join(CONTENTS)}")
            self.content = content
        super().__init__(image_shape, seed, position, trigger_file)

    def _built_in(self) -> tuple[np.ndarray, np.ndarray]:
        c, size = self.image_shape[0], self.size
        patch = np.broadcast_to(_content(self.content, size), (c, size, size))
        return patch, np.ones((size, size), dtype=np.float32)

    def options(self) -> dict[str, Any]:
        return super().options() | {"size": self.size, "content": self.content}


def _content(content: str, size: int) -> np.ndarray:
    """A ``size`` x ``size`` patch: all white, or a checkerboard starting white."""
    if content == "white":
        return np.ones((size, size), dtype=np.float32)
    rows, cols = np.indices((size, size))
    return ((rows + cols) % 2 == 0).astype(np.float32)
