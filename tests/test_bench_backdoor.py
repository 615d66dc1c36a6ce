"""The backdoor benchmark's summary maths, on hand-made scan records."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # the bench imports its ``common`` module by name
    try:
        spec = importlib.util.spec_from_file_location("bench_backdoor", BENCH / "backdoor.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_backdoor", None)
        sys.path.remove(str(BENCH))


def rec(model, attack, target, flagged, index, method="m", seed=0, seconds=1.0, **more):
    return {"model": model, "attack": attack, "target": target, "flagged": flagged,
            "max_index": index, "method": method, "seed": seed, "seconds": seconds, **more}


BAD = [rec("b0", "badnets", 1, [1], 5.0, on_trigger=0.5, near_trigger=1.0),
       rec("b1", "badnets", 2, [2, 7], 3.0, on_trigger=0.25, near_trigger=0.5),
       rec("b2", "badnets", 3, [], 1.5),
       rec("s0", "sig", 4, [6], 2.5)]
CLEAN = [rec("c0", "clean", None, [], 1.0), rec("c1", "clean", None, [], 1.5),
         rec("c2", "clean", None, [0], 2.2)]


def test_rates_at_the_methods_own_threshold(bench):
    assert bench.flagged_share(BAD) == 0.75
    assert bench.flagged_share(CLEAN) == pytest.approx(1 / 3)
    assert bench.flagged_share([]) is None


def test_auroc_counts_pairs_and_ties_half(bench):
    # b0 and b1 beat all three clean, s0 too, b2 beats c0, ties c1 and loses to c2
    assert bench.auroc(BAD, CLEAN) == pytest.approx((3 + 3 + 1.5 + 3) / 12)
    assert bench.auroc(BAD, []) is None
    inf = [rec("b", "badnets", 0, [0], float("inf"))]
    assert bench.auroc(inf, [rec("c", "clean", None, [], float("inf"))]) == 0.5


def test_tpr_at_zero_fpr_needs_an_index_above_every_clean_models(bench):
    assert bench.tpr_at_zero_fpr(BAD, CLEAN) == 0.75  # all but b2 exceed 2.2
    tie = [rec("b", "badnets", 0, [0], 2.2)]
    assert bench.tpr_at_zero_fpr(tie, CLEAN) == 0.0
    assert bench.tpr_at_zero_fpr(BAD, []) is None


def test_target_and_extra_class_shares_among_flagged_models(bench):
    assert bench.right_target(BAD) == pytest.approx(2 / 3)  # b0, b1 of b0, b1, s0
    assert bench.extra_class(BAD) == pytest.approx(2 / 3)  # b1 (7 beside 2), s0 (6)
    assert bench.right_target(BAD[2:3]) is None


def test_trigger_figures_over_the_models_that_have_them(bench):
    figures = bench.trigger_figures(BAD)
    assert figures == {"on_trigger": 0.375, "min_on_trigger": 0.25, "near_trigger": 0.75}
    assert bench.trigger_figures(CLEAN)["on_trigger"] is None


def test_localisation_of_a_pattern_on_a_mask(bench):
    mask = np.zeros((6, 6), bool)
    mask[0:2, 0:2] = True
    pattern = np.zeros((6, 6), bool)
    pattern[0, 0] = pattern[2, 0] = pattern[5, 5] = True  # on, next to, far from the mask
    figures = bench.localisation(pattern, mask)
    assert figures["on_trigger"] == pytest.approx(1 / 3)
    assert figures["near_trigger"] == pytest.approx(2 / 3)
    assert bench.localisation(None, mask) == {}


def test_summary_rows_per_method_seed_and_attack(bench):
    rows = bench.summarise([*BAD, *CLEAN])
    assert [r["attack"] for r in rows] == ["badnets", "sig", "all"]
    badnets = rows[0]
    assert (badnets["models"], badnets["clean"]) == (3, 3)
    assert badnets["tpr"] == pytest.approx(2 / 3)
    assert badnets["tpr_at_fpr0"] == pytest.approx(2 / 3)
    assert badnets["seconds"] == 1.0
    assert rows[2]["models"] == 4


def test_seconds_per_model_only_when_every_model_was_timed(bench):
    untimed = [rec("b0", "badnets", 1, [1], 5.0, seconds=None), *BAD[1:]]
    rows = bench.summarise([*untimed, *CLEAN])
    assert rows[0]["seconds"] is None and rows[1]["seconds"] == 1.0


def test_stability_is_the_share_of_models_with_one_verdict_under_all_seeds(bench):
    seed1 = [rec("b0", "badnets", 1, [1, 3], 5.0, seed=1),  # same likely target: stable
             rec("b1", "badnets", 2, [7], 3.0, seed=1),  # another likely target
             rec("b2", "badnets", 3, [], 1.0, seed=1),
             rec("s0", "sig", 4, [6], 2.5, seed=1),
             rec("c0", "clean", None, [], 1.0, seed=1),
             rec("c1", "clean", None, [5], 2.5, seed=1),  # flagged under one seed only
             rec("c2", "clean", None, [0], 2.2, seed=1)]
    (row,) = bench.stability([*BAD, *CLEAN, *seed1])
    assert row["seeds"] == [0, 1]
    assert row["same_verdict"] == pytest.approx(5 / 7)
    assert row["unstable"] == ["b1", "c1"]
    assert bench.stability([*BAD, *CLEAN]) == []


def test_select_keeps_the_first_models_of_each_kind(bench):
    chosen = bench.select(bench.ZOOS["dev"].specs, ["badnets", "clean"], 2)
    assert [s.name for s in chosen] == ["badnets-0", "clean-0", "badnets-1", "clean-1"]


def test_dev_zoo_is_the_zoo_of_the_earlier_tables(bench):
    specs = {s.name: s for s in bench.ZOOS["dev"].specs}
    assert len(specs) == 30
    assert specs["trojan-2"].train_args() == {
        "arch": "small-cnn", "epochs": 3, "seed": 102, "batch_size": 64, "lr": 2e-3,
        "setting": "backdoor", "attack": "trojan", "target": 8, "position": "17,4"}
    assert specs["sig-0"].train_args()["epochs"] == 10
    assert specs["clean-3"].train_args()["setting"] == "natural"


def test_shapes_zoo_is_the_dev_zoo_on_narrow_resnets_with_places_inside_32_pixels(bench):
    zoo = bench.ZOOS["shapes"]
    dev = bench.ZOOS["dev"].specs
    assert zoo.data == "shapes" and zoo.folder != bench.ZOOS["dev"].folder
    assert [(s.name, s.target, s.seed) for s in zoo.specs] == \
        [(s.name, s.target, s.seed) for s in dev]
    args = {s.name: s.train_args() for s in zoo.specs}
    assert {a["arch"] for a in args.values()} == {"resnet18-narrow"}
    assert {a["epochs"] for a in args.values()} == {bench.SHAPES_EPOCHS}
    assert args["badnets-2"]["position"] == "20,5" and args["trojan-3"]["position"] == "6,20"


def test_held_out_zoo_shares_no_seed_with_the_dev_zoo(bench):
    dev = {s.seed for s in bench.ZOOS["dev"].specs}
    held_out = bench.ZOOS["held-out"].specs
    assert not dev & {s.seed for s in held_out}
    assert len({s.name for s in held_out}) == len(held_out)


def test_texture_is_smooth_seeded_and_full_range(bench, tmp_path):
    bench.write_texture(tmp_path / "a.png", 7)
    bench.write_texture(tmp_path / "b.png", 7)
    a = np.asarray(bench.Image.open(tmp_path / "a.png"), np.float64)
    assert a.shape == (28, 28) and (a.min(), a.max()) == (0, 255)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert np.abs(np.diff(a, axis=1)).mean() < 30  # neighbours are alike


def test_a_scan_is_reused_only_with_the_families_and_their_settings_of_today(bench, tmp_path):
    from classwise.scan.dense import dense_settings

    model, scan = tmp_path / "model", tmp_path / "scan"
    model.mkdir()
    scan.mkdir()
    (model / "model.ts").write_text("")

    def written(**settings):
        (scan / "scan.json").write_text(json.dumps({"settings": settings}))
        return scan

    now = dense_settings()
    assert bench.scanned(written(families=["warp"], dense_search=now), model, ["warp"])
    assert bench.scanned(written(families=[]), model, [])
    assert not bench.scanned(written(families=[]), model, ["warp"])
    assert not bench.scanned(written(families=["warp"], dense_search={**now, "floor": 0.0}),
                             model, ["warp"])
    assert bench.scanned(written(families=["warp"]), model)  # a baseline's scan: any settings
