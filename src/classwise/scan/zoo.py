"""Scan a model zoo: several models, one after another or fanned out over Ray.

Each model's scan is written to ``out/<name>/`` (the layout of a one-model scan) as soon
as it ends, by renaming a finished temporary folder, so an interrupted audit keeps every
model already scanned and ``resume=True`` scans only the rest. ``out/zoo.json`` sums the
verdicts up once all are done.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classwise.data.base import Dataset
from classwise.errors import UsageError
from classwise.executors import check_executor, execute
from classwise.fileio import write_json
from classwise.models import check_model, load_model, parameter_count
from classwise.scan.scan import METHODS, RATE, ScanResult, checked_reference, scan
from classwise.search.checkpoint import DIRNAME, Checkpoint
from classwise.sources import DataSource, data_source


def model_names(models: Sequence[str | Path]) -> list[str]:
    """One folder name per model: a train folder's name or the file's stem, made unique."""
    names: list[str] = []
    for m in models:
        p = Path(str(m))
        base = p.parent.name if p.name == "model.ts" else p.stem if p.suffix else p.name
        base = re.sub(r"[^\w.-]+", "_", base) or "model"
        name, i = base, 2
        while name in names:
            name, i = f"{base}-{i}", i + 1
        names.append(name)
    return names


@dataclass(frozen=True)
class ZooSpec:
    """A zoo audit as data that travels to workers: the data, the scan's options, and
    (for a run in this process) the folder of each model's checkpoint."""

    data: DataSource
    options: dict[str, Any]
    checkpoints: str | None = None
    show_progress: bool = False


class ScanWorker:
    """Scans models of one zoo; opens the data once. A task is ``(model, folder name)``."""

    def __init__(self, spec: ZooSpec, data: Dataset | None = None) -> None:
        self.spec, self.data = spec, data if data is not None else spec.data.open()

    def __call__(self, task: tuple[str, str]) -> ScanResult:
        model, name = task
        folder = Path(self.spec.checkpoints) / name if self.spec.checkpoints else None
        resume = folder is not None and (folder / "run.json").is_file()
        return scan(model, data=self.data, model_name=model, checkpoint=folder, resume=resume,
                    show_progress=self.spec.show_progress, **self.spec.options)


def scan_models(models: Sequence[str | Path], data: str | Path | DataSource, out: str | Path,
                method: str = "classwise", seed: int = 0, device: str | None = None,
                executor: str = "local", ray_address: str | None = None,
                resume: bool = False, show_progress: bool = True,
                **options: Any) -> list[dict[str, Any]]:
    """Scan every model in ``models`` on ``data``; one summary row per model, in order.

    ``models`` are paths every worker can open (TorchScript files or train folders).
    ``executor="ray"`` scans them in parallel on a Ray cluster (``ray_address``, or a local
    instance). Each row holds the model, its folder under ``out``, the verdict, the flagged
    classes, the largest anomaly index and the verdict line. ``options`` go to
    :func:`~classwise.scan.scan` for every model. Run here, a model cut half-way through
    its scan continues from its own checkpoint on ``resume``.
    """
    if not models:
        raise UsageError("no models to scan; give one or more --model paths")
    check_executor(executor)
    if method not in METHODS:
        raise UsageError(f"unknown scan method {method!r}; choose {' or '.join(METHODS)}")
    where = data_source(data)
    ds = where.open()
    for m in models:  # refuse bad input before anything is written
        if not Path(str(m)).exists():
            raise UsageError(f"model {m} does not exist; give TorchScript files or folders "
                             "written by classwise train")
        net = load_model(m, device="cpu")
        check_model(net, ds.test.load([0, 1]), ds.num_classes)
        checked_reference(options.get("reference"), method, ds, options.get("rate", RATE),
                          options.get("ladder"), parameter_count(net))
    out = Path(out)
    names = model_names(models)
    options = {"method": method, "seed": seed, "device": device, **options}
    label = where.data if where.portable else ds.name
    identity = {"models": [str(m) for m in models], "data": label, **options}
    # a zoo whose audit finished has no checkpoint left: resuming it scans what is missing
    ckpt = Checkpoint(out / DIRNAME, identity, resume and (out / DIRNAME / "run.json").is_file())
    ckpt.start()
    todo = [i for i, name in enumerate(names)
            if not (resume and (out / name / "scan.json").is_file())]

    def keep(j: int, result: ScanResult) -> None:
        folder = out / names[todo[j]]
        _save_atomically(result, folder)
        shutil.rmtree(out / DIRNAME / names[todo[j]], ignore_errors=True)
        print(result.verdict_line(folder), flush=True)

    local = executor == "local"
    spec = ZooSpec(where, options,
                   str(out / DIRNAME) if local else None, show_progress and local)
    execute(ScanWorker, spec, [(str(models[i]), names[i]) for i in todo], keep, executor,
            ray_address, local=ScanWorker(spec, ds) if local else None)
    rows = [_row(m, out / name) for m, name in zip(models, names, strict=True)]
    write_json(out / "zoo.json", {"data": label, "method": method, "seed": seed,
                                  "backdoored": sum(r["verdict"] == "backdoored" for r in rows),
                                  "models": rows})
    ckpt.remove()
    return rows


def _save_atomically(result: ScanResult, folder: Path) -> None:
    """Write the scan into a temporary sibling, then rename it to ``folder``."""
    tmp = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    result.save(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _row(model: str | Path, folder: Path) -> dict[str, Any]:
    report = json.loads((folder / "scan.json").read_text())
    return {"model": str(model), "folder": folder.name, "verdict": report["verdict"],
            "flagged": report["flagged"],
            "max_anomaly_index": max(c["anomaly_index"] for c in report["classes"]),
            "verdict_line": report["verdict_line"]}
