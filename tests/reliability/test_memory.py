"""Memory: an image folder is streamed batch by batch, never loaded whole.

A generated folder of 50,000 PNGs (32x32 grey; 2 classes x train/test) is loaded with
:func:`classwise.load_data` and every image is read in batches of 256, in a fresh process.
Its peak resident memory may grow by the index of paths, and by a few batches while reading,
never by anything near the 195 MiB the decoded images take as float32.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IMAGES, SIDE, BATCH = 50_000, 32, 256
DECODED_MB = IMAGES * SIDE * SIDE * 4 / 2**20  # 195 MiB: the float32 tensors load() returns
STREAM_MB = 24  # growth while reading: batches and Pillow's plugins; a uint8 cache is 49 MiB
INDEX_MB = 64   # growth from load_data: the 50,000 paths and labels (about 0.6 KiB an image)

MEASURE = """
import json, sys, time
import numpy as np
from classwise import load_data

def status_mb(field):
    # VmHWM, unlike ru_maxrss, starts afresh at exec: it does not inherit pytest's peak
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 2**10

def rss_mb():
    return status_mb("VmRSS:")

def peak_mb():
    return status_mb("VmHWM:")

before, start = rss_mb(), time.perf_counter()
ds = load_data(sys.argv[1])
indexed = rss_mb()
index_peak = peak_mb()
seen, total, batch = 0, 0.0, int(sys.argv[2])
for split in (ds.train, ds.test):
    for first in range(0, len(split), batch):
        x = split.load(np.arange(first, min(first + batch, len(split))))
        seen += len(x)
        total += float(x.sum())
print(json.dumps({"images": seen, "mean": total / (seen * x[0].numel()),
                  "index_mb": index_peak - before, "stream_mb": peak_mb() - indexed,
                  "seconds": time.perf_counter() - start}))
"""


def make_folder(root: Path) -> float:
    """Write the 50,000 images (64 distinct ones, written as bytes); return the mean pixel."""
    pixels = np.random.default_rng(0).integers(0, 256, (64, SIDE, SIDE), dtype=np.uint8)
    encoded = []
    for p in pixels:
        buf = io.BytesIO()
        Image.fromarray(p).save(buf, format="PNG")
        encoded.append(buf.getvalue())
    per_folder = IMAGES // 4
    for split in ("train", "test"):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_folder):
                (folder / f"{i:05d}.png").write_bytes(encoded[i % 64])
    return float(pixels[np.arange(per_folder) % 64].mean() / 255)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_a_large_image_folder_is_streamed(tmp_path: Path) -> None:
    start = time.perf_counter()
    mean = make_folder(tmp_path / "large")
    made = time.perf_counter() - start
    run = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path / "large"), str(BATCH)],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    figures = json.loads(run.stdout)
    print(f"made in {made:.1f} s; {figures}")
    assert figures["images"] == IMAGES
    assert abs(figures["mean"] - mean) < 1e-4  # every image was really read
    assert figures["stream_mb"] < STREAM_MB < DECODED_MB / 8
    assert figures["index_mb"] < INDEX_MB
