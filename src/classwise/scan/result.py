"""The result of a scan: per class its statistic and anomaly index, the verdict, the
patterns kept, and ``scan.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classwise.fileio import write_json, write_npz
from classwise.results import RevealResult
from classwise.scan.mad import CONSISTENCY, THRESHOLD

MEDIAN = "numpy median: the mean of the two middle values for an even number of classes"


@dataclass
class ScanResult:
    """Per class the scan statistic, its anomaly index and the pattern kept (in
    ``reveal``); the flagged classes, the rule that flagged them and its p-value (None
    where the rule claims none), and ``candidate``, the position of the most extreme
    class."""

    method: str
    statistic: str
    values: np.ndarray
    anomaly_index: np.ndarray
    reveal: RevealResult
    flagged: list[int]
    rule: str
    p_value: float | None
    candidate: int
    settings: dict[str, Any] = field(default_factory=dict)
    extra: list[dict[str, Any]] = field(default_factory=list)
    """Per-class figures beside the statistic (e.g. the search rate reached)."""
    family: str = "pixels"
    """The pattern family whose verdict decided (``pixels`` but for a dense family, see
    :mod:`classwise.scan.dense`)."""
    dense: dict[str, np.ndarray] = field(default_factory=dict)
    """Per dense family, each class's kept pattern parameters (classes first)."""

    @property
    def classes(self) -> np.ndarray:
        return self.reveal.classes

    @property
    def patterns(self) -> np.ndarray:
        return self.reveal.patterns

    @property
    def verdict(self) -> str:
        return "backdoored" if self.flagged else "clean"

    def _evidence(self, i: int) -> str:
        index = f"anomaly index {self.anomaly_index[i]:.1f}"
        return index if self.p_value is None else f"p = {self.p_value:.2g}, {index}"

    def verdict_line(self, out: str | Path | None = None) -> str:
        """One line a person can act on."""
        names = self.reveal.class_names
        if not self.flagged:
            c = int(self.classes[self.candidate])
            return (f"clean: no class stands out (the most extreme, class {c} '{names[c]}', "
                    f"has {self._evidence(self.candidate)}); no backdoor found by "
                    f"{self.method}")
        t = self.flagged[0]
        i = list(self.classes).index(t)
        where = f"; see {Path(out) / 'report.html'}" if out is not None else ""
        return (f"BACKDOORED: class {t} '{names[t]}' is the likely target ({self._evidence(i)}); "
                f"{self._size(i)}). Do not deploy this model{where}")

    def _size(self, i: int) -> str:
        """Class ``i``'s pattern size against the others', in the deciding family."""
        if self.family != "pixels":
            sizes = [row["families"][self.family]["size"] for row in self.extra]
            unit = self.settings["family_units"][self.family]
            return (f"its {self.family} pattern needs {sizes[i]:.3g} against a median of "
                    f"{np.median(sizes):.3g} ({unit}")
        ref = self.extra[i].get("reference_pixels_to_reach") if self.extra else None
        against = (f"{ref:.3g} in the clean reference" if ref is not None else
                   f"a median of {np.median(self.values):.3g}")
        pixels = int(self.patterns[i].sum())
        pattern = f"its pattern is {pixels} pixels (" if pixels else "("
        return f"{pattern}{self.statistic} {self.values[i]:.3g} against {against}"

    def to_json(self) -> dict[str, Any]:
        rows = []
        for i, rec in enumerate(self.reveal.records):
            rows.append({"class": rec["class"], "name": rec["name"],
                         "anomaly_index": float(self.anomaly_index[i]),
                         self.statistic: float(self.values[i]), "pixels": rec.get("pixels"),
                         "predictive_power": rec.get("predictive_power"),
                         **(self.extra[i] if self.extra else {})})
        return {"verdict": self.verdict, "flagged": self.flagged, "method": self.method,
                "family": self.family,
                "statistic": self.statistic, "rule": self.rule, "p_value": self.p_value,
                "candidate": int(self.classes[self.candidate]), "threshold": THRESHOLD,
                "consistency_constant": CONSISTENCY, "median": MEDIAN,
                "index_of": self.settings.get("index_of"), "verdict_line": self.verdict_line(),
                "classes": rows, "settings": self.settings}

    def save(self, out: str | Path, pictures: bool = True) -> Path:
        """Write ``scan.json`` (and ``dense.npz``: each dense family's patterns, one per
        class), then ``patterns.npz``, ``results.json`` and the pictures."""
        out = Path(out)
        if self.dense:
            write_npz(out / "dense.npz", classes=self.classes, **self.dense)
        write_json(out / "scan.json", self.to_json())
        return self.reveal.save(out, pictures=pictures)
