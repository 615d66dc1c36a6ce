"""Patterns, masks and figures of the presets and the scan stay as frozen (see frozen.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from frozen import CASES, JSON, NPZ, SCANS, model, outputs


@pytest.fixture(scope="module")
def now():
    return outputs(model())


@pytest.mark.parametrize("case", [*CASES, *SCANS])
def test_outputs_are_as_frozen(now, case):
    arrays, records = now
    with np.load(NPZ) as f:
        for key in ("classes", "canvases", "patterns"):
            np.testing.assert_array_equal(arrays[f"{case}/{key}"], f[f"{case}/{key}"], key)
        # masks to the last float32 bits one CPU may round differently from another
        np.testing.assert_allclose(arrays[f"{case}/masks"], f[f"{case}/masks"], rtol=0,
                                   atol=1e-6)
    assert records[case] == json.loads(JSON.read_text())[case]
