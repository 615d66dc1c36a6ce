"""compare: runs of one dataset side by side, and the input it refuses."""

import json

import numpy as np
import pytest
from PIL import Image

from classwise.compare import compare
from classwise.errors import UsageError
from classwise.models import create_model
from classwise.results import RevealResult
from classwise.reveal import reveal
from classwise.seeding import seed_everything


def _reveal(classes: str, seed: int) -> RevealResult:
    seed_everything(seed)
    net = create_model("small-cnn", (1, 8, 8), 10)
    return reveal(net, "digits", classes=classes, pixels=3, seed=seed, show_progress=False,
                  max_steps=2, canvas_candidates=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real reveal folders on digits, with overlapping classes (0,1 and 1,2)."""
    root = tmp_path_factory.mktemp("runs")
    return [_reveal("0,1", 0).save(root / "natural", pictures=False),
            _reveal("1,2", 1).save(root / "adversarial", pictures=False)]


def _fake(data: str = "digits", shape=(1, 8, 8), classes=(0, 1)) -> RevealResult:
    """A run with fixed figures, for checks that need no search."""
    n, (c, h, w) = len(classes), shape
    patterns = np.zeros((n, h, w), bool)
    patterns[:, :2, :2] = True
    records = [{"class": k, "name": str(k), "predictive_power": 0.5, "components": 1,
                "largest_component_share": 1.0} for k in classes]
    return RevealResult(np.asarray(classes), np.full((n, c, h, w), 0.5, np.float32),
                        np.zeros((n, h, w), np.float32), patterns, records,
                        {"data": data, "model": "fake"})


def test_compare_end_to_end(runs, tmp_path):
    out = tmp_path / "cmp"
    result = compare(runs, out=out)
    assert {p.name for p in out.iterdir()} == {"compare.png", "flips.png", "compare.json",
                                               "report.html"}
    assert "flips.png" in (out / "report.html").read_text()
    saved = json.loads((out / "compare.json").read_text())
    assert saved["data"] == "digits" and saved["image_shape"] == [1, 8, 8]
    assert [r["label"] for r in saved["runs"]] == ["natural", "adversarial"]
    assert [r["class"] for r in saved["classes"]] == [0, 1, 2]
    by_class = {r["class"]: r for r in saved["classes"]}
    first, second = (RevealResult.load(r) for r in runs)
    assert by_class[1]["predictive_power"] == [first.records[1]["predictive_power"],
                                               second.records[0]["predictive_power"]]
    assert by_class[0]["components"][1] is None and by_class[2]["pixels"] == [None, 3]
    assert saved["means"]["predictive_power"] == pytest.approx(
        [first.mean_predictive_power, second.mean_predictive_power])
    assert saved["means"]["largest_component_share"][0] == pytest.approx(
        np.mean([r["largest_component_share"] for r in first.records]))
    assert result.to_json() == saved
    page = (out / "report.html").read_text()
    assert "natural" in page and "adversarial" in page and 'src="compare.png"' in page
    with Image.open(out / "compare.png") as picture:
        assert np.asarray(picture.convert("L")).std() > 10  # drawn, not blank


def test_compare_labels_and_results_in_memory(tmp_path):
    runs = [_fake(), _fake(classes=(1,))]
    result = compare(runs, labels=["clean", "backdoored"])
    assert result.labels == ["clean", "backdoored"] and result.sources == ["", ""]
    assert result.means()["components"] == [1.0, 1.0]
    assert len(result.figure().axes) == 2 * 2 * 2  # classes x runs x (canvas, pattern)
    assert compare([_fake(), _fake()]).labels == ["fake (1)", "fake (2)"]


@pytest.mark.parametrize("runs, message", [
    ([_fake()], "at least two runs"),
    ([_fake(), _fake(data="shapes")], "same data"),
    ([_fake(), _fake(shape=(1, 16, 16))], "same image size"),
    ([_fake(), _fake(classes=())], "holds no classes"),
])
def test_compare_refuses_bad_runs(runs, message, tmp_path):
    out = tmp_path / "cmp"
    with pytest.raises(UsageError, match=message) as err:
        compare(runs, out=out)
    assert "\n" not in str(err.value)
    assert not out.exists()


def test_compare_refuses_missing_folder_and_wrong_labels(runs, tmp_path):
    out = tmp_path / "cmp"
    with pytest.raises(UsageError, match="not a reveal run folder"):
        compare([runs[0], tmp_path / "nowhere"], out=out)
    with pytest.raises(UsageError, match="one label per run"):
        compare(runs, out=out, labels=["only one"])
    assert not out.exists()
