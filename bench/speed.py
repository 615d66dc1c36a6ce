"""Speed and scale: paper vs the default and fast presets, cost per class as classes and size grow.

    python bench/speed.py                      # everything (long on a CPU)
    python bench/speed.py --part presets       # paper vs default and fast: the whole command
    python bench/speed.py --part scale         # classes 10/100/1000 and 28/64/224 px
    python bench/speed.py --part layout        # channels-last and torch.compile vs plain

The 1,000-class 224 px run searches 64 of its classes in two chunks: enough to show that
peak memory follows the chunk (``--big-max-batch``), not the number of classes.

Each scale configuration runs in its own process so its peak memory (max RSS) is its own.
The scale part times the search alone (``classwise.find_patterns``, no evaluation) with a
fixed, short schedule on a randomly initialised small CNN with that many outputs and random
images: the cost of the search does not depend on what the model learned. Writes
bench/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from common import CACHE, child_env, machine, save, table, zoo_model

SCALE_STEPS = dict(max_steps=4, eval_every=0, val_images=0, canvas_candidates=1, finalists=1,
                   init="constant", batch_size=8)


def one_scale_run(classes: int, size: int, searched: int, batched: bool,
                  max_batch: int) -> dict:
    """Time the search of ``searched`` classes on random images (one canvas each, one
    search image per class); runs inside its own process."""
    from classwise import find_patterns
    from classwise.models import create_model

    gen = torch.Generator().manual_seed(0)
    model = create_model("small-cnn", (1, size, size), classes).eval()
    canvases = torch.rand(searched, 1, size, size, generator=gen)
    images = torch.rand(classes, 1, size, size, generator=gen)
    per_pass = max(1, max_batch // SCALE_STEPS["batch_size"]) if batched else 1
    start = time.perf_counter()
    find_patterns(model, canvases, torch.arange(searched), images, torch.arange(classes),
                  pixels=max(1, round(0.05 * size * size)), device="cpu",
                  classes_per_pass=per_pass, **SCALE_STEPS)
    seconds = time.perf_counter() - start
    return {"classes": classes, "size": size, "searched": searched,
            "mode": "batched" if batched else "one at a time", "rows_per_pass": per_pass,
            "seconds": round(seconds, 2), "seconds_per_class": round(seconds / searched, 4),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def scale_rows(max_batch: int, big_max_batch: int) -> list[dict]:
    configs = []
    for classes in (10, 100, 1000):
        configs += [(classes, 28, classes, True), (classes, 28, min(classes, 20), False)]
    for size in (64, 224):
        configs += [(10, size, 10, True), (10, size, 10, False)]
    configs.append((1000, 224, 64, True))  # two chunks at --max-batch 256: memory per chunk
    rows = []
    for classes, size, searched, batched in configs:
        chunk = big_max_batch if (classes, size) == (1000, 224) else max_batch
        code = ("import json, sys; sys.path.insert(0, 'bench'); import speed; "
                f"print(json.dumps(speed.one_scale_run({classes}, {size}, {searched}, "
                f"{batched}, {chunk})))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    return rows


def preset_rows(seed: int, rounds: int, threads: int) -> list[dict]:
    """Paper vs default and fast end to end: the whole ``classwise reveal`` command
    (start-up, search, evaluation and the run folder's files) on the small CNN on mnist5k,
    all 10 classes at 5%, timed as processes; the commands take turns ``rounds`` times, so
    the ratios of their medians are measured under the same conditions."""
    import shutil
    import statistics

    folder = zoo_model(f"mnist-cnn-s{seed}")
    out = CACHE / "speed"
    times: dict[str, list[float]] = {"paper": [], "default": [], "fast": []}
    searches: dict[str, list[float]] = {p: [] for p in times}
    powers = {}
    for _ in range(rounds):
        for preset in times:
            shutil.rmtree(out / preset, ignore_errors=True)
            argv = ["reveal", "--model", str(folder), "--data", "mnist5k", "--preset", preset,
                    "--budget", "0.05", "--seed", str(seed), "--no-progress",
                    "--out", str(out / preset)]
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "classwise.cli", *argv], check=True,
                           stdout=subprocess.DEVNULL, env=child_env(threads))
            times[preset].append(time.perf_counter() - start)
            result = json.loads((out / preset / "results.json").read_text())
            powers[preset] = result["mean_predictive_power"]
            searches[preset].append(sum(r["seconds"] for r in result["classes"]))
            print(preset, round(times[preset][-1], 1), "s, search", round(searches[preset][-1], 1),
                  flush=True)
    rows = [{"preset": p, "wall_s": round(statistics.median(t), 1),
             "search_s": round(statistics.median(searches[p]), 1),
             "runs": [round(v, 1) for v in t], "predictive_power": round(powers[p], 3)}
            for p, t in times.items()]
    for r in rows[1:]:
        r["wall speed-up"] = round(rows[0]["wall_s"] / r["wall_s"], 1)
        r["search speed-up"] = round(rows[0]["search_s"] / r["search_s"], 1)
    return rows


def search_step(model: torch.nn.Module, x: torch.Tensor) -> None:
    """What one search step costs: a forward pass and the gradient to the input."""
    x = x.clone().requires_grad_(True)
    torch.autograd.grad(model(x).sum(), x)


def layout_rows(repeats: int = 5, images: int = 512) -> list[dict]:
    """Speed-up of channels-last and ``torch.compile`` over the plain model, per architecture.

    Variants alternate within each repeat and the best time of each counts, so the ratios
    come from one run under the same load; compile's one-off warm-up is reported apart.
    """
    from classwise.models.registry import create_model

    rows = []
    for arch, shape in (("small-cnn", (1, 28, 28)), ("resnet18-narrow", (3, 32, 32))):
        plain = create_model(arch, shape, 10).eval()
        x = torch.rand(images, *shape)
        last = create_model(arch, shape, 10).eval()
        last.load_state_dict(plain.state_dict())
        variants = {"plain": (plain, x),
                    "channels-last": (last.to(memory_format=torch.channels_last),
                                      x.contiguous(memory_format=torch.channels_last)),
                    "compile": (torch.compile(plain), x)}
        start = time.perf_counter()
        search_step(*variants["compile"])
        warmup = time.perf_counter() - start
        best = {k: float("inf") for k in variants}
        for _ in range(repeats):
            for k, (model, inp) in variants.items():
                start = time.perf_counter()
                search_step(model, inp)
                best[k] = min(best[k], time.perf_counter() - start)
        rows.append({"arch": arch, "images": images, "plain_s": round(best["plain"], 3),
                     "channels_last_speedup": round(best["plain"] / best["channels-last"], 2),
                     "compile_speedup": round(best["plain"] / best["compile"], 2),
                     "compile_warmup_s": round(warmup, 1)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["all", "presets", "scale", "layout"], default="all")
    p.add_argument("--max-batch", type=int, default=512,
                   help="search images per forward pass in batched mode")
    p.add_argument("--big-max-batch", type=int, default=256,
                   help="search images per pass for the 1,000-class 224 px run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=3, help="turns of each command (presets)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads, here and in the timed commands")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    payload = {"command": "python bench/speed.py " + " ".join(sys.argv[1:]),
               "machine": machine()}
    if args.part in ("all", "presets"):
        payload["presets"] = preset_rows(args.seed, args.rounds, args.threads)
        print(table(payload["presets"], [("preset", "preset"), ("wall_s", "median wall s"),
                                         ("search_s", "median search s"),
                                         ("search speed-up", "search speed-up"),
                                         ("predictive_power", "mean predictive power"),
                                         ("wall speed-up", "end-to-end speed-up")]))
    if args.part in ("all", "scale"):
        payload["scale"] = scale_rows(args.max_batch, args.big_max_batch)
        print(table(payload["scale"], [("classes", "classes"), ("size", "px"),
                                       ("mode", "mode"), ("searched", "classes searched"),
                                       ("rows_per_pass", "rows/pass"),
                                       ("seconds_per_class", "s/class"),
                                       ("peak_rss_mib", "peak MiB")]))
    if args.part in ("all", "layout"):
        payload["layout"] = layout_rows()
        print(table(payload["layout"], [("arch", "model"), ("images", "images"),
                                        ("plain_s", "plain s/step"),
                                        ("channels_last_speedup", "channels-last speed-up"),
                                        ("compile_speedup", "compile speed-up"),
                                        ("compile_warmup_s", "compile warm-up s")]))
    print(f"wrote {save('speed' if args.part == 'all' else f'speed_{args.part}', payload)}")


if __name__ == "__main__":
    main()
