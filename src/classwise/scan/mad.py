"""The median-absolute-deviation outlier rule that Neural Cleanse applies to trigger sizes.

For values ``v`` (one per class), with ``median`` numpy's median (the mean of the two
middle values when there is an even number of them)::

    MAD = median(|v - median(v)|)
    anomaly_index(v_i) = (median(v) - v_i) / (1.4826 * MAD)

1.4826 makes ``1.4826 * MAD`` a consistent estimate of the standard deviation for
normal data. The index is signed so that *small* values (small triggers, the backdoor
sign) are positive; a class is flagged when its index exceeds 2 (small side only).

When ``MAD == 0`` (more than half the values are equal) the index is 0 for values equal
to the median, ``+inf`` for smaller ones and ``-inf`` for larger ones: any smaller value
then lies infinitely many robust deviations below the rest and is flagged.

``min_scale`` (0 by default, as in Neural Cleanse) puts a floor under ``1.4826 * MAD``:
when the values are closer together than the noise a caller knows they carry, a small
difference is not blown up into a large index.
"""

from __future__ import annotations

import numpy as np

from classwise.errors import UsageError

CONSISTENCY = 1.4826
THRESHOLD = 2.0


def anomaly_index(values: np.ndarray, min_scale: float = 0.0) -> np.ndarray:
    """Signed robust z-scores of 1-D ``values``; positive below the median (float64).

    The scale is ``max(1.4826 * MAD, min_scale)``."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0 or not np.isfinite(v).all():
        raise UsageError(f"anomaly index needs a non-empty 1-D array of finite numbers, got "
                         f"shape {v.shape}; pass one value per class")
    below = np.median(v) - v
    scale = max(CONSISTENCY * np.median(np.abs(below)), min_scale)
    if scale == 0:
        return np.sign(below) * np.where(below == 0, 0.0, np.inf)
    return below / scale


def flag_outliers(values: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Positions in ``values`` whose anomaly index exceeds ``threshold`` (small side only)."""
    return np.flatnonzero(anomaly_index(values) > threshold)
