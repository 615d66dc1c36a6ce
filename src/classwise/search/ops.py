"""Tensor operations of the search: blending, stamping, top-k and the budget."""

from __future__ import annotations

import torch

from classwise.errors import UsageError
from classwise.seeding import generator


def pixels_for_budget(budget: float | None, pixels: int | None, height: int, width: int) -> int:
    """The number of pattern pixels k for a budget (share of H*W) or an explicit count."""
    total = height * width
    if pixels is not None:
        if budget is not None:
            raise UsageError("give either a budget or a pixel count, not both")
        if not 1 <= int(pixels) < total:
            raise UsageError(f"pixels {pixels} is out of range; use 1..{total - 1} for "
                             f"{height}x{width} images")
        return int(pixels)
    if total < 2:
        raise UsageError(f"images of {height}x{width} pixels leave no room for a pattern; "
                         "give images of at least 2 pixels")
    budget = 0.05 if budget is None else float(budget)
    if not 0.0 < budget < 1.0:
        raise UsageError(f"budget {budget} is out of range; use a share of the image in (0, 1), "
                         "e.g. 0.05 for 5% of the pixels")
    return min(max(1, round(budget * total)), total - 1)


def blend(mask: torch.Tensor, canvas: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``m * canvas + (1 - m) * x``: masks (R, H, W), canvases (R, C, H, W), x (R, B, C, H, W)."""
    m = mask[:, None, None]
    return m * canvas[:, None] + (1 - m) * x


def stamp(x: torch.Tensor, canvas: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Replace the pixels of ``x`` (N, C, H, W) under ``pattern`` (H, W) by the canvas's."""
    return torch.where(pattern.bool(), canvas, x)


def pixel_ranks(scores: torch.Tensor, *ties: torch.Tensor) -> torch.Tensor:
    """Each pixel's place in its row (0 first), the rows (R, H, W) ordered by ``scores``,
    highest first; equal scores are ordered by each of ``ties`` in turn (higher first), and
    what is still equal by row-major position."""
    r = len(scores)
    keys = [t.reshape(r, -1) for t in (scores, *ties)]
    order = torch.arange(keys[0].shape[1], device=scores.device).expand(r, -1)
    for key in reversed(keys):  # stable sorts from the last key to the first: lexicographic
        order = order.gather(1, torch.argsort(-key.gather(1, order), dim=1, stable=True))
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=scores.device).expand(r, -1))
    return ranks.view(scores.shape)


def topk_mask(scores: torch.Tensor, k: int, *ties: torch.Tensor) -> torch.Tensor:
    """Boolean masks (R, H, W) keeping the ``k`` highest scores of each row, equal scores
    ordered as :func:`pixel_ranks` orders them."""
    return pixel_ranks(scores, *ties) < k


def tie_order(seed: int, targets: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A seeded random order of the pixels per row (R, H, W), one per target class: the last
    word on ties at the cut, so no region of the image is favoured."""
    n = shape[0] * shape[1]
    rows = [torch.randperm(n, generator=generator(seed, int(t), 0x71E)) for t in targets]
    return torch.stack(rows).view(len(targets), *shape).float()


def ties_at_cut(mask: torch.Tensor, k: int) -> int:
    """How many pixels of ``mask`` (H, W) share the value of its ``k``-th highest."""
    flat = mask.reshape(-1)
    return int((flat == flat.topk(k).values[-1]).sum())


def project_budget(mask: torch.Tensor, k: float, iterations: int = 40) -> torch.Tensor:
    """Euclidean projection of each row onto ``{0 <= m <= 1, sum(m) <= k}``.

    The projection is ``clip(m - tau, 0, 1)`` with the smallest ``tau >= 0`` meeting the
    budget; ``tau`` is found by bisection.
    """
    m = mask.clamp(0, 1)
    rows = mask.reshape(len(mask), -1)
    over = m.reshape(len(m), -1).sum(1) > k
    if not over.any():
        return m
    lo = torch.zeros(len(mask), 1, dtype=mask.dtype, device=mask.device)
    hi = rows.max(1, keepdim=True).values.clamp(min=0)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        total = (rows - mid).clamp(0, 1).sum(1, keepdim=True)
        lo = torch.where(total > k, mid, lo)
        hi = torch.where(total > k, hi, mid)
    projected = (rows - hi).clamp(0, 1).view_as(mask)
    return torch.where(over.view(-1, *[1] * (mask.dim() - 1)), projected, m)
