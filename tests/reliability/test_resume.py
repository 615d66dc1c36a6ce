"""A run cut at any moment and resumed ends with exactly the files of an uninterrupted run.

Each run is cut at many points spread over its whole length: a real SIGINT is raised from
inside the model's forward pass at its N-th call, so it lands mid-step (a batch drawn, the
masks not yet updated), in the screening, between classes and in the evaluation, as a
Ctrl-C would. A second kind of cut is a crash (an exception no handler defers): the run
then resumes from the last periodic checkpoint, which these tests save after every step.
"""

from __future__ import annotations

import itertools
import json
import signal

import numpy as np
import pytest
import torch
from helpers import digits, tiny_model
from torch import nn

from classwise import reveal, scan
from classwise.search import checkpoint as checkpoints

PRESETS = {
    "paper": dict(preset="paper", epochs=3, search_images=40),  # 30 steps a class, 3 epochs
    "default": dict(preset="default", max_steps=12, canvas_candidates=3, eval_every=4,
                    patience=2, val_images=30),
    "thorough": dict(preset="thorough", max_steps=8, canvas_candidates=2, eval_every=4,
                     val_images=30),
}
COMMON = dict(classes="0,3,7", pixels=4, seed=2, show_progress=False, device="cpu")
SCAN = dict(seed=2, show_progress=False, device="cpu", max_steps=6, eval_every=6,
            ladder=[2, 4, 8])
CUTS = 10


class Crash(Exception):
    """A failure no Ctrl-C handler defers: what is saved is what the run saved before."""


class Cutting(nn.Module):
    """The tiny model, cut at its ``at``-th forward call by SIGINT or a crash."""

    def __init__(self, at: int | None = None, how: str = "sigint") -> None:
        super().__init__()
        self.inner, self.at, self.how, self.calls = tiny_model(), at, how, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            if self.how == "crash":
                raise Crash
            signal.raise_signal(signal.SIGINT)
        return self.inner(x)


@pytest.fixture(autouse=True)
def _save_every_step(monkeypatch, ctrl_c_raises):
    monkeypatch.setattr(checkpoints, "EVERY", 0.0)


def files(result, folder) -> tuple[dict, dict]:
    """The saved run's arrays, and its JSON without the seconds and versions."""
    result.save(folder, pictures=False)
    with np.load(folder / "patterns.npz") as f:
        arrays = {k: f[k] for k in f.files}
    name = "scan.json" if (folder / "scan.json").is_file() else "results.json"
    return arrays, _stable(json.loads((folder / name).read_text()))


def _stable(obj):
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k not in ("seconds", "versions")}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def cut_and_resume(run, folder, at: int, how: str):
    """``run(model, checkpoint, resume)`` cut at forward call ``at``, then resumed (or
    started again, where the cut came before the run saved anything)."""
    ckpt = folder / "ckpt"
    with pytest.raises((KeyboardInterrupt, Crash)):
        run(Cutting(at, how), ckpt, False)
    return run(Cutting(), ckpt, (ckpt / "run.json").is_file())


def points(total: int, seed: int) -> list[int]:
    """``CUTS`` forward calls spread over the run, at seeded places within each stretch."""
    edges = np.linspace(1, total, CUTS + 1).astype(int)
    gen = np.random.default_rng(seed)
    return sorted({int(gen.integers(a, max(a + 1, b))) for a, b in itertools.pairwise(edges)})


def check_every_cut(run, tmp_path, how: str, seed: int) -> None:
    counting = Cutting()
    whole = files(run(counting, None, False), tmp_path / "whole")
    cuts = points(counting.calls, seed)
    assert len(cuts) >= CUTS - 1
    for at in cuts:
        resumed = files(cut_and_resume(run, tmp_path / f"cut{at}", at, how),
                        tmp_path / f"cut{at}" / "out")
        for key in whole[0]:
            np.testing.assert_array_equal(resumed[0][key], whole[0][key],
                                          err_msg=f"{key} after a cut at call {at}")
        assert resumed[1] == whole[1], f"figures after a cut at call {at}"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigint", "crash"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_reveal_cut_anywhere_resumes_to_the_same_files(preset, how, tmp_path):
    def run(model, ckpt, resume):
        return reveal(model, digits(), checkpoint=ckpt, resume=resume, **COMMON,
                      **PRESETS[preset])

    check_every_cut(run, tmp_path, how, seed=len(preset))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigint", "crash"])
def test_a_scan_cut_anywhere_resumes_to_the_same_files(how, tmp_path):
    def run(model, ckpt, resume):
        return scan(model, digits(), checkpoint=ckpt, resume=resume, **SCAN)

    check_every_cut(run, tmp_path, how, seed=7)


@pytest.mark.slow
def test_the_command_line_saves_on_ctrl_c_and_resumes_to_the_same_files(tmp_path):
    import time

    from helpers import classwise_child

    from classwise import train

    train("digits", epochs=2, seed=0, show_progress=False, out=tmp_path / "model")
    args = ["reveal", "--model", str(tmp_path / "model"), "--data", "digits", "--classes",
            "0,1", "--pixels", "4", "--preset", "paper", "--no-progress"]
    whole = classwise_child(*args, "--out", str(tmp_path / "whole"))
    assert whole.wait() == 0, whole.communicate()[1]
    cut = tmp_path / "cut"
    child = classwise_child(*args, "--out", str(cut))
    while not list((cut / ".checkpoint").glob("*.json")) and child.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the first class's search
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "--resume" in err.splitlines()[-1]
    assert list((cut / ".checkpoint").glob("partial_*.pt"))  # saved at Ctrl-C
    resumed = classwise_child(*args, "--out", str(cut), "--resume")
    assert resumed.wait() == 0, resumed.communicate()[1]
    assert not (cut / ".checkpoint").exists()
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    again = json.loads((cut / "results.json").read_text())
    assert _stable(again["classes"]) == _stable(whole["classes"])
    with np.load(tmp_path / "whole" / "patterns.npz") as a, np.load(cut / "patterns.npz") as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_resuming_a_run_with_other_settings_is_refused_naming_the_setting(tmp_path):
    from classwise.errors import UsageError

    ckpt = tmp_path / "ckpt"
    quick = {**COMMON, **PRESETS["default"], "max_steps": 2}
    with pytest.raises((KeyboardInterrupt, Crash)):
        reveal(Cutting(20, "crash"), digits(), checkpoint=ckpt, **quick)
    saved = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    with pytest.raises(UsageError, match="seed was 2, now 4; rerun with the same"):
        reveal(Cutting(), digits(), checkpoint=ckpt, resume=True, **{**quick, "seed": 4})
    other = Cutting()
    with torch.no_grad():
        other.inner = type(other.inner)((1, 8, 8), 10)  # same architecture, other weights
    with pytest.raises(UsageError, match="model_weights was"):
        reveal(other, digits(), checkpoint=ckpt, resume=True, **quick)
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == saved  # nothing overwritten


@pytest.mark.slow
def test_a_zoo_scan_cut_inside_a_models_ladder_resumes_to_the_same_files(tmp_path, monkeypatch):
    from classwise import scan_models, train
    from classwise.sources import ModelSource

    zoo = [tmp_path / f"m{i}" for i in range(2)]
    for i, folder in enumerate(zoo):
        train("digits", epochs=1, seed=i, show_progress=False, out=folder)
    quick = {k: v for k, v in SCAN.items() if k != "show_progress"}
    whole = scan_models(zoo, "digits", tmp_path / "whole", show_progress=False, **quick)
    opened = ModelSource.open
    calls = {"n": 0}

    def cut_second_model(self, data, device=None):
        model = opened(self, data, device)
        if self.model == str(zoo[1]):
            calls["n"] += 1
            if calls["n"] == 1:  # the first scan of the second model, cut mid-ladder
                cutting = Cutting(60)
                cutting.inner = model
                return cutting
        return model

    monkeypatch.setattr(ModelSource, "open", cut_second_model)
    with pytest.raises(KeyboardInterrupt):
        scan_models(zoo, "digits", tmp_path / "cut", show_progress=False, **quick)
    assert (tmp_path / "cut" / "m0" / "scan.json").is_file()
    assert list((tmp_path / "cut" / ".checkpoint" / "m1").glob("*.pt"))  # the ladder so far
    again = scan_models(zoo, "digits", tmp_path / "cut", resume=True, show_progress=False,
                        **quick)
    assert [r["verdict_line"] for r in again] == [r["verdict_line"] for r in whole]
    for name in ("m0", "m1"):
        assert _stable(json.loads((tmp_path / "cut" / name / "scan.json").read_text())) == \
            _stable(json.loads((tmp_path / "whole" / name / "scan.json").read_text()))
