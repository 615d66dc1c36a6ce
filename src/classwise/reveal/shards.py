"""Shards: the classes of one run spread over processes or machines, and merging them.

Every class's search draws from its own random streams, so a class gets the same
pattern whichever shard, chunk or worker searches it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from classwise.errors import UsageError
from classwise.results import RevealResult

# Settings that may differ between the parts of one run.
PART_KEYS = ("seconds", "device", "shard", "classes_requested")


def parse_shard(spec: str) -> tuple[int, int]:
    """``"I/N"`` (1-based) -> ``(I, N)``, with a one-line error when out of range."""
    try:
        i, n = (int(v) for v in str(spec).split("/"))
    except ValueError:
        raise UsageError(f"shard {spec!r} is not I/N; give e.g. --shard 1/4") from None
    if n < 1 or not 1 <= i <= n:
        raise UsageError(f"shard {spec} is out of range; I must lie in 1..N, e.g. 1/{max(n, 1)}")
    return i, n


def shard_classes(classes: Sequence[int], spec: str) -> list[int]:
    """The classes of shard ``I/N``: every N-th class starting from the I-th."""
    i, n = parse_shard(spec)
    chosen = list(classes)[i - 1::n]
    if not chosen:
        raise UsageError(f"shard {spec} holds no classes; use at most as many shards as "
                         "classes")
    return chosen


def merge_results(parts: Sequence[RevealResult]) -> RevealResult:
    """Join results of the same run that cover different classes, sorted by class."""
    if not parts:
        raise UsageError("nothing to merge; give the run folders of the shards")
    base = {k: v for k, v in parts[0].settings.items() if k not in PART_KEYS}
    for p in parts[1:]:
        other = {k: v for k, v in p.settings.items() if k not in PART_KEYS}
        if other != base:
            diff = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
            raise UsageError(f"these runs differ in {', '.join(diff)}; merge only shards of "
                             "one run (same model, data, preset, budget and seed)")
    classes = np.concatenate([p.classes for p in parts])
    if len(set(classes.tolist())) != len(classes):
        raise UsageError("the runs overlap in their classes; merge each shard once")
    order = np.argsort(classes, kind="stable")
    records = [r for p in parts for r in p.records]
    examples = {c: e for p in parts for c, e in p.examples.items()}
    settings = {**base, "seconds": round(sum(p.settings.get("seconds", 0.0) for p in parts), 2),
                "merged_from": len(parts)}

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])[order]

    ranks = cat("ranks") if all(p.ranks is not None for p in parts) else None
    return replace(parts[0], classes=classes[order], canvases=cat("canvases"),
                   masks=cat("masks"), patterns=cat("patterns"),
                   records=[records[i] for i in order], settings=settings,
                   examples=examples, ranks=ranks)


def merge(runs: Sequence[str | Path], out: str | Path) -> RevealResult:
    """Merge shard run folders into one run folder ``out`` (pictures kept from the shards)."""
    parts = []
    for run in runs:
        if not (Path(run) / "results.json").is_file():
            raise UsageError(f"{run} is not a run folder; give folders written by "
                             "classwise reveal --shard")
        parts.append(RevealResult.load(run))
    merged = merge_results(parts)
    out = Path(out)
    merged.save(out)
    for run in runs:
        for pictures in Path(run).glob("class_*/examples.png"):
            target = out / pictures.parent.name / pictures.name
            shutil.copyfile(pictures, target)
    if any((Path(r) / "class_0").exists() for r in runs):
        from classwise.report import write_report

        write_report(out)
    return merged
