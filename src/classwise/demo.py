"""``demo``: train (or reuse) a small CNN on mnist5k and reveal all 10 classes at 5%."""

from __future__ import annotations

from pathlib import Path

from classwise.results import RevealResult
from classwise.reveal import reveal
from classwise.training import train


def demo(out: str | Path = "runs/demo", seed: int = 0, device: str | None = None,
         show_progress: bool = True) -> RevealResult:
    """Train ``out/model``, then reveal into ``out/reveal``.

    A model in ``out/model`` trained with the same settings, ``seed`` included, is reused
    and an interrupted training of it continued (:func:`classwise.train` with ``reuse``);
    any other model there is replaced.
    """
    out = Path(out)
    train("mnist5k", arch="small-cnn", epochs=5, seed=seed, out=out / "model", device=device,
          show_progress=show_progress, reuse=True)
    result = reveal(out / "model", "mnist5k", budget=0.05, seed=seed, device=device,
                    show_progress=show_progress)
    result.save(out / "reveal")
    return result
