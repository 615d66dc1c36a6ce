"""Clean reference scans: each class's pattern size against the same class of clean models.

Natural pattern sizes differ from class to class by an order of magnitude (on mnist5k a "1"
needs many more pixels than a "3"), so a target whose size falls from "hard" to "easy" can
still sit among the other classes. A reference is the ``classwise`` scan of one or more
models known to be clean, on the same data and with the same rate and ladder; the scan then
compares ``log(pixels_to_reach)`` with the median over the references of the same class.
References must be models of the suspect's architecture: on the mnist5k zoo of small CNNs,
narrow ResNet-18 references flagged four clean models in five (``docs/benchmarks.md``,
"References of another architecture"). The number of parameters stands for the
architecture.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classwise.errors import UsageError

HOW = "scan a clean model of the same data with classwise scan --out DIR and pass DIR"


def reference_log_sizes(paths: Sequence[str | Path], data: str, num_classes: int,
                        rate: float, ladder: list[int],
                        parameters: int | None = None) -> np.ndarray:
    """Per class, the median over ``paths`` of ``log(pixels_to_reach)`` (float64, (classes,)).

    Each path is a folder written by a ``classwise`` scan (or its ``scan.json``) of the
    same ``data`` with the same ``rate`` and ``ladder`` and, when both are known, of a
    model with the same number of ``parameters``; anything else is a usage error.
    """
    if not paths:
        raise UsageError(f"--reference needs at least one scan folder; {HOW}")
    return np.median([_log_sizes(Path(p), data, num_classes, rate, ladder, parameters)
                      for p in paths], axis=0)


def _log_sizes(path: Path, data: str, num_classes: int, rate: float,
               ladder: list[int], parameters: int | None) -> np.ndarray:
    report = _read(path / "scan.json" if path.is_dir() else path)
    settings = report.get("settings", {})
    if report.get("method") != "classwise":
        raise UsageError(f"reference {path} was scanned with {report.get('method')!r}, not "
                         f"classwise; {HOW}")
    theirs = (settings.get("data"), settings.get("rate"), settings.get("ladder"))
    if theirs != (data, rate, ladder):
        raise UsageError(f"reference {path} scanned {theirs[0]} at rate {theirs[1]} over "
                         f"budgets {theirs[2]}, not {data} at rate {rate} over {ladder}; {HOW}")
    their_parameters = settings.get("parameters")
    if None not in (parameters, their_parameters) and their_parameters != parameters:
        raise UsageError(f"reference {path} scanned a model of {their_parameters:,} parameters, "
                         f"this one has {parameters:,}; a reference must be a clean model of "
                         f"the same architecture: {HOW}")
    sizes = [row.get("pixels_to_reach") for row in report.get("classes", [])]
    if len(sizes) != num_classes or not all(isinstance(v, int | float) and v > 0
                                            for v in sizes):
        raise UsageError(f"reference {path} has no pixels_to_reach for each of the "
                         f"{num_classes} classes; {HOW}")
    return np.log(np.asarray(sizes, dtype=np.float64))


def _read(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read reference {path} ({type(e).__name__}); {HOW}") from None
    if not isinstance(report, dict):
        raise UsageError(f"reference {path} is not a scan.json; {HOW}")
    return report
