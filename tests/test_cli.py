"""The classwise command end to end on digits, and the one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classwise.cli import main

PIXELS = 4
CLASSES = [0, 3]
RECORD_FIELDS = {"class", "name", "canvas_split", "canvas_index", "pixels", "predictive_power",
                 "no_pattern", "random_pixels", "components", "seconds"}
PICTURES = ["canvas.png", "mask.png", "pattern.png", "examples.png"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``train`` a model, ``reveal`` classes 0 and 3 with it, ``evaluate`` the patterns."""
    root = tmp_path_factory.mktemp("cli")
    assert main(["train", "--data", "digits", "--epochs", "3", "--out", str(root / "model"),
                 "--no-progress"]) == 0
    assert main(["reveal", "--model", str(root / "model"), "--data", "digits",
                 "--classes", "0,3", "--pixels", str(PIXELS), "--out", str(root / "run"),
                 "--no-progress"]) == 0
    assert main(["evaluate", "--patterns", str(root / "run"), "--model",
                 str(root / "model"), "--data", "digits", "--out", str(root / "eval"),
                 "--no-progress"]) == 0
    return root


def test_train_writes_a_loadable_model(runs):
    assert (runs / "model" / "model.ts").is_file()
    meta = json.loads((runs / "model" / "meta.json").read_text())
    assert meta["data"] == "digits" and meta["clean_test_accuracy"] > 0.5


def test_reveal_writes_patterns_npz(runs):
    with np.load(runs / "run" / "patterns.npz") as f:
        assert set(f.files) == {"classes", "canvases", "masks", "patterns", "ranks"}
        classes, canvases, masks, patterns = (f[k] for k in ("classes", "canvases", "masks",
                                                              "patterns"))
    assert classes.tolist() == CLASSES
    assert canvases.shape == (2, 1, 8, 8) and canvases.dtype == np.float32
    assert canvases.min() >= 0 and canvases.max() <= 1
    assert masks.shape == (2, 8, 8) and masks.dtype == np.float32
    assert patterns.shape == (2, 8, 8) and patterns.dtype == bool
    assert patterns.reshape(2, -1).sum(1).tolist() == [PIXELS, PIXELS]


def test_reveal_writes_results_json(runs):
    results = json.loads((runs / "run" / "results.json").read_text())
    s = results["settings"]
    assert (s["data"], s["preset"], s["budget_pixels"], s["seed"]) == \
        ("digits", "default", PIXELS, 0)
    assert s["model"] == str(runs / "model") and "torch" in s["versions"]
    assert [r["class"] for r in results["classes"]] == CLASSES
    for r in results["classes"]:
        assert RECORD_FIELDS <= set(r)
        assert r["canvas_split"] == "train" and r["pixels"] == PIXELS
        assert 0 <= r["predictive_power"] <= 1
    assert results["mean_predictive_power"] == pytest.approx(
        np.mean([r["predictive_power"] for r in results["classes"]]))


@pytest.mark.parametrize("run", ["run", "eval"])
def test_pictures_and_report(runs, run):
    for c in CLASSES:
        for name in PICTURES:
            assert (runs / run / f"class_{c}" / name).stat().st_size > 0
    assert (runs / run / "overview.png").stat().st_size > 0
    assert "<html" in (runs / run / "report.html").read_text().lower()


def test_the_search_length_is_set_on_the_command_line_for_any_preset(runs, tmp_path):
    for preset in ("paper", "default"):
        out = tmp_path / preset
        assert main(reveal_args(runs, out, **{"--preset": preset, "--epochs": "0.5",
                                              "--search-images": "40"})) == 0
        search = json.loads((out / "results.json").read_text())["settings"]["search"]
        assert (search["epochs"], search["search_images"]) == (0.5, 40)


def test_evaluate_reproduces_the_reveal(runs):
    found = json.loads((runs / "run" / "results.json").read_text())
    again = json.loads((runs / "eval" / "results.json").read_text())
    assert again["settings"]["data"] == "digits" and again["settings"]["seed"] == 0
    for a, b in zip(found["classes"], again["classes"], strict=True):
        assert RECORD_FIELDS - {"seconds"} <= set(b)
        for key in ("class", "canvas_index", "pixels", "predictive_power", "no_pattern",
                    "random_pixels", "components"):
            assert a[key] == b[key]
    assert again["mean_predictive_power"] == found["mean_predictive_power"]


def test_evaluate_writes_the_same_fields(runs):
    again = json.loads((runs / "eval" / "results.json").read_text())
    assert all(RECORD_FIELDS <= set(r) for r in again["classes"])
    assert "versions" in again["settings"]


def reveal_args(runs, out, **change) -> list[str]:
    args = {"--model": str(runs / "model"), "--data": "digits", "--classes": "0",
            "--pixels": "4", "--out": str(out), **change}
    return ["reveal", *[s for k, v in args.items() if v is not None for s in (k, v)],
            "--no-progress"]


def wide_npz(path):
    """A 28x28 dataset: the digits model (8x8) cannot take it."""
    gen = np.random.default_rng(0)
    x = gen.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    y = np.repeat(np.arange(10), 2)
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)
    return str(path)


BAD = {
    "unknown data": (lambda runs, tmp: {"--data": "no-such-data"}, "unknown data"),
    "unreadable model": (lambda runs, tmp: {"--model": str(tmp / "junk.ts")}, "cannot read"),
    "model rejects the shape": (lambda runs, tmp: {"--data": wide_npz(tmp / "wide.npz")},
                                "rejects images of shape (1, 28, 28)"),
    "class out of range": (lambda runs, tmp: {"--classes": "10"}, "unknown class '10'"),
    "zero budget": (lambda runs, tmp: {"--pixels": None, "--budget": "0"}, "budget"),
    "whole budget": (lambda runs, tmp: {"--pixels": None, "--budget": "1"}, "budget"),
    "negative budget": (lambda runs, tmp: {"--pixels": None, "--budget": "-0.5"}, "budget"),
    "pixels and budget": (lambda runs, tmp: {"--budget": "0.1"}, "not allowed with"),
    "negative epochs": (lambda runs, tmp: {"--epochs": "-1"}, "must be positive"),
    "negative search images": (lambda runs, tmp: {"--search-images": "-3"},
                               "search images -3 must be positive"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(runs, tmp_path, capsys, case):
    (tmp_path / "junk.ts").write_bytes(b"\x00not a model\xff" * 10)
    change, words = BAD[case]
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(reveal_args(runs, out, **change(runs, tmp_path))) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("classwise: error: ") and words in err
    assert not out.exists()


def test_shape_error_names_the_cause(runs, tmp_path, capsys):
    capsys.readouterr()
    assert main(reveal_args(runs, tmp_path / "out", **{"--data": wide_npz(tmp_path / "w.npz")}))
    assert "cannot be multiplied" in capsys.readouterr().err


def test_non_empty_out_is_refused_without_force(runs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert main(reveal_args(runs, out)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("classwise: error: ")
    assert "--force" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"


def test_evaluate_bad_patterns_folder(runs, tmp_path, capsys):
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["evaluate", "--patterns", str(tmp_path), "--model", str(runs / "model"),
                 "--data", "digits", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not a run folder" in err
    assert not out.exists()


@pytest.mark.parametrize("command", [[], ["train"], ["reveal"], ["evaluate"], ["demo"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(" ".join(["usage: classwise", *command]))
    assert "--seed" in out or not command


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: classwise" in capsys.readouterr().out


def test_scan_refuses_an_unknown_pattern_family_in_one_line(runs, tmp_path, capsys):
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["scan", "--model", str(runs / "model"), "--data", "digits", "--families",
                 "additive,blur", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "unknown pattern family 'blur'; choose from pixels, additive, warp" in err
    assert not (out / "scan.json").exists()


def test_scan_of_the_pixel_patch_alone_from_the_command_line(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["scan", "--model", str(runs / "model"), "--data", "digits", "--families",
                 "pixels", "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "scan.json").read_text())
    assert report["settings"]["families"] == [] and report["family"] == "pixels"
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(("clean", "BACKDOORED"))
