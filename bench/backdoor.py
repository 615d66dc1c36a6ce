"""Backdoor benchmark: scan a zoo of poisoned and clean models with classwise and Neural Cleanse.

For each attack (badnets, trojan, blended, sig, wanet) the zoo holds ``--models-per-attack``
poisoned models (different targets, seeds and, for patch attacks, trigger positions including
ones away from the corners) and as many clean models. Both scan methods run on every model and
the benchmark reports, per attack and method: detection (true and false positive rates, AUROC
of the largest anomaly index), the share of flagged poisoned models whose flagged class is the
true target, trigger localisation (share of the flagged pattern's pixels on the trigger mask,
patch attacks only) and wall time per model. Models are cached under ``bench/out/`` so reruns
skip training; the figures go to ``bench/results/backdoor_<data>.json``, rewritten after
every model.

    .venv/bin/python bench/backdoor.py --data mnist5k
    .venv/bin/python bench/backdoor.py --data shapes --models-per-attack 2
    .venv/bin/python bench/backdoor.py --quick          # 1 model per attack, 1 clean
    .venv/bin/python bench/backdoor.py --attacks badnets,trojan   # patch triggers only
    .venv/bin/python bench/backdoor.py --resume-from bench/results/backdoor_mnist5k.json
    .venv/bin/python bench/backdoor.py --references 3   # classwise against 3 clean models
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from common import cached_model, command, meta
from scipy.ndimage import binary_dilation
from sklearn.metrics import roc_auc_score

from classwise.data import load_data
from classwise.data.base import Dataset
from classwise.fileio import write_json
from classwise.models import load_model
from classwise.scan import scan
from classwise.scan.scan import MIN_FACTOR

ROOT = Path(__file__).resolve().parent
ATTACKS = ("badnets", "trojan", "blended", "sig", "wanet")
PATCH_ATTACKS = ("badnets", "trojan")
METHODS = ("classwise", "neural-cleanse")
# Two corners, two off-corner places and the centre; "x,y" is the patch's top-left pixel.
POSITIONS = {28: ["bottom-right", "top-left", "17,4", "5,17", "center"],
             32: ["bottom-right", "top-left", "20,5", "6,20", "center"]}
TRAINING = {"mnist5k": {"arch": "small-cnn", "epochs": 3, "batch_size": 64, "lr": 2e-3},
            "shapes": {"arch": "resnet18-narrow", "epochs": 12, "batch_size": 64, "lr": 2e-3}}
"""The zoo's training per dataset. The small CNN reaches only about 0.3 test accuracy on
shapes, so shapes models are the narrow ResNet-18 of the natural and adversarial benches.
Its training loss stays near chance for several epochs before it drops: at 6 epochs the
first five zoo models ended at 0.33 to 0.70 test accuracy; at 12, the first three (clean,
BadNets, Trojan) at 0.92, 0.90 and 0.86."""
ATTACK_OPTIONS = {"sig": {"delta": 0.25, "frequency": 3, "poison_rate": 0.95},
                  "wanet": {"strength": 1.0}}
ATTACK_EPOCHS = {"sig": 10, "wanet": 10}
"""Attack options and least epochs that make SIG and WaNet implant on mnist5k. At their
defaults (SIG amplitude 20/255 on 30% of the target class, WaNet strength 0.5) and 3 epochs the
attack success rates were 0.004 and 0.13; with these, 0.67 and 0.96 in one development
model each, and 0.14 to 0.53 (SIG) and 0.85 to 0.98 (WaNet) across the zoo."""


@dataclass(frozen=True)
class Spec:
    """One zoo model: ``attack`` None for a clean one."""

    name: str
    attack: str | None
    target: int | None
    seed: int
    position: str | None


def zoo(data: Dataset, per_attack: int, attacks: tuple[str, ...] = ATTACKS) -> list[Spec]:
    """``per_attack`` rounds of one poisoned model per attack and one clean model.

    A model's target, seed and position depend on its attack and round only, so a zoo of
    fewer attacks holds the same models as the full zoo (and shares its cache).
    """
    positions = POSITIONS[data.image_shape[1]]
    specs = []
    for i in range(per_attack):  # round by round, so any prefix of the zoo is balanced
        for a, attack in enumerate(ATTACKS):
            if attack not in attacks:
                continue
            position = positions[i % len(positions)] if attack in PATCH_ATTACKS else None
            specs.append(Spec(f"{attack}-{i}", attack, (3 * i + a + 1) % data.num_classes,
                              100 * a + i, position))
        specs.append(Spec(f"clean-{i}", None, None, 1000 + i, None))
    return specs


def trained(spec: Spec, data: Dataset) -> tuple[torch.nn.Module, dict, Path]:
    """The model of ``spec`` (trained once, then read from the bench's cache), its meta data
    and its folder. A cached model trained with other settings is trained again."""
    training = {**TRAINING[data.name]}
    options = {}
    if spec.attack is not None:
        training["epochs"] = max(training["epochs"], ATTACK_EPOCHS.get(spec.attack, 0))
        options = {"attack": spec.attack, "target": spec.target,
                   **ATTACK_OPTIONS.get(spec.attack, {})}
    if spec.position is not None:
        options["position"] = spec.position
    folder = cached_model(f"backdoor/{data.name}/{spec.name}", data=data,
                          setting="natural" if spec.attack is None else "backdoor",
                          seed=spec.seed, **training, **options)
    return load_model(folder / "model.ts", device="cpu"), meta(folder), folder


def trigger_mask(folder: Path) -> np.ndarray | None:
    """The trigger's mask (H, W) bool, or None for a clean model."""
    path = folder / "trigger.npz"
    if not path.is_file():
        return None
    with np.load(path) as f:
        return f["mask"] > 0


def scan_record(spec: Spec, model: torch.nn.Module, data: Dataset, method: str,
                mask: np.ndarray | None, canvas: str | None = None,
                references: dict[str, Path] | None = None) -> dict:
    """One model's scan under ``method``: verdict, flagged classes, index, time, localisation,
    and the canvas each class's kept pattern was found on. A classwise scan compares each
    class with ``references`` (name: scan folder) when given."""
    start = time.perf_counter()
    options = {"canvas": canvas} if canvas and method == "classwise" else {}
    if references and method == "classwise":
        options["reference"] = list(references.values())
    result = scan(model, data, method=method, show_progress=False, **options)
    seconds = time.perf_counter() - start
    record = {"model": spec.name, "attack": spec.attack or "clean", "target": spec.target,
              "method": method, "seconds": round(seconds, 2), "flagged": result.flagged,
              "max_index": float(np.max(result.anomaly_index)),
              "statistic": [round(float(v), 4) for v in result.values],
              "canvases": [r["canvas_split"] for r in result.reveal.records]}
    if method == "classwise":
        record["reached"] = [bool(e["reached"]) for e in result.extra]
        record["min_factor"] = result.settings["min_factor"]
        record["reference"] = list(references or {})
    if spec.attack in PATCH_ATTACKS and spec.target in result.flagged:
        pattern = result.patterns[list(result.classes).index(spec.target)]
        record["on_trigger"] = float(mask[pattern].mean())
        record["near_trigger"] = float(binary_dilation(mask)[pattern].mean())
    return record


def summarise(records: list[dict]) -> list[dict]:
    """Per attack and method: TPR, FPR (clean models), AUROC, right target, localisation, time."""
    rows = []
    for method in METHODS:
        clean = [r for r in records if r["method"] == method and r["attack"] == "clean"]
        for attack in (*ATTACKS, "all"):
            bad = [r for r in records if r["method"] == method and r["attack"] != "clean"
                   and (attack == "all" or r["attack"] == attack)]
            if not bad:
                continue
            flagged = [r for r in bad if r["flagged"]]
            scores = [min(r["max_index"], 1e6) for r in bad + clean]
            labels = [1] * len(bad) + [0] * len(clean)
            local = [r["on_trigger"] for r in bad if "on_trigger" in r]
            near = [r["near_trigger"] for r in bad if "near_trigger" in r]
            rows.append({
                "method": method, "attack": attack, "models": len(bad), "clean": len(clean),
                "tpr": len(flagged) / len(bad),
                "fpr": sum(bool(r["flagged"]) for r in clean) / len(clean) if clean else None,
                "auroc": roc_auc_score(labels, scores) if clean else None,
                "right_target": (sum(r["target"] in r["flagged"] for r in flagged) / len(flagged)
                                 if flagged else None),
                "on_trigger": float(np.mean(local)) if local else None,
                "min_on_trigger": float(np.min(local)) if local else None,
                "near_trigger": float(np.mean(near)) if near else None,
                "seconds": float(np.mean([r["seconds"] for r in bad + clean]))})
    return rows


def table(rows: list[dict]) -> str:
    """The summary as fixed-width text."""
    cols = ["method", "attack", "models", "clean", "tpr", "fpr", "auroc", "right_target",
            "on_trigger", "min_on_trigger", "near_trigger", "seconds"]

    def fmt(v: object) -> str:
        return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

    cells = [cols] + [[fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
                     for row in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist5k", choices=sorted(TRAINING))
    parser.add_argument("--models-per-attack", type=int, default=5)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma list of {', '.join(METHODS)} (default: both)")
    parser.add_argument("--attacks", default=",".join(ATTACKS),
                        help=f"comma list of {', '.join(ATTACKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="one model per attack, one clean")
    parser.add_argument("--train-only", action="store_true", help="fill the model cache only")
    parser.add_argument("--canvas", help="canvas sources of the classwise scan (default: the "
                        "scan's own, solid:white+auto)")
    parser.add_argument("--out", type=Path, help="default: bench/results/backdoor_<data>.json")
    parser.add_argument("--references", type=int, default=0, metavar="N",
                        help="train N clean reference models apart from the zoo, scan them "
                             "with classwise and compare every classwise scan with them")
    parser.add_argument("--resume-from", type=Path, nargs="+", default=[], metavar="JSON",
                        help="keep the scans in these earlier results (same data and canvas; "
                             "e.g. --out of a stopped run) and scan only the models they lack")
    args = parser.parse_args()
    out = args.out or ROOT / "results" / f"backdoor_{args.data}.json"
    attacks = tuple(args.attacks.split(","))
    unknown = sorted(set(attacks) - set(ATTACKS))
    if unknown:
        parser.error(f"unknown attack(s) {', '.join(unknown)}; choose from {', '.join(ATTACKS)}")
    data = load_data(args.data)
    specs = zoo(data, 1 if args.quick else args.models_per_attack, attacks)
    references = reference_scans(data, args)
    folders = {r["name"]: ROOT.parent / r["scan"] for r in references}
    earlier = earlier_scans(args.resume_from, args, list(folders))
    records, models, resumed = [], [], []
    for spec in specs:
        model, info, folder = trained(spec, data)
        models.append({**asdict(spec), "clean_accuracy": info["clean_test_accuracy"],
                       "attack_success_rate": info.get("attack_success_rate")})
        print(f"{spec.name}: accuracy {info['clean_test_accuracy']:.3f} attack success "
              f"{info.get('attack_success_rate', float('nan')):.3f}", flush=True)
        if args.train_only:
            continue
        for method in args.methods.split(","):
            kept = (spec.name, method) in earlier
            if kept:
                records.append(earlier[spec.name, method])
                resumed.append(f"{spec.name}/{method}")
            else:
                records.append(scan_record(spec, model, data, method, trigger_mask(folder),
                                           args.canvas, folders))
            r = records[-1]
            print(f"  {method}: flagged {r['flagged']} max index {r['max_index']:.2f} "
                  f"({r['seconds']:.1f} s{', kept from an earlier run' if kept else ''})",
                  flush=True)
        save(out, args, models, records, resumed, references, complete=spec == specs[-1])
    if not args.train_only:
        print(table(summarise(records)))


def reference_scans(data: Dataset, args: argparse.Namespace) -> list[dict]:
    """Train (or read from the cache) ``args.references`` clean models outside the zoo, of
    its architecture (``classwise scan`` refuses a reference of another), and, unless
    ``--train-only``, scan each with classwise into its folder (a scan newer than the model
    is kept); their names, architecture, accuracy, scan folders and scan seconds (None when
    kept)."""
    rows = []
    for i in range(args.references):
        spec = Spec(f"reference-{i}", None, None, 2000 + i, None)
        model, info, folder = trained(spec, data)
        if args.train_only:
            continue
        out = folder / f"scan-{args.canvas or 'default'}"
        done = out / "scan.json"
        seconds = None  # a scan newer than its model is kept, as models are
        if not done.is_file() or done.stat().st_mtime < (folder / "model.ts").stat().st_mtime:
            start = time.perf_counter()
            options = {"canvas": args.canvas} if args.canvas else {}
            scan(model, data, show_progress=False, **options).save(out, pictures=False)
            seconds = round(time.perf_counter() - start, 2)
        rows.append({"name": spec.name, "arch": info["arch"], "seed": spec.seed,
                     "clean_accuracy": info["clean_test_accuracy"],
                     "scan": str(out.relative_to(ROOT.parent)),
                     "seconds": seconds})
        print(f"{spec.name}: accuracy {info['clean_test_accuracy']:.3f}, reference scan "
              f"{'kept' if seconds is None else f'{seconds:.1f} s'}", flush=True)
    return rows


def earlier_scans(paths: list[Path], args: argparse.Namespace,
                  references: list[str]) -> dict[tuple[str, str], dict]:
    """The scans in earlier results ``paths`` by (model, method), a later file's winning; a
    file that is missing, or scanned another dataset, with another canvas or models trained
    otherwise (on the settings it records), is an error. A classwise scan recorded under
    another outlier rule (before unreached classes were capped and the scale floored, so
    without ``min_factor``, or with another one), or compared with other ``references``
    (names) than this run's, is not kept."""
    earlier = {}
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"{path} does not exist; pass the --out of an earlier run")
        before = json.loads(path.read_text())
        words = before["command"].split()
        canvas = before.get("canvas", words[words.index("--canvas") + 1]
                            if "--canvas" in words else None)
        training = TRAINING[args.data]
        same_training = all(training.get(k) == v for k, v in before["training"].items())
        if (before["data"], canvas) != (args.data, args.canvas) or not same_training:
            raise SystemExit(f"{path} scanned {before['data']} with canvas "
                             f"{canvas or 'default'} and training {before['training']}, not "
                             "this run's; resume from a matching run")
        earlier.update({(r["model"], r["method"]): r for r in before["scans"]
                        if r["method"] != "classwise"
                        or (r.get("min_factor") == MIN_FACTOR
                            and r.get("reference", []) == references)})
    return earlier


def save(out: Path, args: argparse.Namespace, models: list[dict], records: list[dict],
         resumed: list[str], references: list[dict], complete: bool) -> None:
    """Write what has been measured so far (after every model, so a stopped run keeps it);
    ``resumed`` names the scans kept from an earlier run (model/method)."""
    write_json(out, {"command": command("backdoor.py", args), "complete": complete,
                     "data": args.data, "canvas": args.canvas, "training": TRAINING[args.data],
                     "models": models, "references": references, "resumed": resumed,
                     "scans": records,
                     "summary": summarise(records)})


if __name__ == "__main__":
    main()
