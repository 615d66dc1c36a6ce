"""The frozen outputs of the search: what the paper, default, fast and thorough presets and the
scan give on small cases, kept as regression fixtures so a refactoring changes nothing.

    python tests/regression/frozen.py        # rewrite frozen.npz and frozen.json

Rewrite them only in a change that means to move the search's results, and say why in its
commit. The model is stored with the fixtures, so training may change without moving them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
NPZ, JSON = HERE / "frozen.npz", HERE / "frozen.json"
CLASSES = "0,3,7"
CASES: dict[str, dict[str, Any]] = {
    "paper": dict(preset="paper", epochs=1),
    "default": dict(preset="default"),
    "fast": dict(preset="fast"),
    "thorough": dict(preset="thorough"),
}
"""Reveals of ``CLASSES`` at 4 pixels, seed 1; the paper preset runs one epoch, not five."""
SCANS: dict[str, dict[str, Any]] = {
    "scan": dict(families=()),
    "scan-families": {},
}
"""Scans of every class, seed 1: the pixel patch alone (as frozen before the dense
families), and the default scan with its dense families."""
VOLATILE = ("seconds", "versions", "device")


def model() -> torch.nn.Module:
    """The small CNN the fixtures were made with (trained 2 epochs on digits, seed 0)."""
    from classwise.models import create_model

    net = create_model("small-cnn", (1, 8, 8), 10)
    with np.load(NPZ) as f:
        net.load_state_dict({k[len("model/"):]: torch.from_numpy(f[k]) for k in f.files
                             if k.startswith("model/")})
    return net.eval()


def stable(obj: Any) -> Any:
    """``obj`` without the figures that differ between identical runs (times, versions)."""
    if isinstance(obj, dict):
        return {k: stable(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [stable(v) for v in obj]
    return obj


def outputs(net: torch.nn.Module) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and per-class records of every case, run now."""
    from classwise import reveal, scan

    arrays, records = {}, {}
    for name, options in CASES.items():
        result = reveal(net, "digits", classes=CLASSES, pixels=4, seed=1, show_progress=False,
                        device="cpu", curve=True, **options)
        for key in ("classes", "canvases", "masks", "patterns"):
            arrays[f"{name}/{key}"] = getattr(result, key)
        records[name] = stable(result.records)
    for name, options in SCANS.items():
        found = scan(net, "digits", seed=1, show_progress=False, device="cpu", **options)
        for key in ("classes", "canvases", "masks", "patterns"):
            arrays[f"{name}/{key}"] = getattr(found.reveal, key)
        report = found.to_json()
        records[name] = stable({k: report[k] for k in ("verdict", "flagged", "classes")})
    return arrays, records


def main() -> None:
    from classwise import train

    torch.set_num_threads(1)
    net = train("digits", epochs=2, seed=0, show_progress=False).model
    arrays, records = outputs(net)
    weights = {f"model/{k}": v.numpy() for k, v in net.state_dict().items()}
    np.savez_compressed(NPZ, **weights, **arrays)
    JSON.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {NPZ} and {JSON}", file=sys.stderr)


if __name__ == "__main__":
    main()
