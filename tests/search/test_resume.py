"""An interrupted search resumes to exactly the results of an uninterrupted one."""

import numpy as np
import pytest

from classwise import reveal, train
from classwise.search import engine

SETTINGS = dict(classes="0,1,2", pixels=4, seed=3, show_progress=False, max_steps=12,
                canvas_candidates=2, classes_per_pass=2, device="cpu")


@pytest.fixture(scope="module")
def model():
    return train("digits", epochs=2, seed=0, show_progress=False).model


def interrupt_at(monkeypatch, step):
    """Make the search raise KeyboardInterrupt when any chunk reaches ``step``."""
    real = engine.MaskSearch.advance

    def advance(self):
        if self.step == step:
            monkeypatch.setattr(engine.MaskSearch, "advance", real)
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(engine.MaskSearch, "advance", advance)


@pytest.mark.parametrize("step", [0, 5, 11])
def test_resume_matches_uninterrupted_run(model, tmp_path, monkeypatch, step):
    whole = reveal(model, "digits", **SETTINGS)
    ckpt = tmp_path / "ckpt"
    interrupt_at(monkeypatch, step)
    with pytest.raises(KeyboardInterrupt):
        reveal(model, "digits", checkpoint=ckpt, **SETTINGS)
    assert (ckpt / "run.json").is_file()
    resumed = reveal(model, "digits", checkpoint=ckpt, resume=True, **SETTINGS)
    np.testing.assert_array_equal(resumed.masks, whole.masks)
    np.testing.assert_array_equal(resumed.patterns, whole.patterns)
    assert [r["predictive_power"] for r in resumed.records] == \
        [r["predictive_power"] for r in whole.records]


def test_finished_chunks_are_not_searched_again(model, tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt"
    reveal(model, "digits", checkpoint=ckpt, **SETTINGS)
    calls = []
    real = engine.MaskSearch.advance
    monkeypatch.setattr(engine.MaskSearch, "advance", lambda self: calls.append(1) or real(self))
    reveal(model, "digits", checkpoint=ckpt, resume=True, **SETTINGS)
    assert calls == []


def test_resuming_a_different_run_is_refused(model, tmp_path):
    from classwise.errors import UsageError

    ckpt = tmp_path / "ckpt"
    reveal(model, "digits", checkpoint=ckpt, **SETTINGS)
    with pytest.raises(UsageError, match="different run"):
        reveal(model, "digits", checkpoint=ckpt, resume=True, **{**SETTINGS, "seed": 4})


def test_thorough_resumes_inside_its_top_down_search(model, tmp_path, monkeypatch):
    # The default search stops at 12 steps, so step 100 falls in the top-down search.
    settings = {**SETTINGS, "preset": "thorough"}
    whole = reveal(model, "digits", **settings)
    ckpt = tmp_path / "ckpt"
    interrupt_at(monkeypatch, 100)
    with pytest.raises(KeyboardInterrupt):
        reveal(model, "digits", checkpoint=ckpt, **settings)
    assert list(ckpt.glob("partial_*topdown*"))
    resumed = reveal(model, "digits", checkpoint=ckpt, resume=True, **settings)
    np.testing.assert_array_equal(resumed.patterns, whole.patterns)
    np.testing.assert_array_equal(resumed.canvases, whole.canvases)
