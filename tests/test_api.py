"""The public API: evaluate (transfer), the result's save/load, and the docstring examples."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
from helpers import digits, revealed, tiny_model

import classwise
from classwise.data.base import ArraySplit, Dataset
from classwise.errors import UsageError
from classwise.evaluation.transfer import evaluate
from classwise.models import create_model
from classwise.results import RevealResult

FIGURES = ("predictive_power", "no_pattern", "random_pixels")


def figures(result: RevealResult) -> list[tuple[float, ...]]:
    return [tuple(r[f] for f in FIGURES) for r in result.records]


def test_public_names():
    for name in classwise.__all__:
        assert getattr(classwise, name) is not None
    assert classwise.reveal is importlib.import_module("classwise.reveal.run").reveal
    assert classwise.find_patterns is importlib.import_module("classwise.search.find").find_patterns
    assert classwise.evaluate is evaluate


def test_evaluate_on_the_same_model_reproduces_the_reveal():
    again = evaluate(revealed(), tiny_model(), digits())
    assert figures(again) == figures(revealed())
    np.testing.assert_array_equal(again.patterns, revealed().patterns)
    assert [r["canvas_index"] for r in again.records] == \
        [r["canvas_index"] for r in revealed().records]


def test_evaluate_reads_a_saved_run(tmp_path):
    revealed().save(tmp_path / "run", pictures=False)
    loaded = RevealResult.load(tmp_path / "run")
    for key in ("classes", "canvases", "masks", "patterns"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(revealed(), key))
    assert figures(evaluate(tmp_path / "run", tiny_model(), "digits")) == figures(revealed())


def test_evaluate_on_another_model_measures_that_model():
    other = evaluate(revealed(), tiny_model(seed=1), digits())
    assert figures(other) != figures(revealed())
    np.testing.assert_array_equal(other.patterns, revealed().patterns)
    assert other.settings["source"]["preset"] == "default"


def tiny_data(size: int, classes: int) -> Dataset:
    """Random grey images of ``size`` x ``size``, two per class in each split."""
    gen = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes), 2)
    def split():
        return ArraySplit(gen.integers(0, 256, (len(labels), 1, size, size), dtype=np.uint8),
                          labels)
    return Dataset(f"tiny{size}", split(), split())


def test_evaluate_refuses_another_image_size():
    with pytest.raises(UsageError, match="same image size"):
        evaluate(revealed(), create_model("small-cnn", (1, 4, 4), 10), tiny_data(4, 10))


def test_evaluate_refuses_classes_the_data_lacks():
    with pytest.raises(UsageError, match="has 3 classes"):
        evaluate(revealed(), create_model("small-cnn", (1, 8, 8), 3), tiny_data(8, 3))


def test_evaluate_refuses_a_folder_without_a_run(tmp_path):
    with pytest.raises(UsageError, match="not a run folder"):
        evaluate(tmp_path, tiny_model(), digits())


@pytest.mark.parametrize("module", ["classwise.data", "classwise.reveal.run",
                                    "classwise.search.find", "classwise.search.objectives"])
def test_docstring_examples_run(module):
    outcome = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert outcome.attempted > 0
    assert outcome.failed == 0
