"""Backdoor benchmark: scan zoos of poisoned and clean models, with no clean reference.

Three zoos, two of mnist5k models and one of colour ``shapes`` models. ``dev``, the
development zoo and the only one any setting may be tuned on: five small CNNs per attack
(BadNets, Trojan, Blended, SIG, WaNet), each with its own target, seed and, for patch
triggers, position, and five clean ones, as the earlier tables of docs/benchmarks.md
measured them. ``held-out``: new seeds, targets, trigger positions and
shapes, blend images, SIG frequencies, WaNet grids and poison rates, and clean models of
three architectures; trained before any tuning, and measured once, when every setting is
final (``--final``). A held-out model whose attack did not implant (attack success below
0.5) is left out of it. ``shapes``: the development zoo's attacks, targets, seeds and
options on narrow ResNet-18s (12 epochs, patch places inside 32 pixels); nothing is tuned
on it.

Every method scans every model with every seed through :func:`classwise.scan_models`, into
``bench/out/backdoor/<zoo>/<method>-s<seed>/<model>/`` (a rerun scans only the models
without a scan newer than the model). The summary, per method, seed and attack: TPR and
FPR at the method's own threshold, AUROC of each model's largest anomaly index, TPR at FPR
0, the shares of flagged backdoored models flagged at the target and at another class,
where a patch trigger's flagged pattern lies, and seconds per model; with several seeds,
the share of models whose verdict every seed gives. Models are cached under
``bench/out/backdoor/``; the figures go to ``bench/results/backdoor_<zoo>.json``.

    .venv/bin/python bench/backdoor.py --train-only                 # train the dev zoo
    .venv/bin/python bench/backdoor.py --methods classwise,neural-cleanse
    .venv/bin/python bench/backdoor.py --seeds 0,1,2                # stability over seeds
    .venv/bin/python bench/backdoor.py --quick                      # 1 model per attack, 1 clean
    .venv/bin/python bench/backdoor.py --attacks badnets,trojan     # patch triggers only
    .venv/bin/python bench/backdoor.py --references 3               # classwise against clean models
    .venv/bin/python bench/backdoor.py --zoo held-out --train-only
    .venv/bin/python bench/backdoor.py --zoo held-out --final       # once, at the end
    .venv/bin/python bench/backdoor.py --zoo shapes --models-per-attack 3 \
        --out bench/results/backdoor_shapes_families.json   # the earlier zoo's file keeps its name
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import CACHE, RESULTS, cached_model, command, machine, meta, table
from PIL import Image
from scipy.ndimage import binary_dilation

from classwise.errors import ClasswiseError
from classwise.fileio import write_json
from classwise.scan import METHODS as INSTALLED
from classwise.scan import scan_models
from classwise.scan.dense import dense_settings
from classwise.scan.scan import checked_families
from classwise.scan.zoo import model_names
from classwise.search.checkpoint import DIRNAME
from classwise.seeding import rng

REPO = Path(__file__).resolve().parent.parent
DATA = "mnist5k"
ATTACKS = ("badnets", "trojan", "blended", "sig", "wanet")
PATCH_ATTACKS = ("badnets", "trojan")
METHODS = ("classwise", "neural-cleanse", "mm-bd")
TRAINING = {"batch_size": 64, "lr": 2e-3}
"""What every zoo model's training shares; architecture, epochs and seed are each model's."""
MIN_SUCCESS = 0.5
"""The least attack success (on the test split) a held-out backdoored model needs to stay in
its zoo: below it the attack did not implant."""

# The development zoo, as the bench built it before (its cached models and figures carry over).
POSITIONS = ("bottom-right", "top-left", "17,4", "5,17", "center")
"""Patch positions by round: two corners, two off-corner places ("x,y" is the patch's
top-left pixel) and the centre."""
ATTACK_OPTIONS = {"sig": {"delta": 0.25, "frequency": 3, "poison_rate": 0.95},
                  "wanet": {"strength": 1.0}}
ATTACK_EPOCHS = {"sig": 10, "wanet": 10}
"""Attack options and least epochs that make SIG and WaNet implant on mnist5k. At their
defaults (SIG amplitude 20/255 on 30% of the target class, WaNet strength 0.5) and 3 epochs the
attack success rates were 0.004 and 0.13; with these, 0.67 and 0.96 in one development
model each, and 0.14 to 0.53 (SIG) and 0.85 to 0.98 (WaNet) across the zoo."""


@dataclass(frozen=True)
class Spec:
    """One zoo model: ``attack`` None for a clean one, ``options`` the attack's own, and
    ``texture`` the seed of the blend image a Blended model mixes in (see
    :func:`write_texture`; None: the attack's own noise)."""

    name: str
    attack: str | None
    target: int | None
    seed: int
    arch: str = "small-cnn"
    epochs: int = 3
    options: dict[str, Any] = field(default_factory=dict)
    texture: int | None = None

    @property
    def kind(self) -> str:
        """The attack, or "clean"."""
        return self.attack or "clean"

    def train_args(self) -> dict[str, Any]:
        """The arguments of ``classwise.training.train`` that make this model, but data and
        folder."""
        args = {"arch": self.arch, "epochs": self.epochs, "seed": self.seed, **TRAINING}
        if self.attack is None:
            return {**args, "setting": "natural"}
        blend = {} if self.texture is None else {"pattern_file": texture_path(self.texture)}
        return {**args, "setting": "backdoor", "attack": self.attack, "target": self.target,
                **self.options, **blend}


def dev_zoo(rounds: int = 5, arch: str = "small-cnn", epochs: int = 3,
            positions: Sequence[str] = POSITIONS) -> tuple[Spec, ...]:
    """``rounds`` rounds of one model per attack and one clean model. Round ``i`` of attack
    ``a`` (its place in :data:`ATTACKS`) targets ``(3i + a + 1) mod 10`` with seed ``100a + i``;
    clean models have seeds 1000 + i. Models of ``arch`` train ``epochs`` epochs (at least
    :data:`ATTACK_EPOCHS` for the attacks that need more)."""
    specs = []
    for i in range(rounds):
        for a, attack in enumerate(ATTACKS):
            options = dict(ATTACK_OPTIONS.get(attack, {}))
            if attack in PATCH_ATTACKS:
                options["position"] = positions[i % len(positions)]
            specs.append(Spec(f"{attack}-{i}", attack, (3 * i + a + 1) % 10, 100 * a + i,
                              arch, max(epochs, ATTACK_EPOCHS.get(attack, 0)), options))
        specs.append(Spec(f"clean-{i}", None, None, 1000 + i, arch, epochs))
    return tuple(specs)


SHAPES_POSITIONS = ("bottom-right", "top-left", "20,5", "6,20", "center")
"""The development zoo's patch places on 32 x 32 images."""
SHAPES_EPOCHS = 12
"""The narrow ResNet-18's training loss on shapes stays near chance for several epochs: at 6
epochs the first five models of an earlier shapes zoo ended at 0.33 to 0.70 clean
accuracy; at 12 this zoo's first three rounds reach 0.84 to 0.95 (SIG models 0.70 to
0.73)."""


def _checkerboard(size: int, position: str, **more: Any) -> dict[str, Any]:
    """BadNets options of a checkerboard patch."""
    return {"content": "checkerboard", "size": size, "position": position, **more}


HELD_OUT = (
    # BadNets: checkerboard patches of other sizes and one larger white one, at new places.
    Spec("badnets-h0", "badnets", 2, 3000, options=_checkerboard(4, "top-right")),
    Spec("badnets-h1", "badnets", 5, 3001, options=_checkerboard(5, "bottom-left")),
    Spec("badnets-h2", "badnets", 6, 3002, options=_checkerboard(3, "11,21")),
    Spec("badnets-h3", "badnets", 8, 3003, options=_checkerboard(4, "21,12", poison_rate=0.05)),
    Spec("badnets-h4", "badnets", 9, 3004, options={"size": 5, "position": "3,10"}),
    # Trojan: rings of 5 to 7 pixels across at new places.
    Spec("trojan-h0", "trojan", 0, 3100, options={"size": 5, "position": "top-right"}),
    Spec("trojan-h1", "trojan", 3, 3101, options={"size": 6, "position": "bottom-left"}),
    Spec("trojan-h2", "trojan", 6, 3102, options={"size": 5, "position": "12,2"}),
    Spec("trojan-h3", "trojan", 7, 3103, options={"size": 7, "position": "2,12"}),
    Spec("trojan-h4", "trojan", 9, 3104,
         options={"size": 6, "position": "19,15", "poison_rate": 0.05}),
    # Blended: a smooth random texture of the model's own, mixed in at other weights.
    Spec("blended-h0", "blended", 0, 3200, options={"alpha": 0.15}, texture=3200),
    Spec("blended-h1", "blended", 1, 3201, options={"alpha": 0.25}, texture=3201),
    Spec("blended-h2", "blended", 4, 3202, options={"alpha": 0.3}, texture=3202),
    Spec("blended-h3", "blended", 7, 3203, options={"alpha": 0.15, "poison_rate": 0.05},
         texture=3203),
    Spec("blended-h4", "blended", 8, 3204, options={"alpha": 0.25}, texture=3204),
    # SIG (clean-label): other frequencies and stronger signals, 10 epochs.
    *(Spec(f"sig-h{i}", "sig", t, 3300 + i, epochs=10,
           options={"frequency": f, "delta": d, "poison_rate": 0.95})
      for i, (t, f, d) in enumerate([(1, 5, 0.3), (2, 2, 0.3), (5, 5, 0.35), (8, 2, 0.35),
                                     (9, 4, 0.3)])),
    # WaNet: other warp grids and strengths, 10 epochs.
    *(Spec(f"wanet-h{i}", "wanet", t, 3400 + i, epochs=10, options={"k": k, "strength": s})
      for i, (t, k, s) in enumerate([(0, 6, 1.0), (2, 3, 1.2), (3, 6, 1.2), (6, 8, 1.0),
                                     (9, 3, 1.0)])),
    # Clean: small CNNs (one trained as long as SIG and WaNet), LeNet-5-BN and MLPs.
    Spec("clean-h0", None, None, 3900),
    Spec("clean-h1", None, None, 3901),
    Spec("clean-h2", None, None, 3902, epochs=10),
    Spec("clean-lenet5bn-h0", None, None, 3903, arch="lenet5-bn"),
    Spec("clean-lenet5bn-h1", None, None, 3904, arch="lenet5-bn"),
    Spec("clean-mlp-h0", None, None, 3905, arch="mlp"),
    Spec("clean-mlp-h1", None, None, 3906, arch="mlp", epochs=5),
)
"""The held-out zoo: seeds 3000 and up, and for each attack targets its development models
do not have. Only SIG is clean-label; no attack offers both a dirty- and a clean-label
variant (``clean_label`` is fixed per attack), so dirty-label attacks vary the poison rate
instead (0.05 against the default 0.1 in one model each of BadNets, Trojan and Blended)."""


@dataclass(frozen=True)
class Zoo:
    """A zoo's models, the folder under ``bench/out`` holding them, and the least attack
    success a backdoored model needs to stay in the zoo."""

    name: str
    folder: str
    specs: tuple[Spec, ...]
    min_success: float = 0.0
    data: str = DATA


ZOOS = {"dev": Zoo("dev", f"backdoor/{DATA}", dev_zoo()),
        "held-out": Zoo("held-out", f"backdoor/{DATA}-held-out", HELD_OUT, MIN_SUCCESS),
        "shapes": Zoo("shapes", "backdoor/shapes", dev_zoo(
            arch="resnet18-narrow", epochs=SHAPES_EPOCHS, positions=SHAPES_POSITIONS),
            data="shapes")}
"""The mnist5k zoos, and the colour ``shapes`` zoo: the development zoo's attacks, targets,
seeds and options on narrow ResNet-18s, measured only (no setting is tuned on it)."""


def texture_path(seed: int) -> str:
    """The blend image of ``seed``, relative to the repository: the path is part of the
    model's training settings, so a relative one keeps the cache valid wherever the tree is."""
    return f"bench/out/backdoor/textures/texture-{seed}.png"


def write_texture(path: Path, seed: int, side: int = 28, cells: int = 7) -> None:
    """A smooth random grey texture: a ``cells`` x ``cells`` grid of uniform values drawn from
    ``seed``, upsampled bicubically to ``side`` x ``side`` and stretched to the full range."""
    grid = np.round(rng(seed).random((cells, cells)) * 255).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(grid).resize((side, side), Image.BICUBIC), np.float64)
    low, high = smooth.min(), smooth.max()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(255 * (smooth - low) / (high - low)).astype(np.uint8)).save(path)


def select(specs: Sequence[Spec], kinds: Sequence[str], per_kind: int | None) -> list[Spec]:
    """The specs of ``kinds`` (attacks and "clean"), the first ``per_kind`` of each (None:
    all), in zoo order."""
    count: dict[str, int] = {}
    chosen = []
    for spec in specs:
        if spec.kind in kinds and (per_kind is None or count.get(spec.kind, 0) < per_kind):
            chosen.append(spec)
            count[spec.kind] = count.get(spec.kind, 0) + 1
    return chosen


@contextmanager
def in_repo() -> Iterator[None]:
    """Work in the repository root inside the block, where the specs' relative paths point."""
    before = Path.cwd()
    os.chdir(REPO)
    try:
        yield
    finally:
        os.chdir(before)


def trained(spec: Spec, zoo: Zoo) -> tuple[Path, dict[str, Any]]:
    """The folder of ``spec``'s model under ``bench/out/<zoo.folder>``, trained on the zoo's
    data (once; one trained with other settings is trained again), and its meta data."""
    if spec.texture is not None and not (REPO / texture_path(spec.texture)).is_file():
        write_texture(REPO / texture_path(spec.texture), spec.texture)
    with in_repo():
        out = cached_model(f"{zoo.folder}/{spec.name}", data=zoo.data, **spec.train_args())
    return out, meta(out)


def train_zoo(zoo: Zoo, specs: Sequence[Spec]) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """Train (or read from the cache) every model of ``specs``: the folders of those that stay
    in the zoo by name, and one row per model (training, accuracy, attack success, kept)."""
    folders, rows = {}, []
    for spec in specs:
        folder, info = trained(spec, zoo)
        success = info.get("attack_success_rate")
        kept = success is None or success >= zoo.min_success
        rows.append({"name": spec.name, "attack": spec.kind, "target": spec.target,
                     "arch": spec.arch, "seed": spec.seed, "epochs": spec.epochs,
                     "options": info["setting_options"],
                     "clean_accuracy": info["clean_test_accuracy"],
                     "attack_success_rate": success, "train_seconds": info["seconds"],
                     "kept": kept})
        if kept:
            folders[spec.name] = folder
        print(f"{spec.name}: accuracy {info['clean_test_accuracy']:.3f}"
              + ("" if success is None else f", attack success {success:.3f}")
              + ("" if kept else f", below {zoo.min_success}: left out of the zoo"), flush=True)
    return folders, rows


def reference_specs(archs: Sequence[str], n: int) -> list[Spec]:
    """``n`` clean models of each architecture, apart from every zoo (seeds 2000 and up)."""
    return [Spec(f"reference-{arch}-{i}", None, None, 2000 + i, arch=arch)
            for arch in archs for i in range(n)]


def scanned(scan: Path, model: Path, families: Sequence[str] | None = None) -> bool:
    """Whether ``scan`` holds a finished scan newer than the model in folder ``model``, and,
    for a classwise scan with ``families`` given, of those dense families searched with
    today's settings (a scan from before the families searched none)."""
    report = scan / "scan.json"
    if not report.is_file() or report.stat().st_mtime < (model / "model.ts").stat().st_mtime:
        return False
    if families is None:
        return True
    settings = json.loads(report.read_text())["settings"]
    return settings.get("families", []) == list(families) and \
        (not families or settings.get("dense_search") == dense_settings())


def finished_at(folder: Path) -> float:
    """When the last file of ``folder`` was written."""
    return max(p.stat().st_mtime for p in folder.rglob("*") if p.is_file())


def timed_scan(out: Path, models: Sequence[str | Path], data: str, method: str, seed: int,
               resume: bool, **options: Any) -> None:
    """One :func:`scan_models` call on ``data`` into ``out``, each scanned model's wall
    seconds added to ``out/seconds.json``.

    A model's seconds run from the end of the model before it (the first: from the call's
    start, which includes checking every model) to the moment its folder was finished, so
    they include saving its pictures. A model resumed half-way gets None (part of its time
    went before the cut), as does, by never being written, one finished in a call that was
    cut off. The ``seconds`` in ``scan.json`` settings are not used: before 6317c28 they
    counted only the time after the search (0 s of a 21 s classwise scan).
    """
    names = model_names(models)
    skipped = {n for n in names if resume and (out / n / "scan.json").is_file()}
    halfway = {n for n in names if resume and (out / DIRNAME / n).is_dir()}
    last = time.time()
    scan_models(models, data, out, method=method, seed=seed, resume=resume,
                show_progress=False, **options)
    seconds = read_seconds(out)
    for name in (n for n in names if n not in skipped):
        end = finished_at(out / name)
        seconds[name], last = None if name in halfway else round(end - last, 2), end
    write_json(out / "seconds.json", seconds)


def read_seconds(out: Path) -> dict[str, float | None]:
    """The wall seconds of the models scanned into ``out`` by :func:`timed_scan`, by name."""
    path = out / "seconds.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def scan_into(out: Path, models: Sequence[Path], data: str, method: str, seed: int,
              **options: Any) -> None:
    """Scan into ``out`` each of ``models`` (on ``data``) that has no scan there newer than
    itself.

    :func:`scan_models` resumes a call cut off half-way only as that call was (its checkpoint
    names the call's models) and refuses ``resume=True`` once a call has ended, so a cut-off
    call is finished first, and the models scanned already are left out of the next one.
    """
    cut = out / DIRNAME / "run.json"
    if cut.is_file():
        timed_scan(out, json.loads(cut.read_text())["models"], data, method, seed, True,
                   **options)
    todo = [m for m in models if not scanned(out / m.name, m, options.get("families"))]
    print(f"{out.relative_to(CACHE)}: {len(todo)} of {len(models)} models to scan", flush=True)
    if todo:
        timed_scan(out, todo, data, method, seed, False, **options)


def train_references(zoo: Zoo, archs: Sequence[str],
                     n: int) -> tuple[dict[str, list[Path]], list[dict[str, Any]]]:
    """Train (or read from the cache) ``n`` clean references of each architecture of ``archs``:
    their folders by architecture, and one row per reference."""
    folders: dict[str, list[Path]] = {}
    rows = []
    for spec in reference_specs(archs, n):
        folder, info = trained(spec, zoo)
        folders.setdefault(spec.arch, []).append(folder)
        rows.append({"name": spec.name, "arch": spec.arch, "seed": spec.seed,
                     "clean_accuracy": info["clean_test_accuracy"]})
        print(f"{spec.name}: accuracy {info['clean_test_accuracy']:.3f}", flush=True)
    return folders, rows


def reference_scans(zoo: Zoo, models: dict[str, list[Path]], seed: int) -> dict[str, list[Path]]:
    """Scan every reference of ``models`` (folders by architecture) with classwise and
    ``seed``: their scan folders by architecture."""
    scans = {}
    for arch, folders in models.items():
        out = CACHE / "backdoor" / zoo.name / f"references-s{seed}" / arch
        scan_into(out, folders, zoo.data, "classwise", seed)
        scans[arch] = [out / f.name for f in folders]
    return scans


def scan_jobs(zoo: Zoo, method: str, seed: int, specs: Sequence[Spec],
              references: dict[str, list[Path]], families: Sequence[str] | None = None
              ) -> list[tuple[str, Path, list[Spec], dict]]:
    """The scans of one method and seed as (label, folder, specs, options): the zoo in one,
    or, for classwise against ``references`` (scan folders by architecture), one per
    architecture against that architecture's references. Classwise scans search
    ``families`` (None: the scan's default), named in the label when given
    (``classwise+pixels``: the pixel patch alone)."""
    base = CACHE / "backdoor" / zoo.name
    if method != "classwise":
        return [(method, base / f"{method}-s{seed}", list(specs), {})]
    options = {"families": list(checked_families(families))}
    label = method if families is None else "+".join([method, *families])
    if not references:
        return [(label, base / f"{label}-s{seed}", list(specs), options)]
    label = f"{label}+ref{len(next(iter(references.values())))}"
    return [(label, base / f"{label}-s{seed}" / arch, [s for s in specs if s.arch == arch],
             {**options, "reference": refs}) for arch, refs in references.items()]


def trigger_mask(model: Path) -> np.ndarray:
    """The trigger's mask (H, W) bool of the backdoored model in folder ``model``."""
    with np.load(model / "trigger.npz") as f:
        return f["mask"] > 0


def flagged_pattern(scan: Path, target: int) -> np.ndarray | None:
    """The kept pattern (H, W) bool of class ``target`` in ``scan``, or None without one."""
    path = scan / "patterns.npz"
    if not path.is_file():
        return None
    with np.load(path) as f:
        classes = list(f["classes"])
        return f["patterns"][classes.index(target)] if target in classes else None


def localisation(pattern: np.ndarray | None, mask: np.ndarray) -> dict[str, float]:
    """The share of ``pattern``'s pixels on the trigger ``mask`` and within one pixel of it
    (empty without a pattern)."""
    if pattern is None or not pattern.any():
        return {}
    return {"on_trigger": float(mask[pattern].mean()),
            "near_trigger": float(binary_dilation(mask)[pattern].mean())}


def record(spec: Spec, model: Path, scan: Path, method: str, seed: int,
           seconds: float | None) -> dict[str, Any]:
    """One model's scan: its ground truth, verdict, flagged classes, largest anomaly index,
    seconds and, for a patch trigger whose target is flagged, where the target's pattern lies."""
    report = json.loads((scan / "scan.json").read_text())
    out = {"model": spec.name, "attack": spec.kind, "target": spec.target, "arch": spec.arch,
           "method": method, "seed": seed, "verdict": report["verdict"],
           "flagged": report["flagged"],
           "max_index": max(c["anomaly_index"] for c in report["classes"]),
           "family": report.get("family") if method.startswith("classwise") else None,
           "seconds": seconds, "scan": str(scan.relative_to(REPO))}
    if spec.attack in PATCH_ATTACKS and spec.target in out["flagged"]:
        out |= localisation(flagged_pattern(scan, spec.target), trigger_mask(model))
    return out


def scan_zoo(zoo: Zoo, specs: Sequence[Spec], folders: dict[str, Path], methods: Sequence[str],
             seeds: Sequence[int], references: dict[str, list[Path]],
             families: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Scan ``specs`` (model folders by name: ``folders``) with every method and seed, and
    classwise against ``references`` (clean model folders by architecture) when given, with
    ``families``: one record per scan."""
    records = []
    for seed in seeds:
        refs = reference_scans(zoo, references, seed) if references else {}
        for method in methods:
            for label, out, group, options in scan_jobs(zoo, method, seed, specs, refs,
                                                        families):
                scan_into(out, [folders[s.name] for s in group], zoo.data, method, seed,
                          **options)
                seconds = read_seconds(out)
                records += [record(s, folders[s.name], out / s.name, label, seed,
                                   seconds.get(s.name)) for s in group]
    return records


# Summary: each metric a function of the records of one method and seed.

def flagged_share(records: Sequence[dict]) -> float | None:
    """The share of ``records`` with a flagged class: TPR for backdoored models, FPR for clean."""
    return float(np.mean([bool(r["flagged"]) for r in records])) if records else None


def auroc(bad: Sequence[dict], clean: Sequence[dict]) -> float | None:
    """The AUROC of the largest anomaly index, backdoored against clean: the chance that a
    backdoored model's index exceeds a clean one's, ties counting half."""
    if not bad or not clean:
        return None
    b = np.array([r["max_index"] for r in bad])[:, None]
    c = np.array([r["max_index"] for r in clean])[None, :]
    return float(np.mean((b > c) + 0.5 * (b == c)))


def tpr_at_zero_fpr(bad: Sequence[dict], clean: Sequence[dict]) -> float | None:
    """The share of backdoored models whose largest index exceeds every clean model's: the
    TPR of the threshold that flags no clean model."""
    if not bad or not clean:
        return None
    top = max(r["max_index"] for r in clean)
    return float(np.mean([r["max_index"] > top for r in bad]))


def _among_flagged(bad: Sequence[dict], test: Callable[[dict], bool]) -> float | None:
    flagged = [r for r in bad if r["flagged"]]
    return float(np.mean([test(r) for r in flagged])) if flagged else None


def right_target(bad: Sequence[dict]) -> float | None:
    """Among flagged backdoored models, the share with the target among the flagged classes."""
    return _among_flagged(bad, lambda r: r["target"] in r["flagged"])


def extra_class(bad: Sequence[dict]) -> float | None:
    """Among flagged backdoored models, the share with a flagged class other than the target
    (beside the target or instead of it)."""
    return _among_flagged(bad, lambda r: any(c != r["target"] for c in r["flagged"]))


def trigger_figures(bad: Sequence[dict]) -> dict[str, float | None]:
    """Mean and worst share of the flagged target pattern on the trigger, and the mean share
    within one pixel of it, over the models that have them (patch triggers, target flagged)."""
    on = [r["on_trigger"] for r in bad if "on_trigger" in r]
    near = [r["near_trigger"] for r in bad if "near_trigger" in r]
    return {"on_trigger": float(np.mean(on)) if on else None,
            "min_on_trigger": float(np.min(on)) if on else None,
            "near_trigger": float(np.mean(near)) if near else None}


def found_by(bad: Sequence[dict]) -> str | None:
    """The pattern families that decided the flagged models' classwise verdicts, with
    counts (a scan from before the families: pixels; other methods: None)."""
    counts = Counter(r.get("family") or "pixels" for r in bad
                     if r["flagged"] and r["method"].startswith("classwise"))
    return ", ".join(f"{f} {n}" for f, n in counts.most_common()) or None


def mean_seconds(records: Sequence[dict]) -> float | None:
    """The mean seconds per model, or None unless every model was timed: a mean over the
    models that happen to be timed (say those scanned after a cut) would misstate it."""
    seconds = [r["seconds"] for r in records]
    return None if not seconds or None in seconds else float(np.mean(seconds))


def summary_row(bad: Sequence[dict], clean: Sequence[dict]) -> dict[str, Any]:
    """Every metric of one attack's backdoored models against the clean ones."""
    return {"models": len(bad), "clean": len(clean), "tpr": flagged_share(bad),
            "fpr": flagged_share(clean), "auroc": auroc(bad, clean),
            "tpr_at_fpr0": tpr_at_zero_fpr(bad, clean), "right_target": right_target(bad),
            "extra_class": extra_class(bad), "found_by": found_by(bad), **trigger_figures(bad),
            "seconds": mean_seconds([*bad, *clean])}


def summarise(records: Sequence[dict]) -> list[dict[str, Any]]:
    """One row per method, seed and attack (and "all" attacks, when there are several)."""
    rows = []
    for method, seed in dict.fromkeys((r["method"], r["seed"]) for r in records):
        own = [r for r in records if (r["method"], r["seed"]) == (method, seed)]
        clean = [r for r in own if r["attack"] == "clean"]
        attacks = [a for a in ATTACKS if any(r["attack"] == a for r in own)]
        for attack in [*attacks, "all"] if len(attacks) > 1 else attacks:
            bad = [r for r in own if r["attack"] != "clean" and attack in ("all", r["attack"])]
            rows.append({"method": method, "seed": seed, "attack": attack,
                         **summary_row(bad, clean)})
    return rows


def verdict(r: dict[str, Any]) -> tuple[bool, int | None]:
    """Backdoored or not, and the class named as the likely target (the most anomalous)."""
    return bool(r["flagged"]), r["flagged"][0] if r["flagged"] else None


def stability(records: Sequence[dict]) -> list[dict[str, Any]]:
    """Per method scanned with several seeds: the share of models whose verdict (backdoored
    or clean, and the likely target) every seed gives, and the models where they differ."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in records):
        by_model: dict[str, set] = {}
        seeds = sorted({r["seed"] for r in records if r["method"] == method})
        for r in records:
            if r["method"] == method:
                by_model.setdefault(r["model"], set()).add(verdict(r))
        if len(seeds) > 1:
            unstable = [m for m, v in by_model.items() if len(v) > 1]
            rows.append({"method": method, "seeds": seeds, "models": len(by_model),
                         "same_verdict": 1 - len(unstable) / len(by_model),
                         "unstable": unstable})
    return rows


COLUMNS = [("method", "method"), ("seed", "seed"), ("attack", "attack"),
           ("models", "backdoored"), ("clean", "clean"), ("tpr", "TPR"), ("fpr", "FPR"),
           ("auroc", "AUROC"), ("tpr_at_fpr0", "TPR at FPR 0"),
           ("right_target", "right target"), ("extra_class", "other class"),
           ("found_by", "found by"),
           ("on_trigger", "on trigger"), ("min_on_trigger", "on trigger (worst)"),
           ("near_trigger", "within 1 px"), ("seconds", "s per model")]


def dashes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with "-" for figures that do not apply (None)."""
    return [{k: "-" if v is None else v for k, v in r.items()} for r in rows]


def comma_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a comma list of ``choices``."""
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        wrong = [t for t in items if t not in choices]
        if wrong or not items:
            raise argparse.ArgumentTypeError(f"{', '.join(wrong) or 'nothing'} is not among "
                                             f"{', '.join(choices)}")
        return items
    return parse


def seed_list(text: str) -> list[int]:
    """An argparse type: a comma list of distinct non-negative integers."""
    try:
        seeds = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of integers, "
                                         "e.g. 0,1,2") from None
    if min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct seeds of 0 or more")
    return seeds


def positive(text: str) -> int:
    """An argparse type: an integer of 1 or more."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="dev", choices=sorted(ZOOS), help="(default: dev)")
    parser.add_argument("--methods", type=comma_list(METHODS), default=list(METHODS),
                        help=f"comma list of {', '.join(METHODS)} (default: all; one the "
                             "installed classwise lacks is skipped)")
    parser.add_argument("--attacks", type=comma_list(ATTACKS), default=list(ATTACKS),
                        help=f"comma list of {', '.join(ATTACKS)} (default: all)")
    parser.add_argument("--models-per-attack", type=positive, metavar="N",
                        help="the zoo's first N models of each attack and N clean ones "
                             "(default: all)")
    parser.add_argument("--quick", action="store_true", help="one model per attack, one clean")
    parser.add_argument("--seeds", type=seed_list, default=[0],
                        help="comma list of scan seeds; several measure stability (default: 0)")
    parser.add_argument("--references", type=int, default=0, metavar="N",
                        help="also compare every classwise scan with N clean models of the "
                             "scanned model's architecture, trained apart from the zoo "
                             "(default: 0, none)")
    parser.add_argument("--families", type=lambda t: [n.strip() for n in t.split(",")],
                        help="classwise: the dense pattern families to search beside the "
                             "pixel patch, e.g. pixels (the patch alone) or additive "
                             "(default: the scan's own, additive,warp)")
    parser.add_argument("--train-only", action="store_true", help="train the zoo only")
    parser.add_argument("--final", action="store_true",
                        help="scan the held-out zoo: once, when every setting is final")
    parser.add_argument("--threads", type=positive, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path,
                        help="results JSON (default: bench/results/backdoor_<zoo>.json)")
    args = parser.parse_args()
    if args.zoo == "held-out" and not (args.train_only or args.final):
        parser.error("the held-out zoo is scanned once, when every setting is final: add "
                     "--final, or --train-only to train it")
    if args.references < 0 or (args.references and "classwise" not in args.methods):
        parser.error("--references N (N >= 0) compares classwise scans only; add classwise "
                     "to --methods")
    return args


def installed(methods: Sequence[str]) -> tuple[list[str], list[str]]:
    """The methods the installed classwise scans with, and a line per method it lacks."""
    lacking = [m for m in methods if m not in INSTALLED]
    return ([m for m in methods if m in INSTALLED],
            [f"{m}: skipped, the installed classwise has no scan method {m!r} (it has "
             f"{', '.join(INSTALLED)})" for m in lacking])


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, its lists written as the comma lists they were."""
    flat = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in vars(args).items()}
    return command("backdoor.py", argparse.Namespace(**flat))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    zoo = ZOOS[args.zoo]
    specs = select(zoo.specs, [*args.attacks, "clean"],
                   1 if args.quick else args.models_per_attack)
    methods, skipped = installed(args.methods)
    for line in skipped:
        print(line, flush=True)
    records: list[dict[str, Any]] = []
    try:
        folders, models = train_zoo(zoo, specs)
        kept = [s for s in specs if s.name in folders]
        references, reference_rows = train_references(
            zoo, sorted({s.arch for s in kept}), args.references)
        if not args.train_only:
            records = scan_zoo(zoo, kept, folders, methods, args.seeds, references,
                               args.families)
    except ClasswiseError as err:
        raise SystemExit(f"error: {err}") from None
    summary, stable = summarise(records), stability(records)
    out = args.out or RESULTS / f"backdoor_{zoo.name}.json"
    write_json(out, {"command": command_line(args), "zoo": zoo.name, "data": zoo.data,
                     "machine": machine(), "training": TRAINING,
                     "min_attack_success": zoo.min_success, "methods": methods,
                     "skipped": skipped, "seeds": args.seeds, "models": models,
                     "references": reference_rows, "scans": records, "summary": summary,
                     "stability": stable})
    if summary:
        print(table(dashes(summary), COLUMNS))
    for row in stable:
        print(f"{row['method']}: the same verdict under seeds {row['seeds']} for "
              f"{row['same_verdict']:.2f} of {row['models']} models; differs for "
              f"{', '.join(row['unstable']) or 'none'}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
