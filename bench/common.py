"""Shared helpers of the benchmark scripts: cached models, tables, JSON, machine info."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from classwise.fileio import write_json
from classwise.training import train

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "out"
RESULTS = ROOT / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "processor": platform.processor() or "unknown",
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__}


def cached_model(name: str, **train_args: Any) -> Path:
    """Train once into ``bench/out/<name>`` and reuse it afterwards: ``train(...,
    reuse=True)`` retrains a model trained with other settings (say fewer epochs or
    another seed) instead of silently reusing it."""
    folder = CACHE / name
    train(out=folder, reuse=True, show_progress=False, **train_args)
    return folder


MNIST = {"data": "mnist5k", "epochs": 5}
SHAPES = {"data": "shapes", "epochs": 8}
ZOO: dict[str, dict[str, dict[str, Any]]] = {
    "dev": {
        **{f"mnist-cnn-s{s}": {**MNIST, "arch": "small-cnn", "seed": s} for s in range(3)},
        **{f"shapes-narrow-s{s}": {**SHAPES, "arch": "resnet18-narrow", "seed": s}
           for s in range(3)},
    },
    "held-out": {
        "mnist-lenet5bn": {**MNIST, "arch": "lenet5-bn", "seed": 0},
        "mnist-mlp": {**MNIST, "arch": "mlp", "seed": 0},
        "mnist-cnn-augment-long": {**MNIST, "arch": "small-cnn", "seed": 5, "epochs": 12,
                                   "augment": True},
        "digits-cnn": {"data": "digits", "epochs": 10, "arch": "small-cnn", "seed": 0},
        **{f"shapes-narrow-s{s}": {**SHAPES, "arch": "resnet18-narrow", "seed": s}
           for s in (3, 4)},
        "shapes-resnet18": {**SHAPES, "arch": "resnet18", "seed": 0},
    },
}
"""The natural zoo, by part and name: each model's training settings. Development models
(the small CNNs on mnist5k, seeds 0-2, and the narrow ResNet-18s on shapes, seeds 0-2) are
the only ones any setting of the search may be tuned on; held-out models are measured once
a change is final."""
MODELS = {name: spec for part in ZOO.values() for name, spec in part.items()}


def zoo_model(name: str) -> Path:
    """The folder of zoo model ``name``, trained once (see :func:`cached_model`)."""
    return cached_model(f"natural/{name}", **MODELS[name])


def meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "meta.json").read_text())


def search_seconds(result: Any) -> float:
    """The time a reveal spent searching: the sum of its classes' ``seconds`` (without
    loading and the test-split evaluation)."""
    return sum(r["seconds"] for r in result.records)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A GitHub-flavoured markdown table of ``rows`` (``columns``: key, heading)."""

    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r.get(k, "")) for k, _ in columns) + " |" for r in rows]
    return "\n".join(lines)


def child_env(threads: int) -> dict[str, str]:
    """The environment for a timed child command: torch on ``threads`` threads, so that a
    command sharing the machine with another job does not contend with itself."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def command(script: str, args: Any) -> str:
    """The command line that reproduces a run: ``script`` with the parsed ``args``."""
    def value(v: Any) -> str:
        return " ".join(map(str, v)) if isinstance(v, list) else str(v)

    flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f" {value(v)}")
             for k, v in vars(args).items() if v not in (False, None, [])]
    return " ".join([f"python bench/{script}", *flags])


def save(name: str, payload: dict[str, Any]) -> Path:
    path = RESULTS / f"{name}.json"
    write_json(path, payload)
    return path
