"""Dense pattern families: whole-image patterns with a size budget, beside the pixel patch.

A pixel pattern replaces a few pixels by a canvas's; a dense pattern changes every pixel of
every image the same way, within a budget on its size. Two families cover the triggers a
patch cannot: a smooth **additive** pattern (a SIG signal or a Blended image mixed in) and
a smooth **warp** (WaNet), both on an 8 x 8 lattice upsampled to the image. Each family
says how its parameters change images, how to project parameters onto a budget, and the
budgets a scan climbs; the search itself is the engine's
(:func:`classwise.search.dense.optimise_dense`), the same for every family.

>>> fam = make_family("warp", (1, 28, 28))
>>> fam.zeros(3, torch.device("cpu")).shape, fam.ladder[:2]
(torch.Size([3, 2, 8, 8]), (0.25, 0.5))
>>> make_family("additive", (3, 32, 32)).zeros(3, torch.device("cpu")).shape
torch.Size([3, 3, 8, 8])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from classwise.errors import UsageError
from classwise.registry import Registry

GRID = 8
"""The lattice of the dense families (points per side)."""


class Family:
    """Per-row parameters that change every image the same way, and their size."""

    name: str
    """The name it is registered under."""
    unit: str
    """What a size measures, for a person."""
    ladder: tuple[float, ...]
    """The budgets a scan climbs, ascending."""

    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        self.image_shape = tuple(int(s) for s in image_shape)

    def zeros(self, rows: int, device: torch.device) -> torch.Tensor:
        """Parameters of ``rows`` patterns that change nothing."""
        raise NotImplementedError

    def apply(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Images x (R, B, C, H, W), each row's changed by its parameters (R, ...)."""
        raise NotImplementedError

    def project(self, params: torch.Tensor, size: float) -> torch.Tensor:
        """The parameters nearest to ``params`` whose size is at most ``size``."""
        return params.clamp(-size, size)


FAMILIES: Registry[Family] = Registry("pattern family", fixed=("image_shape",))
register_family = FAMILIES.register
"""Class decorator: register a :class:`Family` subclass under a name."""


def families() -> list[str]:
    """Names of the registered dense families."""
    return FAMILIES.names()


def make_family(name: str, image_shape: tuple[int, int, int]) -> Family:
    """The family ``name`` for images of ``image_shape`` (C, H, W)."""
    return FAMILIES.create(name, image_shape)


class LatticeFamily(Family):
    """A family whose parameters live on a ``grid`` x ``grid`` lattice (never finer than the
    image), upsampled bicubically to the image: its patterns are smooth by construction, so
    a class's natural pattern (strokes of its digit, edges of its shape) costs it more than
    a trigger spread over the whole image costs its target. Its size is the largest lattice
    value (the upsampled field may overshoot it slightly between lattice points)."""

    def __init__(self, image_shape: tuple[int, int, int], grid: int = GRID) -> None:
        super().__init__(image_shape)
        _, h, w = self.image_shape
        if grid < 2:
            raise UsageError(f"{self.name} grid {grid} is too coarse; use at least 2, e.g. 8")
        self.grid = min(int(grid), h, w)

    def field(self, params: torch.Tensor) -> torch.Tensor:
        """The lattice ``params`` (R, K, g, g) upsampled to the image, (R, K, H, W)."""
        size = self.image_shape[1:]
        if tuple(params.shape[-2:]) == size:
            return params
        return F.interpolate(params, size=size, mode="bicubic", align_corners=True)


@register_family("additive")
class Additive(LatticeFamily):
    """``clip(x + p, 0, 1)`` with ``p`` the upsampled lattice, ``|p| <= size`` at every
    lattice point: a smooth pattern added to the whole image, as a SIG signal is or, in
    its coarse part, a Blended image (``(1 - a) x + a b`` adds ``a (b - x)``). Its size is
    the largest change of a lattice point's value (L-infinity, of the [0, 1] range)."""

    unit = "the largest change of a pixel value at the lattice points, of 1"
    ladder = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2)

    def zeros(self, rows: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(rows, self.image_shape[0], self.grid, self.grid, device=device)

    def apply(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (x + self.field(params)[:, None]).clamp(0, 1)


@register_family("warp")
class Warp(LatticeFamily):
    """A smooth warp: displacements (in pixels, x and y) on the lattice, applied by
    bilinear resampling, as WaNet warps (edges repeat the border). Its size is the largest
    displacement of a lattice point in either direction, in pixels."""

    unit = "the largest displacement, in pixels"
    ladder = (0.25, 0.5, 1.0, 2.0, 4.0)

    def __init__(self, image_shape: tuple[int, int, int], grid: int = GRID) -> None:
        super().__init__(image_shape, grid)
        _, h, w = self.image_shape
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w),
                                indexing="ij")
        self._identity = torch.stack([xs, ys], dim=-1)
        self._per_pixel = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)])

    def zeros(self, rows: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(rows, 2, self.grid, self.grid, device=device)

    def apply(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        r, b, c, h, w = x.shape
        shift = self.field(params).permute(0, 2, 3, 1) * self._per_pixel.to(x)
        grid = (self._identity.to(x) + shift)[:, None].expand(r, b, h, w, 2)
        out = F.grid_sample(x.reshape(r * b, c, h, w), grid.reshape(r * b, h, w, 2),
                            mode="bilinear", padding_mode="border", align_corners=True)
        return out.view(r, b, c, h, w)
