"""Natural setting: the paper preset vs the default and thorough presets at several budgets.

    python bench/natural.py --data mnist5k
    python bench/natural.py --data shapes --arch resnet18 --epochs 3

Prints a markdown table and writes ``bench/results/natural_<data>_<arch>.json``
(``..._s<seed>.json`` for a seed other than 0).
Canvases and search images come from disjoint pools of the train split; every figure
is measured on the test split. The paper's mask does not depend on the budget (its loss
has an L1 term, not a budget), so the paper preset is searched once and cut at each
budget; its search time is the same at every budget.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from common import cached_model, command, machine, meta, save, search_seconds, table

from classwise import evaluate, reveal
from classwise.search.ops import pixels_for_budget, topk_mask


def mean(result, key: str) -> float | None:
    values = [r[key] for r in result.records if key in r]
    return float(np.mean(values)) if values else None


def row(preset: str, budget: float, result, seconds: float, search: float) -> dict:
    return {"preset": preset, "budget": budget, "pixels": result.records[0]["pixels"],
            "predictive_power": mean(result, "predictive_power"),
            "random_pixels": mean(result, "random_pixels"),
            "no_pattern": mean(result, "no_pattern"),
            "components": mean(result, "components"),
            "on_object": mean(result, "on_object"), "seconds": round(seconds, 1),
            "search_seconds": round(search, 1),
            "per_class": [round(r["predictive_power"], 3) for r in result.records]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--arch", default="small-cnn")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--budgets", default="0.02,0.05,0.10")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-paper", action="store_true")
    p.add_argument("--presets", default="default,thorough",
                   help="the presets searched at each budget beside the paper's")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    budgets = [float(b) for b in args.budgets.split(",")]
    folder = cached_model(f"natural_{args.data}_{args.arch}_s{args.seed}", data=args.data,
                          arch=args.arch, epochs=args.epochs, seed=args.seed)
    rows = []
    common = dict(seed=args.seed, show_progress=False, device="cpu")
    if not args.skip_paper:
        start = time.perf_counter()
        paper = reveal(folder, args.data, preset="paper", budget=budgets[0], **common)
        paper_seconds = time.perf_counter() - start
        h, w = paper.masks.shape[1:]
        for b in budgets:
            k = pixels_for_budget(b, None, h, w)
            cut = replace(paper, patterns=topk_mask(torch.from_numpy(paper.masks), k).numpy())
            rows.append(row("paper", b, evaluate(cut, folder, args.data, seed=args.seed),
                            paper_seconds, search_seconds(paper)))
            print(rows[-1], flush=True)
    for preset in args.presets.split(","):
        for b in budgets:
            start = time.perf_counter()
            result = reveal(folder, args.data, preset=preset, budget=b, **common)
            rows.append(row(preset, b, result, time.perf_counter() - start,
                            search_seconds(result)))
            print(rows[-1], flush=True)
    cols = [("preset", "preset"), ("budget", "budget"), ("pixels", "pixels"),
            ("predictive_power", "predictive power"), ("random_pixels", "random pixels"),
            ("no_pattern", "no pattern"), ("components", "components"),
            ("on_object", "on object"), ("search_seconds", "search s"),
            ("seconds", "wall s")]
    print(f"model: {args.arch} on {args.data}, clean test accuracy "
          f"{meta(folder)['clean_test_accuracy']:.3f}")
    print(table(rows, cols))
    seed = f"_s{args.seed}" if args.seed else ""  # seed 0 keeps the original name
    path = save(f"natural_{args.data}_{args.arch}{seed}", {
        "command": command("natural.py", args),
        "model": meta(folder), "machine": machine(), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
