"""Scale-out: shards of the classes across processes or machines, merging, and Ray.

Every class's search draws from its own random streams, so a class gets the same
pattern whichever shard, chunk or worker searches it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from classwise.errors import RunError, UsageError
from classwise.results import RevealResult
from classwise.search.checkpoint import Checkpoint

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
    return list(classes)[i - 1::n]


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

    return replace(parts[0], classes=classes[order], canvases=cat("canvases"),
                   masks=cat("masks"), patterns=cat("patterns"),
                   records=[records[i] for i in order], settings=settings,
                   examples=examples)


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


def ray_map(fn: Callable[..., Any], calls: Sequence[dict[str, Any]], address: str | None,
            on_result: Callable[[int, Any], None]) -> None:
    """Run ``fn(**calls[i])`` for every ``i`` as Ray tasks; ``on_result(i, value)`` as each ends.

    ``address`` is a running cluster's (``ray://host:port`` or ``host:port``); without it a
    local Ray instance is started. Results are handed over in the order they finish, so
    the caller can save each at once and an interrupted run keeps what it got.
    """
    if not calls:
        return
    try:
        import ray
    except ImportError:
        raise UsageError("ray is not installed; pip install 'classwise[ray]'") from None
    try:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True)
    except Exception as e:  # ray raises ConnectionError, RuntimeError, ...
        raise UsageError(f"cannot reach a Ray cluster at {address or 'local'} "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                         "check --ray-address or start one with 'ray start --head'") from None
    task = ray.remote(fn)
    pending = {task.remote(**kwargs): i for i, kwargs in enumerate(calls)}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(ready[0])
        try:
            value = ray.get(ready[0])
        except ray.exceptions.RayTaskError as e:
            cause = e.cause if getattr(e, "cause", None) is not None else e
            if isinstance(cause, UsageError):
                raise cause from None
            raise RunError(f"a Ray worker failed: {str(cause).splitlines()[0]}") from None
        on_result(i, value)


def reveal_ray(model: str | Path, data: str | Path, classes: Sequence[int],
               address: str | None = None, chunk: int = 1,
               checkpoint: Checkpoint | None = None, **kwargs: Any) -> RevealResult:
    """Fan the classes out over a Ray cluster in chunks of ``chunk`` classes, then merge.

    ``model`` and ``data`` must be paths or names that every worker can open. With a
    ``checkpoint``, each chunk is saved as it comes back and chunks saved by an earlier,
    interrupted run are not searched again.
    """
    if not isinstance(model, (str, Path)) or not isinstance(data, (str, Path)):
        raise UsageError("with the ray executor, give the model and data as paths or names "
                         "that every worker can open")
    from classwise.search.reveal import reveal

    groups = [list(classes)[i:i + chunk] for i in range(0, len(classes), chunk)]
    keys = [f"ray-{g[0]}-{g[-1]}-{len(g)}" for g in groups]
    parts: dict[int, RevealResult] = {}
    for i, key in enumerate(keys):
        saved = checkpoint.finished(key) if checkpoint else None
        if saved is not None:
            parts[i] = saved["result"]
    todo = [i for i in range(len(groups)) if i not in parts]

    def keep(j: int, part: RevealResult) -> None:
        parts[todo[j]] = part
        if checkpoint is not None:
            checkpoint.save_finished(keys[todo[j]], {"result": part})

    ray_map(reveal, [dict(model=str(model), data=str(data), classes=groups[i],
                          show_progress=False, **kwargs) for i in todo], address, keep)
    return merge_results([parts[i] for i in range(len(groups))])
