"""Natural setting: the paper preset against the default and thorough presets, model by model.

    python bench/natural.py --zoo dev                  # the models settings may be tuned on
    python bench/natural.py --zoo held-out             # measured once a change is final
    python bench/natural.py --models mnist-cnn-s0,shapes-narrow-s0 --budgets 0.05

The zoo has two parts. Development models are the only ones any setting of the search may
be tuned on. Held-out models (other architectures, training recipes, data and seeds) are
measured once a change is final, never tuned on. Each model is trained once (cached under
``bench/out/``, reused only if trained with the same settings, seed included).

For every model: the paper preset is searched once (its mask does not depend on the
budget: its loss has an L1 term, not a budget) and cut at each budget; the default and
thorough presets are searched at each budget. Every figure is measured on the test split;
canvases and search images come from disjoint pools of the training split. Prints one
table of every model's rows and the mean per preset and budget, and writes
``bench/results/natural_<zoo>.json`` (``--out`` to change) after each model; run again,
the same command measures only the models that file lacks.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import (
    MODELS,
    RESULTS,
    ZOO,
    command,
    machine,
    meta,
    save,
    search_seconds,
    table,
    zoo_model,
)

from classwise import evaluate, reveal
from classwise.search.ops import pixels_for_budget


def mean(result, key: str) -> float | None:
    values = [r[key] for r in result.records if key in r]
    return float(np.mean(values)) if values else None


def row(model: str, preset: str, budget: float, result, wall: float, search: float) -> dict:
    return {"model": model, "preset": preset, "budget": budget,
            "pixels": result.records[0]["pixels"],
            "predictive_power": mean(result, "predictive_power"),
            "random_pixels": mean(result, "random_pixels"),
            "no_pattern": mean(result, "no_pattern"), "components": mean(result, "components"),
            "on_object": mean(result, "on_object"), "ties_at_cut": mean(result, "ties_at_cut"),
            "search_seconds": round(search, 1), "seconds": round(wall, 1),
            "per_class": [round(r["predictive_power"], 3) for r in result.records]}


def model_rows(name: str, budgets: list[float], presets: list[str], seed: int) -> list[dict]:
    """Every preset at every budget on one model of the zoo."""
    folder = zoo_model(name)
    data = MODELS[name]["data"]
    common = dict(seed=seed, show_progress=False, device="cpu")
    rows = []
    if "paper" in presets:
        start = time.perf_counter()
        paper = reveal(folder, data, preset="paper", budget=budgets[0], **common)
        wall = time.perf_counter() - start
        h, w = paper.masks.shape[1:]
        for b in budgets:
            k = pixels_for_budget(b, None, h, w)
            cut = replace(paper, patterns=paper.ranks < k)
            rows.append(row(name, "paper", b, evaluate(cut, folder, data, seed=seed), wall,
                            search_seconds(paper)))
            print(rows[-1], flush=True)
    for preset in (p for p in presets if p != "paper"):
        for b in budgets:
            start = time.perf_counter()
            result = reveal(folder, data, preset=preset, budget=b, **common)
            rows.append(row(name, preset, b, result, time.perf_counter() - start,
                            search_seconds(result)))
            print(rows[-1], flush=True)
    return rows


def means(rows: list[dict], models: list[str]) -> list[dict]:
    """Per preset and budget, the mean over ``models`` of each figure."""
    out = []
    for preset in dict.fromkeys(r["preset"] for r in rows):
        for b in dict.fromkeys(r["budget"] for r in rows):
            own = [r for r in rows if (r["preset"], r["budget"]) == (preset, b)]
            out.append({"model": f"mean of {len(own)}", "preset": preset, "budget": b,
                        **{k: float(np.mean([r[k] for r in own]))
                           for k in ("predictive_power", "random_pixels", "no_pattern",
                                     "search_seconds", "seconds")}})
    return out


def by_model(rows: list[dict]) -> list[dict]:
    """One row per model and preset: the predictive power at each budget, and the mean wall
    time of one budget's command (the paper preset's one search serves every budget)."""
    out = {}
    for r in rows:
        line = out.setdefault((r["model"], r["preset"]), {"model": r["model"],
                                                          "preset": r["preset"], "walls": []})
        line[f"{r['budget']:.0%}"] = r["predictive_power"]
        line["walls"].append(r["seconds"])
    return [{**line, "seconds": f"{np.mean(line.pop('walls')):.1f}"}
            for line in out.values()]


def wins(rows: list[dict], budgets: list[float]) -> list[dict]:
    """For each preset but the paper's: on how many models it beats the paper preset (none
    when the paper preset was not run)."""
    power = {(r["model"], r["preset"], r["budget"]): r["predictive_power"] for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows if r["preset"] == "paper"))
    if not models:
        return []
    out = []
    for preset in dict.fromkeys(r["preset"] for r in rows if r["preset"] != "paper"):
        line = {"model": "beats paper on", "preset": preset, "seconds": ""}
        for b in budgets:
            won = sum(power[m, preset, b] > power[m, "paper", b] for m in models)
            line[f"{b:.0%}"] = f"{won} of {len(models)}"
        out.append(line)
    return out


def measured(path: Path, cmd: str, names: list[str]) -> tuple[list[dict], dict]:
    """The rows and models a cut run of the same command already wrote to ``path``, so a
    rerun measures only the models it lacks (a model's rows are written all at once)."""
    if not path.is_file():
        return [], {}
    done = json.loads(path.read_text())
    if done["command"] != cmd:
        return [], {}
    models = {n: m for n, m in done["models"].items()
              if n in names and m["settings"] == MODELS[n]}
    print(f"kept the rows of {', '.join(models) or 'no model'} from {path}", flush=True)
    return [r for r in done["rows"] if r["model"] in models], models


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", choices=list(ZOO), help="every model of one part of the zoo")
    p.add_argument("--models", help=f"a comma list of {', '.join(MODELS)}")
    p.add_argument("--budgets", default="0.02,0.05,0.10")
    p.add_argument("--presets", default="paper,default,thorough")
    p.add_argument("--seed", type=int, default=0, help="the search's seed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="result name (default: natural_<zoo>)")
    args = p.parse_args()
    if (args.zoo is None) == (args.models is None):
        p.error("give --zoo or --models")
    names = list(ZOO[args.zoo]) if args.zoo else args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    torch.set_num_threads(args.threads)
    budgets = [float(b) for b in args.budgets.split(",")]
    presets = args.presets.split(",")
    out = args.out or f"natural_{args.zoo or 'models'}"
    cmd, path = command("natural.py", args), RESULTS / f"{out}.json"
    rows, models = measured(path, cmd, names)
    for name in (n for n in names if n not in models):
        rows += model_rows(name, budgets, presets, args.seed)
        models[name] = {"settings": MODELS[name],
                        "clean_test_accuracy": meta(zoo_model(name))["clean_test_accuracy"],
                        "part": next(part for part, zoo in ZOO.items() if name in zoo)}
        save(out, {"command": cmd, "machine": machine(), "models": models, "rows": rows,
                   "means": means(rows, names)})
    print(table(by_model(rows) + by_model(means(rows, names)) + wins(rows, budgets),
                [("model", "model"), ("preset", "preset"),
                 *((f"{b:.0%}", f"power at {b:.0%}") for b in budgets),
                 ("seconds", "wall s, one budget")]))
    print(f"results in {path}")


if __name__ == "__main__":
    main()
