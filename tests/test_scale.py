"""Shards, merging and Ray give the same patterns as one local run."""

import importlib.util
import json

import numpy as np
import pytest

from classwise import merge, reveal, scan_models, train
from classwise.cli import main
from classwise.errors import UsageError
from classwise.reveal import run
from classwise.reveal.shards import parse_shard, shard_classes
from classwise.scan.zoo import model_names

SETTINGS = dict(pixels=4, seed=1, show_progress=False, max_steps=6, canvas_candidates=2,
                device="cpu")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    train("digits", epochs=2, seed=0, show_progress=False, out=out)
    return out


def same(a, b):
    np.testing.assert_array_equal(a.classes, b.classes)
    np.testing.assert_array_equal(a.patterns, b.patterns)
    np.testing.assert_allclose(a.masks, b.masks, atol=1e-6)
    assert [r["predictive_power"] for r in a.records] == \
        [r["predictive_power"] for r in b.records]


def test_shard_parsing():
    assert parse_shard("2/3") == (2, 3)
    assert shard_classes(range(10), "2/3") == [1, 4, 7]
    for bad in ("0/3", "4/3", "x", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_merged_shards_equal_the_whole_run(model_dir, tmp_path):
    whole = reveal(model_dir, "digits", classes="0,1,2,3", **SETTINGS)
    for i in (1, 2):
        reveal(model_dir, "digits", classes="0,1,2,3", shard=f"{i}/2",
               **SETTINGS).save(tmp_path / f"s{i}")
    merged = merge([tmp_path / "s1", tmp_path / "s2"], tmp_path / "merged")
    same(merged, whole)
    assert (tmp_path / "merged" / "class_3" / "examples.png").is_file()


def test_merge_refuses_shards_of_different_runs(model_dir, tmp_path):
    reveal(model_dir, "digits", classes="0", **SETTINGS).save(tmp_path / "a", pictures=False)
    reveal(model_dir, "digits", classes="1", **{**SETTINGS, "seed": 2}).save(
        tmp_path / "b", pictures=False)
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"),
                 "--out", str(tmp_path / "m")]) == 2
    assert not (tmp_path / "m").exists()


def test_shard_out_of_range_is_a_usage_error(model_dir, tmp_path):
    assert main(["reveal", "--model", str(model_dir), "--data", "digits", "--shard", "3/2",
                 "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed")


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
@needs_ray
def test_a_local_ray_run_equals_a_local_run_and_resumes_its_chunks(model_dir, local_ray,
                                                                   tmp_path, monkeypatch):
    local = reveal(model_dir, "digits", classes="0,1,2", **SETTINGS)
    ckpt = tmp_path / "ckpt"
    fanned = reveal(model_dir, "digits", classes="0,1,2", executor="ray", checkpoint=ckpt,
                    **SETTINGS)
    same(fanned, local)
    chunks = sorted(ckpt.glob("chunk_part-*.pt"))
    assert len(chunks) >= 1
    chunks[0].unlink()  # as if the run had stopped before this chunk came back
    searched = []
    real = run.execute
    monkeypatch.setattr(run, "execute", lambda worker, spec, tasks, *a, **k: (
        searched.extend(tasks), real(worker, spec, tasks, *a, **k)))
    resumed = reveal(model_dir, "digits", classes="0,1,2", executor="ray", checkpoint=ckpt,
                     resume=True, **SETTINGS)
    same(resumed, local)
    assert len(searched) == 1


@pytest.mark.slow
@needs_ray
def test_a_zoo_scanned_on_ray_equals_one_scanned_locally(model_dir, local_ray, tmp_path):
    models = [model_dir / "model.ts", model_dir]
    quick = {"max_steps": 4, "ladder": [2, 8]}
    local = scan_models(models, "digits", tmp_path / "local", show_progress=False, **quick)
    fanned = scan_models(models, "digits", tmp_path / "ray", executor="ray", **quick)
    assert [r["verdict_line"] for r in fanned] == [r["verdict_line"] for r in local]
    for name in model_names(models):
        a, b = (json.loads((tmp_path / run / name / "scan.json").read_text())
                for run in ("ray", "local"))
        assert a["classes"] == b["classes"] and a["flagged"] == b["flagged"]


@pytest.mark.slow
@needs_ray
def test_ray_takes_weights_and_normalisation_like_a_local_run(model_dir, local_ray, tmp_path):
    """A factory model with --weights, --mean and --std: each Ray worker builds it once."""
    import torch

    from classwise import ModelSource
    from classwise.models import create_model, load_model

    factory = tmp_path / "net.py"
    factory.write_text("from classwise.models import create_model\n"
                       "def build():\n    return create_model('small-cnn', (1, 8, 8), 10)\n")
    trained = load_model(model_dir, device="cpu")
    net = create_model("small-cnn", (1, 8, 8), 10)
    net.load_state_dict({k.removeprefix("model."): v for k, v in trained.state_dict().items()})
    torch.save(net.state_dict(), tmp_path / "w.pt")
    source = ModelSource(f"{factory}:build", str(tmp_path / "w.pt"), (0.1,), (0.9,))
    local = reveal(source, "digits", classes="0,1", **SETTINGS)
    fanned = reveal(source, "digits", classes="0,1", executor="ray", **SETTINGS)
    same(fanned, local)
    plain = reveal(model_dir, "digits", classes="0,1", **SETTINGS)
    assert not np.array_equal(plain.masks, local.masks)  # the normalisation was applied
