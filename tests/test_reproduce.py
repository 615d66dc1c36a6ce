"""Every command of docs/reproduce.md runs, as written, on small generated data in the same
formats: a CIFAR-10 python folder and an ImageNet-style image folder of 224 px images.

Only what a CPU test cannot afford is substituted: a small CNN for the ResNet-50s, one
epoch of training, two search steps for a class, no GPU.
"""

from __future__ import annotations

import pickle
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from classwise.cli import main
from classwise.models import create_model

DOC = Path(__file__).resolve().parents[1] / "docs" / "reproduce.md"
SUBSTITUTIONS = [
    (r"--arch resnet50", "--arch small-cnn"),
    (r"--epochs 100", "--epochs 1"),
    (r"--pgd-steps 10", "--pgd-steps 1"),
    (r"--device cuda", "--device cpu"),
    (r"--model torchvision:resnet50", "--model $NET:build"),
]
QUICK_REVEAL = ["--classes", "0", "--no-progress"]


def commands() -> list[str]:
    """The ``classwise`` lines of the page's shell blocks, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines()
            if line.startswith("classwise ")]


def cifar_folder(root: Path) -> Path:
    """A CIFAR-10 python folder: 5 training batches of 20 images, a test batch of 20."""
    root.mkdir(parents=True)
    gen = np.random.default_rng(0)

    def batch(n: int) -> dict:
        labels = [i % 10 for i in range(n)]
        return {b"data": gen.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": labels}

    for i in range(5):
        (root / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch(20)))
    (root / "test_batch").write_bytes(pickle.dumps(batch(20)))
    (root / "batches.meta").write_bytes(pickle.dumps(
        {b"label_names": [f"class{k}".encode() for k in range(10)]}))
    return root


def image_folder(root: Path, classes: int = 3, per_class: int = 3) -> Path:
    """``train/`` and ``test/`` with one folder of 224x224 JPEGs per class."""
    gen = np.random.default_rng(1)
    for split in ("train", "test"):
        for c in range(classes):
            (root / split / f"n0{c}").mkdir(parents=True)
            for i in range(per_class):
                pixels = gen.integers(0, 256, (224, 224, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / f"n0{c}" / f"{i}.jpg")
    return root


def test_the_page_holds_the_papers_three_settings_and_imagenet():
    lines = commands()
    assert any("--setting backdoor" in c for c in lines)
    assert any("--setting adversarial" in c for c in lines)
    assert sum("reveal" in c and "--preset paper" in c for c in lines) == 4
    assert any("$IMAGENET" in c and "--image-size 224" in c for c in lines)


@pytest.mark.slow
def test_every_command_of_the_page_runs_on_data_in_those_formats(tmp_path):
    net = tmp_path / "net.py"
    net.write_text("from classwise.models import create_model\n"
                   "def build():\n    return create_model('small-cnn', (3, 224, 224), 3)\n")
    torch.save(create_model("small-cnn", (3, 224, 224), 3).state_dict(), tmp_path / "w.pt")
    env = {"$CIFAR": str(cifar_folder(tmp_path / "cifar-10-batches-py")),
           "$IMAGENET": str(image_folder(tmp_path / "imagenet")),
           "$WEIGHTS": str(tmp_path / "w.pt"), "$RUNS": str(tmp_path / "runs"),
           "$NET": str(net)}
    for line in commands():
        for pattern, replacement in SUBSTITUTIONS:
            line = re.sub(pattern, replacement, line)
        for name, value in env.items():
            line = line.replace(name, value)
        argv = shlex.split(line)[1:]
        if argv[0] == "reveal":
            argv += QUICK_REVEAL
        elif argv[0] == "train":
            argv.append("--no-progress")
        assert main(argv) == 0, line
    runs = tmp_path / "runs"
    imagenet = (runs / "imagenet-paper" / "results.json").read_text()
    assert '"budget_pixels": 2500' in imagenet and '"epochs": 1' in imagenet
    assert '"budget_pixels": 50' in (runs / "cifar-natural-paper" / "results.json").read_text()
    assert (runs / "cifar-natural-vs-adversarial" / "flips.png").is_file()
