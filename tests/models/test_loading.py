"""load_model: every model form end to end on tiny inputs, weights, normalisation, errors."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from classwise.errors import UsageError
from classwise.models import fast_layout, load_model, save_torchscript
from classwise.models.normalize import Normalized

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
FACTORY = f'''
import torch
from torch import nn

MEAN = torch.tensor({MEAN}).view(1, 3, 1, 1)
STD = torch.tensor({STD}).view(1, 3, 1, 1)


class Net(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean(dim=(2, 3)))


class Baked(Net):
    def forward(self, x):
        return super().forward((x - MEAN) / STD)


def make(num_classes=3):
    return Net(num_classes)


def fixed():
    return Net()


def shaped(image_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(image_shape[0] * image_shape[1] ** 2, 2))


def broken():
    raise RuntimeError("no GPU here")


def not_a_model():
    return "a string"


_private = make
NUMBER = 3
'''


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "nets.py"
    path.write_text(FACTORY)
    return path


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))


def _trained(factory: Path, num_classes: int = 3) -> nn.Module:
    """A model from the factory whose BatchNorm statistics are not the defaults."""
    model = load_model(f"{factory}:make", "cpu", num_classes=num_classes)
    model.bn.running_mean.uniform_(-1, 1)
    return model


def test_file_factory_without_weights_is_built_in_eval_mode(factory: Path) -> None:
    model = load_model(f"{factory}:make", "cpu")
    assert type(model).__name__ == "Net" and not model.training
    assert model(torch.rand(1, 3, 5, 5)).shape == (1, 3)


@pytest.mark.parametrize("form", ["plain.pt", "wrapped.pth", "prefixed.pt", "flat.safetensors"])
def test_weights_load_plain_wrapped_prefixed_and_safetensors(
        factory: Path, images: torch.Tensor, tmp_path: Path, form: str) -> None:
    source = _trained(factory)
    state = source.state_dict()
    path = tmp_path / form
    if form == "plain.pt":
        torch.save(state, path)
    elif form == "wrapped.pth":
        torch.save({"epoch": 3, "model_state_dict": state, "optimizer": {"lr": 0.1}}, path)
    elif form == "prefixed.pt":
        torch.save({"net": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        save_file(state, path)
    model = load_model(f"{factory}:make", "cpu", weights=path)
    with torch.no_grad():
        assert torch.equal(model(images), source(images))


def test_num_classes_and_image_shape_reach_factories_that_take_them(factory: Path) -> None:
    assert load_model(f"{factory}:make", "cpu", num_classes=5).fc.out_features == 5
    assert load_model(f"{factory}:fixed", "cpu", num_classes=5).fc.out_features == 3
    model = load_model(f"{factory}:shaped", "cpu", image_shape=(3, 4, 4), num_classes=7)
    assert model(torch.rand(1, 3, 4, 4)).shape == (1, 2)


def test_module_path_factory_imports_from_the_working_folder(
        factory: Path, monkeypatch: pytest.MonkeyPatch, images: torch.Tensor) -> None:
    package = factory.parent / "userpkg_cw"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "zoo.py").write_text(FACTORY)
    monkeypatch.chdir(factory.parent)
    source = _trained(factory)
    torch.save(source.state_dict(), "w.pt")
    model = load_model("userpkg_cw.zoo:make", "cpu", weights="w.pt")
    for name in ("userpkg_cw.zoo", "userpkg_cw"):
        sys.modules.pop(name)
    with torch.no_grad():
        assert torch.equal(model(images), source(images))
    with pytest.raises(UsageError, match="cannot import userpkg_nope.zoo .*check the module path"):
        load_model("userpkg_nope.zoo:make")


@pytest.mark.parametrize("name, message", [
    ("nothing", r"has no callable 'nothing'; its callables are: Baked, Net, broken, fixed, make, "
                r"not_a_model, shaped; give one as"),
    ("broken", r"building .*:broken\(\) failed \(no GPU here\); fix the factory"),
    ("not_a_model", r"returned a str, not a torch.nn.Module"),
])
def test_factory_errors_are_one_line(factory: Path, name: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_model(f"{factory}:{name}")


def test_missing_or_broken_factory_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no file .*absent.py; give file.py:FACTORY"):
        load_model(f"{tmp_path / 'absent.py'}:make")
    (tmp_path / "bad.py").write_text("import not_a_real_module_xyz\n")
    with pytest.raises(UsageError, match="importing .*bad.py failed .*not_a_real_module_xyz"):
        load_model(f"{tmp_path / 'bad.py'}:make")


def test_weights_that_do_not_fit_name_the_first_bad_key(factory: Path, tmp_path: Path) -> None:
    state = _trained(factory, num_classes=5).state_dict()
    torch.save(state, tmp_path / "five.pt")
    with pytest.raises(UsageError, match=r"shape of 'fc.weight' is \(5, 4\) in the file but "
                                         r"\(3, 4\) in the model \(and 1 more\)"):
        load_model(f"{factory}:make", weights=tmp_path / "five.pt")
    del state["fc.bias"]
    state["head.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(UsageError, match=r"missing key 'fc.bias'; unexpected key 'head.weight'"):
        load_model(f"{factory}:make", num_classes=5, weights=tmp_path / "renamed.pt")


def test_weight_files_that_hold_no_state_dict(factory: Path, tmp_path: Path) -> None:
    torch.save({"epoch": 3, "best": 0.9}, tmp_path / "stats.pt")
    with pytest.raises(UsageError, match="holds a dict with keys epoch, best, not a state_dict"):
        load_model(f"{factory}:make", weights=tmp_path / "stats.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk" * 10)
    with pytest.raises(UsageError, match="cannot read weights .*junk.pt"):
        load_model(f"{factory}:make", weights=tmp_path / "junk.pt")
    with pytest.raises(UsageError, match="no weights file .*gone.pt"):
        load_model(f"{factory}:make", weights=tmp_path / "gone.pt")


def test_declared_normalisation_matches_baked_in_normalisation(
        factory: Path, images: torch.Tensor, tmp_path: Path) -> None:
    baked = load_model(f"{factory}:Baked", "cpu")
    torch.save(baked.state_dict(), tmp_path / "w.pt")
    declared = load_model(f"{factory}:make", "cpu", weights=tmp_path / "w.pt", mean=MEAN,
                          std=STD, image_shape=(3, 5, 5))
    assert isinstance(declared, Normalized)
    with torch.no_grad():
        assert torch.equal(declared(images), baked(images))
        assert torch.equal(torch.jit.script(declared)(images), baked(images))
    assert {n for n, _ in declared.named_buffers()} >= {"mean", "std"}
    assert declared.to(torch.float64).mean.dtype == torch.float64


@pytest.mark.parametrize("mean, std, message", [
    ((123.7, 116.3, 103.5), STD, r"lies outside \[0, 1\]; .*divide 0..255 values by 255"),
    (MEAN, (0.2, 0.0, 0.3), "must be positive"),
    (MEAN, (0.2, 0.3), "mean has 3 values but std has 2"),
    ((0.5, 0.5), None, "mean/std give 2 values but the images have 3 channels"),
    ("grey", None, "mean must be one finite number or one per channel"),
])
def test_bad_normalisation_is_refused(factory: Path, mean: object, std: object,
                                      message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_model(f"{factory}:make", mean=mean, std=std, image_shape=(3, 5, 5))


def test_modules_torchscript_files_and_train_folders_still_load(
        factory: Path, images: torch.Tensor, tmp_path: Path) -> None:
    source = _trained(factory)
    save_torchscript(source, tmp_path / "run" / "model.ts", images)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    fresh = load_model(f"{factory}:make", "cpu")
    with torch.no_grad():
        expected = source(images)
        for model in (load_model(tmp_path / "run" / "model.ts", "cpu"),
                      load_model(str(tmp_path / "run"), "cpu"),
                      load_model(fresh, "cpu", weights=tmp_path / "w.pt")):
            assert torch.equal(model(images), expected)
    with pytest.raises(UsageError, match="cannot read .*w.pt as a TorchScript model .*FACTORY"):
        load_model(tmp_path / "w.pt")
    with pytest.raises(UsageError, match="no model at .*nowhere.ts'; give a TorchScript file"):
        load_model(tmp_path / "nowhere.ts")


@pytest.mark.parametrize("hub", ["torchvision", "timm"])
def test_missing_vision_packages_name_the_extra(hub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, hub, None)  # None in sys.modules makes the import fail
    with pytest.raises(UsageError, match=rf"^{hub} is not installed; pip install "
                                         r"'classwise\[vision\]'$"):
        load_model(f"{hub}:resnet18", weights="w.pt")


def _tiny(num_classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 5, num_classes))


def test_hub_models_are_built_without_downloads_and_take_the_weights(
        monkeypatch: pytest.MonkeyPatch, images: torch.Tensor, tmp_path: Path) -> None:
    calls = []

    def get_model(name: str, **kwargs: object) -> nn.Module:
        calls.append(("torchvision", name, kwargs))
        return _tiny(kwargs.get("num_classes", 1000))

    def create_model(model_name: str, **kwargs: object) -> nn.Module:
        calls.append(("timm", model_name, kwargs))
        return _tiny(kwargs["num_classes"])

    monkeypatch.setitem(sys.modules, "torchvision",
                        types.SimpleNamespace(models=types.SimpleNamespace(get_model=get_model)))
    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    source = _tiny()
    torch.save(source.state_dict(), tmp_path / "w.pt")
    with torch.no_grad():
        for spec in ("torchvision:resnet18", "timm:resnet18.a1_in1k"):
            model = load_model(spec, "cpu", weights=tmp_path / "w.pt", num_classes=4,
                               image_shape=(3, 5, 5))
            assert torch.equal(model(images), source(images))
    assert calls == [
        ("torchvision", "resnet18", {"weights": None, "num_classes": 4}),
        ("timm", "resnet18.a1_in1k", {"pretrained": False, "num_classes": 4, "in_chans": 3}),
    ]
    with pytest.raises(UsageError, match="timm:vit needs weights, and classwise never downloads"):
        load_model("timm:vit")


class _FlatWeights(nn.Module):
    """A model that reads its convolution's weight as one flat view: it needs them
    contiguous, so channels-last must be refused for it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = self.conv.weight.view(-1)
        return self.conv(x).mean(dim=(2, 3)) + flat[:4]


def test_fast_layout_keeps_the_logits_and_refuses_models_it_would_break() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 3)).eval()
    before = net(x).detach()
    assert fast_layout(net, x) is net
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not net[0].weight.is_contiguous()
    torch.testing.assert_close(net(x), before, rtol=1e-4, atol=1e-5)

    flat = _FlatWeights().eval()
    before = flat(x).detach()
    fast_layout(flat, x)
    assert flat.conv.weight.is_contiguous()
    torch.testing.assert_close(flat(x), before)
