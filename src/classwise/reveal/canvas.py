"""Canvas candidates: images of the target class, or synthetic solid and noise canvases.

A canvas spec is a ``+``-joined list of sources, each giving candidates per class:
``auto`` (the first ``canvas_candidates`` images of the class's canvas pool),
``index:N`` (its N-th image), ``solid:V`` (every pixel V in [0, 1]; also ``solid:white``,
``solid:black``) and ``noise`` (seeded uniform noise). Synthetic canvases can carry a
trigger that no clean image of the class contains, which matters when scanning for
backdoors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from classwise.data.base import Dataset
from classwise.errors import UsageError
from classwise.reveal.pools import Pools
from classwise.seeding import generator

NAMED_SOLIDS = {"white": 1.0, "black": 0.0, "grey": 0.5, "gray": 0.5}
HELP = ("use auto, index:N, solid:V (V in [0, 1], white or black) or noise, joined by '+', "
        "e.g. auto+solid:white")


@dataclass(frozen=True)
class Candidate:
    """One row of the search: a target class and one canvas for it."""

    target: int
    slot: int
    source: str
    """``train`` (an image of the canvas pool), ``solid`` or ``noise``."""
    train_index: int | None = None
    value: float | None = None

    def record(self) -> dict:
        """The canvas fields of ``results.json``."""
        split = {"train": "train", "solid": f"solid:{self.value:g}" if self.value is not None
                 else "solid", "noise": "noise"}[self.source]
        return {"canvas_split": split, "canvas_index": self.train_index}

    def object_mask(self, data: Dataset) -> np.ndarray | None:
        """The ground-truth object mask (H, W) of a training-image canvas, where ``data``
        has them."""
        masks = data.train.object_masks
        return None if masks is None or self.train_index is None else masks[self.train_index]


def parse_canvas(spec: str) -> list[tuple[str, float | int | None]]:
    """Validate a canvas spec; return its sources as ``(kind, argument)`` pairs."""
    out: list[tuple[str, float | int | None]] = []
    for part in [p.strip() for p in str(spec).split("+")]:
        kind, _, arg = part.partition(":")
        if kind == "auto" and not arg:
            out.append(("auto", None))
        elif kind == "noise" and not arg:
            out.append(("noise", None))
        elif kind == "index" and arg.isdigit():
            out.append(("index", int(arg)))
        elif kind == "solid" and _solid_value(arg) is not None:
            out.append(("solid", _solid_value(arg)))
        else:
            raise UsageError(f"unknown canvas {part!r}; {HELP}")
    return out


def _solid_value(arg: str) -> float | None:
    if arg in NAMED_SOLIDS:
        return NAMED_SOLIDS[arg]
    try:
        value = float(arg)
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


def candidates_for(target: int, spec: str, count: int, pools: Pools,
                   labels: np.ndarray) -> list[Candidate]:
    """The canvas candidates of ``target`` under ``spec`` (``count`` images for ``auto``)."""
    pool = pools.canvas_candidates(labels, target)
    out: list[Candidate] = []
    for kind, arg in parse_canvas(spec):
        slot = len(out)
        if kind == "auto":
            out += [Candidate(target, slot + i, "train", int(pool[i]))
                    for i in range(min(count, len(pool)))]
        elif kind == "index":
            if arg >= len(pool):
                raise UsageError(f"canvas index {arg} is out of range for class {target}: its "
                                 f"canvas pool holds {len(pool)} images; use index:0.."
                                 f"{len(pool) - 1}")
            out.append(Candidate(target, slot, "train", int(pool[arg])))
        else:
            out.append(Candidate(target, slot, kind, value=arg))
    return out


def canvas_images(cands: list[Candidate], data: Dataset, seed: int) -> torch.Tensor:
    """The canvases of ``cands`` as float (R, C, H, W) in [0, 1] on the CPU."""
    shape = data.image_shape
    train = [i for i, c in enumerate(cands) if c.source == "train"]
    out = torch.empty(len(cands), *shape)
    if train:
        out[train] = data.train.load([cands[i].train_index for i in train])
    for i, c in enumerate(cands):
        if c.source == "solid":
            out[i] = c.value
        elif c.source == "noise":
            out[i] = torch.rand(shape, generator=generator(seed, c.target, c.slot, 0x401))
    return out


class CanvasBank:
    """The canvases of ``cands`` as a search bank, loaded when taken."""

    def __init__(self, cands: list[Candidate], data: Dataset, seed: int,
                 device: torch.device) -> None:
        self.cands, self.data, self.seed, self.device = cands, data, seed, device

    def __len__(self) -> int:
        return len(self.cands)

    def take(self, positions: np.ndarray) -> torch.Tensor:
        chosen = [self.cands[int(p)] for p in np.asarray(positions).reshape(-1)]
        return canvas_images(chosen, self.data, self.seed).to(self.device)
