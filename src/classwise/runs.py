"""Run folders: checks before any work starts, and the summary printed at the end."""

from __future__ import annotations

import os
from pathlib import Path

from classwise.errors import UsageError


def check_out(out: str | Path, force: bool = False, resume: bool = False) -> Path:
    """Refuse an ``--out`` that cannot be written or already holds files.

    ``force`` overwrites; ``resume`` accepts a folder holding an interrupted run's
    checkpoint. Nothing is created here: a run that fails on bad input leaves no folder.
    """
    from classwise.search.checkpoint import DIRNAME

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    if resume and not (out / DIRNAME / "run.json").is_file():
        raise UsageError(f"nothing to resume in {out}; drop --resume")
    if out.is_dir() and any(out.iterdir()) and not (force or resume):
        hint = ("; it holds an interrupted run: add --resume to continue it"
                if (out / DIRNAME).is_dir() else "")
        raise UsageError(f"--out {out} already holds files; give a new folder, or --force to "
                         f"overwrite{hint}")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {out} ({parent} is not writable); give an --out you "
                         "can write to")
    return out


def summary_table(records: list[dict]) -> str:
    """The per-class figures as a fixed-width table, with the mean predictive power."""
    cols = [("class", "class", "{}"), ("name", "name", "{}"), ("pixels", "pixels", "{}"),
            ("predictive_power", "power", "{:.3f}"), ("no_pattern", "no pattern", "{:.3f}"),
            ("random_pixels", "random", "{:.3f}"), ("components", "parts", "{}"),
            ("seconds", "seconds", "{:.2f}")]
    rows = [[fmt.format(r[key]) if key in r else "" for key, _, fmt in cols] for r in records]
    heads = [h for _, h, _ in cols]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    powers = [r["predictive_power"] for r in records if "predictive_power" in r]
    if powers:
        lines.append(f"mean predictive power {sum(powers) / len(powers):.3f} over "
                     f"{len(powers)} classes")
    return "\n".join(lines)
