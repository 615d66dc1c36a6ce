"""Built-in architectures: each builds for grey and colour images, gives one logit per class
and survives TorchScript; ResNet-50 is the CIFAR-style bottleneck 3-4-6-3; the held-out
architectures learn digits, and ResNet-50 trains and loads back like the others."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

import pytest
import torch
from torch import nn

from classwise.data.base import ArraySplit, Dataset
from classwise.models import architectures, create_model, load_model, save_torchscript
from classwise.models.resnet import Bottleneck
from classwise.training import train
from tests.helpers import digits

SHAPES = [(1, 28, 28), (1, 8, 8), (3, 32, 32)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("arch", architectures())
def test_builds_gives_logits_and_round_trips_torchscript(arch: str, shape: tuple[int, int, int],
                                                         tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(arch, shape, 7).eval()
    x = torch.rand(3, *shape)
    save_torchscript(model, tmp_path / "model.ts", x[:1])
    loaded = load_model(tmp_path / "model.ts", device="cpu")
    with torch.no_grad():
        out = model(x)
        assert out.shape == (3, 7) and torch.isfinite(out).all()
        torch.testing.assert_close(loaded(x), out)


def test_resnet50_is_cifar_style_bottleneck_3_4_6_3() -> None:
    model = create_model("resnet50", (3, 32, 32), 10)
    blocks = list(model.layers)
    assert all(isinstance(b, Bottleneck) and b.expansion == 4 for b in blocks)
    for b in blocks:  # 1x1 down, 3x3, 1x1 up to four times the block's width
        assert [c.kernel_size for c in (b.conv1, b.conv2, b.conv3)] == [(1, 1), (3, 3), (1, 1)]
        assert b.conv3.out_channels == 4 * b.conv1.out_channels
    outputs = [b.conv3.out_channels for b in blocks]
    stages = [(width, len(list(run))) for width, run in groupby(outputs)]
    assert stages == [(256, 3), (512, 4), (1024, 6), (2048, 3)]
    strides = [b.conv2.stride for b in blocks]  # stages 2-4 open by halving the size
    assert [i for i, s in enumerate(strides) if s != (1, 1)] == [3, 7, 13]
    assert {strides[i] for i in (3, 7, 13)} == {(2, 2)}
    assert [i for i, b in enumerate(blocks) if len(b.shortcut)] == [0, 3, 7, 13]  # projections
    stem = model.stem[0]
    assert (stem.kernel_size, stem.stride) == ((3, 3), (1, 1))
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.fc.in_features == 2048
    assert sum(p.numel() for p in model.parameters()) == 23_520_842  # as the authors' model

    narrow = create_model("resnet50-narrow", (3, 32, 32), 10)
    assert [b.conv3.out_channels for b in narrow.layers] == [w // 4 for w in outputs]


@pytest.mark.parametrize("arch", ["lenet5-bn", "mlp"])
def test_held_out_architectures_learn_digits(arch: str) -> None:
    accuracy = train(digits(), arch=arch, epochs=2, show_progress=False).meta[
        "clean_test_accuracy"]
    assert accuracy >= 0.7, f"{arch} reached {accuracy:.3f} after 2 epochs (chance 0.1)"


def test_resnet50_trains_saves_and_loads_back(tmp_path: Path) -> None:
    d = digits()
    few = Dataset("few-digits", ArraySplit(d.train.images[:96], d.train.labels[:96]),
                  ArraySplit(d.test.images[:16], d.test.labels[:16]), list(d.class_names))
    result = train(few, arch="resnet50", epochs=1, out=tmp_path, show_progress=False)
    assert result.meta["arch"] == "resnet50"
    x = few.test.load()
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path, device="cpu")(x), result.model(x))
