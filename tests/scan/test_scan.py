"""scan flags the target of a tiny poisoned model and no class of a tiny clean one."""

from __future__ import annotations

import json
import time

import helpers
import numpy as np
import pytest

from classwise.errors import UsageError
from classwise.scan import scan
from classwise.scan.verdict import reached_index
from classwise.training import train

TARGET = helpers.POISON_TARGET


@pytest.fixture(scope="module")
def poisoned():
    return helpers.poisoned()


@pytest.fixture(scope="module")
def clean(digits):
    return train(digits, arch="small-cnn", epochs=8, show_progress=False)


def test_the_poisoned_model_really_is_backdoored(poisoned):
    assert poisoned.meta["attack_success_rate"] >= 0.8
    assert poisoned.meta["clean_test_accuracy"] >= 0.8


@pytest.mark.slow
def test_scan_flags_the_target_and_saves_a_run(poisoned, digits, tmp_path):
    start = time.perf_counter()
    result = scan(poisoned.model, digits, show_progress=False)
    wall = time.perf_counter() - start
    assert result.settings["ladder"] == [4, 8]  # 4, 8, 16, ... up to 10% of 64 px, at least 8
    assert result.verdict == "backdoored" and result.flagged == [TARGET]
    assert result.values[TARGET] == result.values.min()
    assert result.verdict_line().startswith(f"BACKDOORED: class {TARGET}")
    result.save(tmp_path)
    report = json.loads((tmp_path / "scan.json").read_text())
    assert report["verdict"] == "backdoored" and report["flagged"] == [TARGET]
    row = report["classes"][TARGET]
    assert row["anomaly_index"] > report["threshold"] == 2.0
    assert row["pixels"] == int(result.patterns[TARGET].sum())
    # the target reached the rate: its figure is the kept pattern's own size, which fools
    # the rate of held-out search images, cut from the last budget's mask
    assert row["pixels_to_reach"] == row["pixels"] <= max(map(int, row["search_rates"]))
    assert row["search_rate"] >= 0.8 and row["reached"] is True
    assert row["predictive_power"] >= 0.5
    # the scan's own wall time: most of the call's, search included (not 0 s)
    assert 0.5 * wall <= report["settings"]["seconds"] <= wall + 0.01
    with np.load(tmp_path / "patterns.npz") as f:
        assert f["patterns"].shape == (10, 8, 8)
    assert (tmp_path / "report.html").is_file() and (tmp_path / "anomaly.png").is_file()


def test_only_a_class_that_reached_the_rate_can_be_flagged():
    # log sizes: the median of 4, 5 (extrapolated), 39 to 41 and 784 (extrapolated) is
    # log 40; 4 and 5 lie far below it, but only 4 was seen to reach the rate
    values = np.array([4.0, 5.0, 40.0, 40.0, 41.0, 39.0, 784.0])
    reached = np.array([True, False, True, True, True, True, False])
    plain = np.log(values)
    index = reached_index(plain, reached)
    assert index[0] > 2 and index[1] == 0.0
    # the MAD of the logs (log 41/40) is below the floor log(2) / 2, so the floor scales
    expected = (np.median(plain) - plain) / (np.log(2) / 2)
    assert index[[0, 2, 3, 4, 5, 6]] == pytest.approx(expected[[0, 2, 3, 4, 5, 6]])
    assert index[6] < 0  # an extrapolated large size keeps its negative index


def test_a_flagged_class_is_at_most_half_the_median_size():
    # sizes within 3% of each other: MAD log(43/42), so 30 against a median of 42 would lie
    # 9.6 robust deviations below; the floor keeps a 29% smaller pattern unflagged, and
    # 20 (less than half of 42) is flagged
    values = np.array([41.0, 42.0, 43.0, 42.0, 41.0, 43.0, 42.0, 30.0])
    reached = np.ones(len(values), dtype=bool)
    index = reached_index(np.log(values), reached)
    assert index[-1] == pytest.approx(np.log(42 / 30) / (np.log(2) / 2)) and index[-1] < 1
    values[-1] = 20.0
    assert reached_index(np.log(values), reached)[-1] > 2


def test_extrapolated_sizes_tying_at_the_cap_cannot_flag_themselves():
    # more than half the classes capped at the whole image: MAD 0, so the floor scales;
    # the reached class lies log(1024 / 30) / (log(2) / 2) below, an extrapolated one is
    # still not flagged however far below it lies
    values = np.array([1024.0, 1024.0, 1024.0, 1024.0, 66.7, 30.0])
    reached = np.array([False, False, False, False, False, True])
    index = reached_index(np.log(values), reached)
    assert index.tolist()[:5] == [0, 0, 0, 0, 0]
    assert index[5] == pytest.approx(np.log(1024 / 30) / (np.log(2) / 2))


def test_scan_flags_no_class_of_a_clean_model(clean, digits):
    result = scan(clean.model, digits, show_progress=False)
    assert result.verdict == "clean" and result.flagged == []
    assert result.verdict_line().startswith("clean: no class stands out")


def test_unknown_method_is_a_usage_error(clean, digits):
    with pytest.raises(UsageError, match="neural-cleanse"):
        scan(clean.model, digits, method="strip")


@pytest.mark.parametrize("ladder", [[0, 4], [4, 64], []])
def test_a_ladder_outside_the_image_is_a_usage_error(clean, digits, ladder):
    with pytest.raises(UsageError, match="ladder"):
        scan(clean.model, digits, ladder=ladder)


@pytest.fixture(scope="module")
def reference(clean, digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    scan(clean.model, digits, show_progress=False).save(out, pictures=False)
    return out


def test_against_a_clean_reference_the_target_is_flagged(poisoned, digits, reference):
    result = scan(poisoned.model, digits, show_progress=False, reference=[reference])
    assert result.flagged == [TARGET]
    assert "in the clean reference). Do not deploy" in result.verdict_line()
    report = result.to_json()
    assert report["index_of"] == "log(pixels_to_reach) - median reference log(pixels_to_reach)"
    assert report["settings"]["reference"] == [str(reference)]
    assert report["settings"]["parameters"] == sum(p.numel() for p in poisoned.model.parameters())
    ref_sizes = json.loads((reference / "scan.json").read_text())["classes"]
    row = report["classes"][TARGET]
    assert row["reference_pixels_to_reach"] == pytest.approx(ref_sizes[TARGET]["pixels_to_reach"])


def _edited(reference, tmp_path, **changes):
    report = json.loads((reference / "scan.json").read_text())
    report["settings"].update(changes.pop("settings", {}))
    report.update(changes)
    (tmp_path / "scan.json").write_text(json.dumps(report))
    return tmp_path


@pytest.mark.parametrize("case, message", [
    ("missing", "cannot read reference"),
    ("method", "not classwise"),
    ("ladder", "over budgets"),
    ("architecture", "same architecture"),
    ("nc-scan", "--method classwise only"),
])
def test_a_reference_that_does_not_fit_is_a_usage_error(poisoned, digits, reference, tmp_path,
                                                        case, message):
    ref, method = reference, "classwise"
    if case == "missing":
        ref = tmp_path / "nowhere"
    elif case == "method":
        ref = _edited(reference, tmp_path, method="neural-cleanse")
    elif case == "ladder":
        ref = _edited(reference, tmp_path, settings={"ladder": [4, 8, 16]})
    elif case == "architecture":  # a model of another size than the suspect's
        ref = _edited(reference, tmp_path, settings={"parameters": 12345})
    else:
        method = "neural-cleanse"
    with pytest.raises(UsageError, match=message):
        scan(poisoned.model, digits, method=method, reference=[ref], show_progress=False)


@pytest.mark.slow
def test_mm_bd_is_a_scan_method_with_its_own_p_value(poisoned, digits, tmp_path):
    result = scan(poisoned.model, digits, method="mm-bd", show_progress=False)
    assert result.flagged == [TARGET] and result.p_value < 0.05
    assert result.values[TARGET] == result.values.max()  # the largest maximum margin
    result.save(tmp_path)
    report = json.loads((tmp_path / "scan.json").read_text())
    assert report["method"] == "mm-bd" and report["statistic"] == "max_margin"
    assert report["p_value"] == result.p_value and "Gamma" in report["rule"]
    assert report["verdict_line"].startswith(f"BACKDOORED: class {TARGET}")
