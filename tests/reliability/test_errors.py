"""The catalogue of bad inputs: each is refused by the CLI with one line, the right exit status
(2 for usage errors, 1 for run-time failures) and no --out folder left behind.

docs/reliability.md lists the same catalogue with the message each case prints.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from classwise.cli import main

rng = np.random.default_rng(0)
X_TRAIN = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
X_TEST = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8)


class Linear(nn.Module):
    """A 2-class linear model of ``side`` x ``side`` grey images (8: usable on the data)."""

    def __init__(self, side: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(side * side, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class ThreeLogits(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3]


class OneScore(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).sum(1)


class NaNs(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 2), float("nan"))


class Infs(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 2), float("inf"))


class FailsOnBatches(nn.Module):
    """Passes the two-image check, then fails on the search's larger batches (a run-time bug)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            raise RuntimeError("out of memory on the device")
        return x.flatten(1)[:, :2]


MODELS = {"good": Linear, "three": ThreeLogits, "one": OneScore, "nan": NaNs, "inf": Infs,
          "wide": partial(Linear, 10),  # expects 10x10 images: rejects the 8x8 data
          "fails": FailsOnBatches}


class Kit:
    """Files for the catalogue, written once per test into ``root``."""

    def __init__(self, root: Path, models: Path) -> None:
        self.root, self.models = root, models
        self.out = root / "out"
        self.data = self.npz("good")

    def model(self, name: str) -> str:
        return str(self.models / f"{name}.ts")

    def npz(self, name: str, **arrays: np.ndarray) -> str:
        """A 2-class 8x8 grey .npz dataset with ``arrays`` replacing the good ones."""
        good = {"x_train": X_TRAIN, "y_train": np.arange(40) % 2, "x_test": X_TEST,
                "y_test": np.arange(20) % 2}
        path = self.root / f"{name}.npz"
        np.savez(path, **{**good, **arrays})
        return str(path)

    def file(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.write_bytes(data)
        return str(path)

    def folder(self, broken: bytes) -> str:
        """An image folder whose first test image of class ``b`` is ``broken``."""
        for split in ("train", "test"):
            for label in ("a", "b"):
                d = self.root / "images" / split / label
                d.mkdir(parents=True)
                for i in range(4):
                    Image.fromarray(X_TRAIN[i]).save(d / f"{i}.png")
        (self.root / "images" / "test" / "b" / "0.png").write_bytes(broken)
        return str(self.root / "images")

    def reveal(self, *extra: str, model: str = "good", data: str | None = None) -> list[str]:
        return ["reveal", "--model", self.model(model), "--data", data or self.data,
                "--out", str(self.out), "--no-progress", *extra]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every model of :data:`MODELS` as a TorchScript file."""
    folder = tmp_path_factory.mktemp("models")
    for name, cls in MODELS.items():
        torch.jit.script(cls()).save(str(folder / f"{name}.ts"))
    return folder


@pytest.fixture
def kit(tmp_path: Path, models: Path) -> Kit:
    return Kit(tmp_path, models)


def refused(capsys: pytest.CaptureFixture, argv: list[str], code: int) -> str:
    """Run the CLI; check the exit status and one ``classwise: error:`` line; return it."""
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("classwise: error: ")
    assert "Traceback" not in err
    return lines[0]


Case = Callable[[Kit], list[str]]

# id -> (argv, exit status, what the message says)
CATALOGUE: dict[str, tuple[Case, int, str]] = {
    # models
    "model file missing": (lambda k: k.reveal(model="missing"), 2, "no model at"),
    "model file garbage": (lambda k: [*k.reveal(), "--model",
                                      k.file("junk.ts", b"\x00garbage" * 64)],
                           2, "as a TorchScript model"),
    "weights file garbage": (lambda k: k.reveal("--weights", k.file("w.pt", b"junk" * 9)),
                             2, "cannot read weights"),
    "output (N, 3) for 2 classes": (lambda k: k.reveal(model="three"), 2,
                                    r"returns (2, 3) for 2 images; expected (2, 2)"),
    "output (N,)": (lambda k: k.reveal(model="one"), 2, "returns (2,) for 2 images"),
    "output NaN": (lambda k: k.reveal(model="nan"), 2, "NaN or infinite logits"),
    "output inf": (lambda k: k.reveal(model="inf"), 2, "NaN or infinite logits"),
    "model rejects the image size": (lambda k: k.reveal(model="wide"), 2,
                                     "the model rejects images of shape (1, 8, 8)"),
    # data files
    "data unknown": (lambda k: k.reveal(data="nosuch"), 2, "unknown data 'nosuch'"),
    "npz garbage": (lambda k: k.reveal(data=k.file("junk.npz", b"\x00junk" * 50)), 2,
                    "as .npz (it is not a zip archive)"),
    "npz truncated": (lambda k: k.reveal(data=k.file(
        "cut.npz", Path(k.data).read_bytes()[:700])), 2, "cannot read"),
    "npy saved as npz": (lambda k: k.reveal(data=k.file("a.npz", b"\x93NUMPY" + b"\x00" * 90)),
                         2, "not a zip archive"),
    "image file damaged": (lambda k: k.reveal(data=k.folder(b"\x89PNG\r\n\x1a\n" + b"x" * 40)),
                           2, "cannot read image"),
    "cifar batch garbage": (lambda k: k.reveal(data=_cifar(k.root, b"\x80\x04junk")), 2,
                            "as a CIFAR python file"),
    # data shapes and dtypes
    "images float64": (lambda k: k.reveal(data=k.npz("f", x_train=X_TRAIN / 255.0)), 2,
                       "x_train has dtype float64; store images as uint8"),
    "images 5-D": (lambda k: k.reveal(data=k.npz("d5", x_train=X_TRAIN[:, None, :, :, None])),
                   2, "x_train has shape (40, 1, 8, 8, 1); expected N x H x W"),
    "images 2 channels": (lambda k: k.reveal(data=k.npz("c2", x_train=np.zeros((40, 8, 8, 2),
                                                                                np.uint8))),
                          2, "with C = 1 or 3"),
    "images 0 pixels high": (lambda k: k.reveal(data=k.npz(
        "h0", x_train=np.zeros((40, 0, 8), np.uint8), x_test=np.zeros((20, 0, 8), np.uint8))),
        2, "images are 8x0 pixels"),
    "train and test sizes differ": (lambda k: k.reveal(data=k.npz(
        "sz", x_test=np.zeros((20, 9, 9), np.uint8))), 2, "give both splits the same image size"),
    "labels float": (lambda k: k.reveal(data=k.npz("lf", y_train=np.zeros(40))), 2,
                     "y_train must be a 1-D integer array"),
    "labels 2-D": (lambda k: k.reveal(data=k.npz("l2", y_train=np.zeros((40, 1), int))), 2,
                   "y_train must be a 1-D integer array"),
    "labels fewer than images": (lambda k: k.reveal(data=k.npz("ln", y_train=np.zeros(39, int))),
                                 2, "40 images but 39 labels"),
    "class names 2-D": (lambda k: k.reveal(data=k.npz("n2", class_names=np.array([["a", "b"]]))),
                        2, "class_names has shape (1, 2)"),
    "class name with a line break": (lambda k: k.reveal(data=k.npz(
        "nl", class_names=np.array(["a\nb", "c"]))), 2, "holds a line break"),
    "class with no training images": (lambda k: k.reveal(data=k.npz(
        "ec", y_train=np.arange(40) % 2 * 2, class_names=np.array(["a", "b", "c"]))),
        2, "class 1 (b) has no training images"),
    "label out of range (negative)": (lambda k: k.reveal(data=k.npz(
        "neg", y_test=np.arange(20) % 2 - 1)), 2, "test labels must lie in 0..1, found -1"),
    "label out of range (2**40)": (lambda k: k.reveal(data=k.npz(
        "big", y_train=np.full(40, 2**40))), 2, "labels go up to 1099511627776"),
    "test split empty": (lambda k: k.reveal(data=k.npz(
        "et", x_test=np.zeros((0, 8, 8), np.uint8), y_test=np.zeros(0, int))), 2,
        "the test split of 'et' is empty"),
    # budgets
    "budget 0": (lambda k: k.reveal("--budget", "0"), 2, "budget 0.0 is out of range"),
    "budget 1": (lambda k: k.reveal("--budget", "1"), 2, "budget 1.0 is out of range"),
    "budget -0.1": (lambda k: k.reveal("--budget", "-0.1"), 2, "budget -0.1 is out of range"),
    "budget nan": (lambda k: k.reveal("--budget", "nan"), 2, "budget nan is out of range"),
    "budget inf": (lambda k: k.reveal("--budget", "inf"), 2, "budget inf is out of range"),
    "budget not a number": (lambda k: k.reveal("--budget", "5%"), 2,
                            "argument --budget: invalid float value"),
    "pixels 0": (lambda k: k.reveal("--pixels", "0"), 2, "use 1..63 for 8x8 images"),
    "pixels 64 of 64": (lambda k: k.reveal("--pixels", "64"), 2, "use 1..63 for 8x8 images"),
    "budget and pixels": (lambda k: k.reveal("--budget", "0.1", "--pixels", "3"), 2,
                          "not allowed with argument"),
    # classes and other settings
    "class 7 of 2": (lambda k: k.reveal("--classes", "7"), 2,
                     "unknown class '7'; valid classes are 0..1"),
    "class by unknown name": (lambda k: k.reveal("--classes", "cat"), 2, "unknown class 'cat'"),
    "class -1": (lambda k: k.reveal("--classes", "-1"), 2, "unknown class '-1'"),
    "classes empty": (lambda k: k.reveal("--classes", ","), 2, "no classes given"),
    "canvas unknown": (lambda k: k.reveal("--canvas", "index:x"), 2, "unknown canvas 'index:x'"),
    "canvas index too big": (lambda k: k.reveal("--canvas", "index:99"), 2,
                             "canvas index 99 is out of range"),
    "max batch 0": (lambda k: k.reveal("--max-batch", "0"), 2, "max batch 0 must be at least 1"),
    "device unknown": (lambda k: k.reveal("--device", "tpu"), 2, "unknown device 'tpu'"),
    "image size 0": (lambda k: k.reveal("--image-size", "0"), 2,
                     "image size must be a positive number"),
    "flag unknown": (lambda k: k.reveal("--bogus"), 2, "unrecognized arguments: --bogus"),
    # --out
    "out is a file": (lambda k: [*k.reveal(), "--out", k.file("taken", b"x")], 2,
                      "is a file; give a folder"),
    "out inside a file": (lambda k: [*k.reveal(), "--out", k.file("f", b"x") + "/run"], 2,
                          "is not writable"),
    # other commands
    "evaluate a folder that is no run": (lambda k: ["evaluate", "--patterns", str(k.root),
                                                    "--model", k.model("good"), "--data", k.data,
                                                    "--out", str(k.out)], 2, "is not a run folder"),
    "train 0 epochs": (lambda k: ["train", "--data", k.data, "--epochs", "0", "--out",
                                  str(k.out)], 2, "epochs must be at least 1"),
    "train option of another setting": (lambda k: ["train", "--data", k.data, "--epsilon", "0.1",
                                                   "--out", str(k.out)], 2,
                                        "--epsilon do(es) not apply to --setting natural"),
    # found during the search
    "test split of one class": (lambda k: k.reveal("--classes", "0", data=k.npz(
        "one", y_test=np.zeros(20, int))), 2, "no images outside class 0"),
    # run-time failure: exit status 1, still one line (--out may keep a checkpoint to resume)
    "model fails during the search": (lambda k: k.reveal(model="fails"), 1,
                                      "out of memory on the device (rerun with --debug"),
}


def _cifar(root: Path, test_batch: bytes) -> str:
    """A CIFAR-10 python folder of tiny valid batches whose test batch is ``test_batch``."""
    folder = root / "cifar"
    folder.mkdir()
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}))
    (folder / "test_batch").write_bytes(test_batch)
    return str(folder)


@pytest.mark.parametrize("case", list(CATALOGUE))
def test_bad_input_is_refused_in_one_line(case: str, kit: Kit, capsys) -> None:
    argv, code, says = CATALOGUE[case]
    line = refused(capsys, argv(kit), code)
    assert says in line
    assert code == 1 or not kit.out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_gpu_is_a_usage_error(kit: Kit, capsys) -> None:
    line = refused(capsys, kit.reveal("--device", "cuda"), 2)
    assert "device 'cuda' is not available on this machine" in line
    assert "use --device cpu" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_is_refused(kit: Kit, capsys) -> None:
    locked = kit.root / "locked"
    locked.mkdir(mode=0o500)
    line = refused(capsys, [*kit.reveal(), "--out", str(locked / "run")], 2)
    assert "is not writable; give an --out you can write to" in line
    assert not (locked / "run").exists()


def test_an_out_holding_another_run_is_left_alone(kit: Kit, capsys) -> None:
    kit.out.mkdir()
    (kit.out / "results.json").write_text('{"other": "run"}')
    line = refused(capsys, kit.reveal(), 2)
    assert "already holds files" in line and "--force" in line
    assert [p.name for p in kit.out.iterdir()] == ["results.json"]
    assert (kit.out / "results.json").read_text() == '{"other": "run"}'


def test_debug_shows_the_traceback_with_the_same_status(kit: Kit, capsys) -> None:
    assert main(["--debug", *kit.reveal(model="nan")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("classwise: error: ")
    assert main(["--debug", *kit.reveal(model="fails")]) == 1
    assert "RuntimeError: out of memory on the device" in capsys.readouterr().err


def test_train_batch_size_0_is_a_usage_error(kit: Kit, capsys) -> None:
    refused(capsys, ["train", "--data", kit.data, "--batch-size", "0", "--epochs", "1",
                     "--no-progress", "--out", str(kit.out)], 2)


def test_train_negative_learning_rate_is_a_usage_error(kit: Kit, capsys) -> None:
    refused(capsys, ["train", "--data", kit.data, "--lr", "-1", "--epochs", "1",
                     "--no-progress", "--out", str(kit.out)], 2)
