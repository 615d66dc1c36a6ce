"""Scanning several models: one folder each, a summary, and resuming after an interruption."""

from __future__ import annotations

import json

import helpers
import pytest

from classwise.cli import main
from classwise.scan import scan, scan_models, zoo
from classwise.scan.zoo import model_names
from classwise.training import train

TARGET = helpers.POISON_TARGET
QUICK = {"max_steps": 4, "ladder": [2, 8]}  # the mechanics, not the verdicts


@pytest.fixture(scope="module")
def zoo_dirs(tmp_path_factory):
    """A train folder of the poisoned model and one of a clean model."""
    root = tmp_path_factory.mktemp("zoo")
    helpers.poisoned().save(root / "poisoned")
    train(helpers.digits(), epochs=8, seed=1, show_progress=False, out=root / "clean")
    return [root / "poisoned", root / "clean"]


def test_names_are_folder_names_or_stems_made_unique():
    assert model_names(["runs/a/model.ts", "runs/a", "b.ts", "x/b.ts", "weird name"]) == \
        ["a", "a-2", "b", "b-2", "weird_name"]


@pytest.mark.slow
def test_every_model_gets_its_scan_and_the_summary_its_verdict(zoo_dirs, tmp_path, capsys):
    assert main(["scan", "--model", *map(str, zoo_dirs), "--data", "digits", "--no-progress",
                 "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "zoo.json").read_text())
    assert [r["folder"] for r in summary["models"]] == ["poisoned", "clean"]
    assert [r["verdict"] for r in summary["models"]] == ["backdoored", "clean"]
    assert summary["models"][0]["flagged"] == [TARGET] and summary["backdoored"] == 1
    saved = json.loads((tmp_path / "poisoned" / "scan.json").read_text())
    assert saved["flagged"] == [TARGET] and len(saved["classes"]) == 10
    assert (tmp_path / "clean" / "report.html").is_file()
    assert not (tmp_path / ".checkpoint").exists()
    assert "2 models scanned, 1 backdoored: poisoned" in capsys.readouterr().out


@pytest.mark.slow
def test_an_interrupted_audit_resumes_with_the_models_left(zoo_dirs, tmp_path, monkeypatch):
    calls = []

    def interrupted(model, **kwargs):
        calls.append(model)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return scan(model, **kwargs)

    monkeypatch.setattr(zoo, "scan", interrupted)
    with pytest.raises(KeyboardInterrupt):
        scan_models(zoo_dirs, "digits", tmp_path, show_progress=False, **QUICK)
    assert (tmp_path / "poisoned" / "scan.json").is_file()
    assert not (tmp_path / "clean").exists()
    calls.clear()
    rows = scan_models(zoo_dirs, "digits", tmp_path, resume=True, show_progress=False, **QUICK)
    assert calls == [str(zoo_dirs[1])]
    assert [r["folder"] for r in rows] == ["poisoned", "clean"]
    assert json.loads((tmp_path / "zoo.json").read_text())["models"] == rows


@pytest.mark.parametrize("case", ["missing model", "unknown data", "unreadable reference",
                                  "reference of another architecture"])
def test_bad_input_is_refused_before_anything_is_written(zoo_dirs, tmp_path, case):
    out = tmp_path / "o"
    models = [str(m) for m in zoo_dirs]
    if case == "missing model":
        models.append(str(tmp_path / "nope"))
    data = "no-such-data" if case == "unknown data" else "digits"
    extra = ["--reference", str(tmp_path)] if case == "unreadable reference" else []
    if case == "reference of another architecture":  # fits the data, not the models' size
        ref = tmp_path / "ref"
        scan(zoo_dirs[1], "digits", show_progress=False).save(ref, pictures=False)
        report = json.loads((ref / "scan.json").read_text())
        report["settings"]["parameters"] += 1
        (ref / "scan.json").write_text(json.dumps(report))
        extra = ["--reference", str(ref)]
    assert main(["scan", "--model", *models, "--data", data, "--out", str(out), *extra]) == 2
    assert not out.exists()


def test_resuming_a_finished_audit_scans_nothing_again(zoo_dirs, tmp_path, monkeypatch):
    first = scan_models(zoo_dirs, "digits", tmp_path, show_progress=False, **QUICK)
    calls = []
    monkeypatch.setattr(zoo, "scan", lambda model, **kwargs: calls.append(model))
    again = scan_models(zoo_dirs, "digits", tmp_path, resume=True, show_progress=False, **QUICK)
    assert calls == [] and again == first
