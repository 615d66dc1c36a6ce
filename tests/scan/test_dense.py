"""The scan's dense families find triggers spread over the whole image: a Blended target owns
an anomalously small additive pattern, a WaNet target an anomalously small warp."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classwise.errors import UsageError
from classwise.scan import scan
from classwise.scan.dense import MIN_FACTOR
from classwise.scan.verdict import Verdict, reached_index, size_to_reach, strongest
from classwise.training import train

TARGET = 5


@pytest.fixture(scope="module")
def blended(digits):
    return train(digits, arch="small-cnn", setting="backdoor", attack="blended", target=TARGET,
                 epochs=8, show_progress=False)


@pytest.fixture(scope="module")
def wanet(digits):
    return train(digits, arch="small-cnn", setting="backdoor", attack="wanet", target=TARGET,
                 k=4, strength=1.0, epochs=10, show_progress=False)


def sizes(result, family: str) -> np.ndarray:
    return np.array([row["families"][family]["size"] for row in result.extra])


@pytest.mark.parametrize(("model", "family"), [("blended", "additive"), ("wanet", "warp")])
def test_the_target_owns_the_anomalously_small_dense_pattern(model, family, request, digits):
    trained = request.getfixturevalue(model)
    assert trained.meta["attack_success_rate"] >= 0.7  # really backdoored
    result = scan(trained.model, digits, show_progress=False, families=[family])
    size = sizes(result, family)
    reached = np.array([row["families"][family]["reached"] for row in result.extra])
    assert int(np.argmin(size)) == TARGET and reached[TARGET]
    assert size[TARGET] * MIN_FACTOR <= np.median(size)
    index = reached_index(np.log(size), reached, MIN_FACTOR)
    assert index[TARGET] > 2
    assert result.extra[TARGET]["families"][family]["anomaly_index"] == index[TARGET]
    # each reached size is a pattern that fools the rate of held-out search images
    assert all(row["families"][family]["search_rate"] >= 0.8 for row, r in
               zip(result.extra, reached, strict=True) if r)
    assert result.flagged == [TARGET]
    assert result.anomaly_index[TARGET] >= index[TARGET]
    assert result.settings["families"] == [family]


def test_a_flag_by_a_dense_family_says_which_and_how_small(wanet, digits, tmp_path):
    result = scan(wanet.model, digits, show_progress=False, families=["warp"])
    result.family = "warp"  # as when the warp's verdict decides
    line = result.verdict_line()
    assert f"class {TARGET}" in line and "its warp pattern needs" in line
    assert "the largest displacement, in pixels" in line
    result.save(tmp_path)
    report = json.loads((tmp_path / "scan.json").read_text())
    assert report["family"] == "warp" and report["classes"][TARGET]["found_by"] in (
        "pixels", "warp")
    with np.load(tmp_path / "dense.npz") as f:
        assert f["classes"].tolist() == list(range(10)) and f["warp"].shape == (10, 2, 8, 8)
        moved = np.abs(f["warp"]).max(axis=(1, 2, 3))
    sizes_found = sizes(result, "warp")
    reached = [row["families"]["warp"]["reached"] for row in result.extra]
    # a reached class's kept warp is its pattern scaled to the size found: within it
    assert np.all(moved[reached] <= sizes_found[reached] * (1 + 1e-5))
    assert np.all(moved[reached] >= 0.5 * sizes_found[reached])
    assert (tmp_path / "dense.png").is_file()
    page = (tmp_path / "report.html").read_text()
    assert "dense.png" in page and "decided by the warp family" in page
    assert "warp size" in page and "found by" in page


def test_the_pixel_patch_alone_searches_no_family(blended, digits):
    result = scan(blended.model, digits, show_progress=False, families=["pixels"])
    assert result.settings["families"] == [] and result.family == "pixels"
    assert "families" not in result.extra[0]


def test_an_unknown_family_is_refused_in_one_line(blended, digits):
    with pytest.raises(UsageError, match="unknown pattern family 'blur'; choose from pixels, "
                                         "additive, warp"):
        scan(blended.model, digits, show_progress=False, families=["blur"])


def test_families_are_refused_for_the_baselines(blended, digits):
    with pytest.raises(UsageError, match="--families works with --method classwise only"):
        scan(blended.model, digits, method="mm-bd", show_progress=False, families=["warp"])


def test_the_deciding_family_is_the_flagging_one_with_the_smallest_p_value():
    index = {"pixels": np.array([0.5, 3.0]), "additive": np.array([4.0, 0.1]),
             "warp": np.array([0.2, 0.3])}
    verdicts = {"pixels": Verdict([1], "r", 0.01, 1), "additive": Verdict([0], "r", 0.001, 0),
                "warp": Verdict([], "r", 0.5, 1)}
    assert strongest(verdicts, index) == ("additive", verdicts["additive"])
    quiet = {f: Verdict([], "r", 0.5, v.candidate) for f, v in verdicts.items()}
    assert strongest(quiet, index)[0] == "additive"  # none flags: the largest index
    no_p = {"pixels": Verdict([1], "r", None, 1), "additive": Verdict([0], "r", None, 0)}
    assert strongest(no_p, index)[0] == "additive"


def test_a_size_never_reached_is_extrapolated_in_log_size_and_capped():
    assert size_to_reach([1.0, 2.0], [0.2, 0.5], 0.8, 10.0) == pytest.approx(4.0)
    assert size_to_reach([1.0, 2.0], [0.5, 0.5], 0.8, 10.0) == 10.0
    assert size_to_reach([2.0], [0.5], 0.8, 10.0) == 10.0
    assert size_to_reach([1.0, 2.0], [0.0, 0.01], 0.8, 10.0) == 10.0


def test_three_classes_are_too_few_for_a_p_value_in_any_family(digits):
    from classwise.data.base import ArraySplit, Dataset

    def three(split):
        keep = np.flatnonzero(split.labels < 3)
        return ArraySplit(split.load(keep).numpy(), split.labels[keep])

    small = Dataset("digits-0-2", three(digits.train), three(digits.test))
    model = train(small, arch="small-cnn", epochs=3, show_progress=False).model
    result = scan(model, small, show_progress=False)
    assert result.settings["families"] == ["additive", "warp"]
    assert result.p_value is None and "too few to fit a null" in result.rule
    assert "p =" not in result.verdict_line()
    assert all(set(row["families"]) == {"additive", "warp"} for row in result.extra)
