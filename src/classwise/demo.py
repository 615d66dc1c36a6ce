"""``demo``: train (or reuse) a small CNN on mnist5k and reveal all 10 classes at 5%."""

from __future__ import annotations

import json
from pathlib import Path

from classwise.results import RevealResult
from classwise.reveal import reveal
from classwise.training import train


def demo(out: str | Path = "runs/demo", seed: int = 0, device: str | None = None,
         show_progress: bool = True) -> RevealResult:
    """Train ``out/model`` unless it is cached there, then reveal into ``out/reveal``."""
    out = Path(out)
    model_dir = out / "model"
    try:
        cached = json.loads((model_dir / "meta.json").read_text()).get("data") == "mnist5k"
    except (OSError, ValueError):
        cached = False
    if not cached or not (model_dir / "model.ts").is_file():
        train("mnist5k", arch="small-cnn", epochs=5, seed=seed, out=model_dir, device=device,
              show_progress=show_progress)
    result = reveal(model_dir, "mnist5k", budget=0.05, seed=seed, device=device,
                    show_progress=show_progress)
    result.save(out / "reveal")
    return result
