"""Training resumes to exactly the weights of an uninterrupted run, wherever Ctrl-C lands.

Each test delivers real SIGINTs from inside the training loop (while a chosen batch
loads), so the deferral to the next batch boundary is exercised, not simulated.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch
from helpers import digits

from classwise.data.base import ArraySplit, Dataset
from classwise.errors import UsageError
from classwise.training import train

pytestmark = pytest.mark.usefixtures("ctrl_c_raises")

EPOCHS, BATCH = 3, 48
PER_EPOCH = 30  # ceil(1437 / 48): the last batch of an epoch holds 45 images
STOPS = (1, 7, 15, 29, 30, 31, 44, 59, 60, 61, 75, 89, 90)
"""Batches after which Ctrl-C stops the run: first, mid-epoch, either side of both epoch
ends, last; one resumed run after the other."""
SETTINGS = {
    "natural": {},
    "backdoor": {"attack": "badnets", "target": 3, "augment": True},
    "adversarial": {"epsilon": 0.2, "pgd_steps": 2},
}


class SigintAt(ArraySplit):
    """A training split that sends this process a SIGINT while loading its ``n``-th batch."""

    def __init__(self, split: ArraySplit, n: int) -> None:
        super().__init__(split.images, split.labels, split.object_masks)
        self.n, self.loads = n, 0

    def _load(self, indices: np.ndarray) -> torch.Tensor:
        self.loads += 1
        if self.loads == self.n:
            signal.raise_signal(signal.SIGINT)
        return super()._load(indices)


def sigint_at(n: int) -> Dataset:
    """Digits whose training split sends SIGINT while loading the ``n``-th batch."""
    d = digits()
    return Dataset(d.name, SigintAt(d.train, n), d.test, list(d.class_names))


def run(setting: str, **kwargs):
    return train(arch="small-cnn", setting=setting, epochs=EPOCHS, batch_size=BATCH, seed=0,
                 device="cpu", show_progress=False, **SETTINGS[setting], **kwargs)


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_resuming_after_ctrl_c_anywhere_gives_the_uninterrupted_weights(setting, tmp_path):
    reference = run(setting, data=digits()).model.state_dict()
    out, done = tmp_path / "run", 0
    for stop in STOPS:
        with pytest.raises(KeyboardInterrupt):
            run(setting, data=sigint_at(stop - done), out=out, resume=done > 0)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        state = torch.load(out / ".checkpoint" / "state.pt", weights_only=True)
        assert state["epoch"] * PER_EPOCH + state["start"] // BATCH == stop, \
            "the state is saved after the batch during which Ctrl-C came"
        done = stop
    resumed = run(setting, data=digits(), out=out, resume=True).model.state_dict()
    assert list(resumed) == list(reference)
    for name, tensor in reference.items():
        assert torch.equal(resumed[name], tensor), name
    assert not (out / ".checkpoint").exists()
    assert torch.equal(torch.load(out / "model.pt", weights_only=True)["classifier.3.weight"],
                       reference["classifier.3.weight"])


def interrupted(tmp_path, setting: str = "natural", stop: int = 5, **kwargs):
    """A training in ``tmp_path / 'run'`` stopped by Ctrl-C after batch ``stop``."""
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(setting, data=sigint_at(stop), out=out, **kwargs)
    return out


def test_reuse_continues_an_interrupted_training_of_the_same_request(tmp_path):
    out = interrupted(tmp_path, reuse=True)
    resumed = run("natural", data=digits(), out=out, reuse=True).model.state_dict()
    for name, tensor in run("natural", data=digits()).model.state_dict().items():
        assert torch.equal(resumed[name], tensor), name


def files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def renamed(name: str) -> Dataset:
    d = digits()
    return Dataset(name, d.train, d.test, list(d.class_names))


@pytest.mark.parametrize("setting, change, differs", [
    ("natural", {"epochs": EPOCHS + 1}, f"epochs ({EPOCHS} there, {EPOCHS + 1} here)"),
    ("natural", {"seed": 1, "batch_size": 64}, "batch_size (48 there, 64 here); seed (0 there, "
                                               "1 here)"),
    ("natural", {"augment": True}, "augment (False there, True here)"),
    ("natural", {"data": renamed("digits2")}, "data (digits there, digits2 here)"),
    ("natural", {"setting": "adversarial"}, "setting (natural there, adversarial here)"),
    ("backdoor", {"target": 4}, "target (3 there, 4 here)"),
    ("adversarial", {"warmup_epochs": 0.5}, "warmup_epochs (1.0 there, 0.5 here)"),
])
def test_resuming_with_other_settings_is_refused_and_changes_nothing(tmp_path, setting, change,
                                                                     differs):
    out = interrupted(tmp_path, setting)
    before = files(out)
    kwargs = {"data": digits(), "arch": "small-cnn", "epochs": EPOCHS, "batch_size": BATCH,
              "seed": 0, "device": "cpu", "show_progress": False, "setting": setting,
              **SETTINGS[setting], **change}
    with pytest.raises(UsageError) as err:
        train(out=out, resume=True, **kwargs)
    assert str(err.value) == (f"{out} holds an interrupted training with other settings: "
                              f"{differs}; rerun with the same arguments, or --force to start "
                              "afresh")
    assert files(out) == before


def test_resuming_nothing_is_refused(tmp_path):
    with pytest.raises(UsageError, match=f"^nothing to resume in {tmp_path}; drop --resume$"):
        run("natural", data=digits(), out=tmp_path, resume=True)
    assert list(tmp_path.iterdir()) == []


def test_a_backdoor_checkpoint_that_poisoned_other_images_is_refused(tmp_path):
    out = interrupted(tmp_path, "backdoor")
    path = out / ".checkpoint" / "state.pt"
    state = torch.load(path, weights_only=True)
    state["setting"]["poisoned"] = state["setting"]["poisoned"] + 1
    torch.save(state, path)
    with pytest.raises(UsageError, match="poisoned other images than this run would"):
        run("backdoor", data=digits(), out=out, resume=True)
    assert not (out / "model.pt").exists()
