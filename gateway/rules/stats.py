"""The vectorised statistics the baselines are built from: one call covers the whole fleet.

Each function takes and returns numpy arrays with one row per miner and never loops over miners in
Python; NaN means "no value" throughout and propagates rather than raising.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.rules.inputs import F64, B

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution x this = its standard deviation
Column = npt.NDArray[Any]


def debias(ew: F64, count: Column, alpha: float, lag: int) -> F64:
    """An exponentially weighted average over few readings leans toward its seed; divide by the weight
    the readings actually carry (Adam's correction) so early z-scores are not inflated. `lag` readings
    carry no weight (the EW variance's first reading only seeds the mean)."""
    weight = 1.0 - (1.0 - alpha) ** np.maximum(count - lag, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: F64 = np.where(weight > 0, ew / weight, np.nan)
    return out


def ew_update(
    x: F64, z: F64, count: Column, mean: F64, var: F64, alpha: float, clip: float, reject: float
) -> None:
    """In place, where `x` is finite: the incremental EWMA and EW variance (Finch 2009), seeded by the
    first reading. Robust to the faults it is meant to flag (z taken before this update): a reading
    beyond `clip` sigmas moves the mean as if it were at `clip`, and one beyond `reject` leaves the
    variance alone. Learned at full weight, a 5-sigma drop widens the band so fast that it stops
    scoring within three polls, before any debounce; this way it scores for ~6 polls (a 10-sigma one
    for ~25), and a genuine new level is still learned within tens of minutes. Rejecting only gross
    outliers from the variance keeps an underestimated variance from locking itself in."""
    valid = np.isfinite(x)
    first = valid & (count == 0)
    update = valid & (count > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = np.where(np.abs(z) > clip, clip / np.abs(z), 1.0)
    diff = x - mean
    incr = alpha * diff
    mean[update] += (incr * shrink)[update]
    inlier = update & ~(np.abs(z) > reject)
    var[inlier] = (1 - alpha) * (var[inlier] + diff[inlier] * incr[inlier])
    mean[first] = x[first]
    var[first] = 0.0
    count[valid] = np.minimum(count[valid] + 1, 1 << 30)


def window_stats(ring: F64) -> tuple[F64, F64, F64]:
    filled = np.isfinite(ring)
    fill = filled.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(fill > 0, np.where(filled, ring, 0.0).sum(axis=1) / fill, np.nan)
        dev = np.where(filled, ring - mean[:, None], 0.0)
        std = np.sqrt((dev * dev).sum(axis=1) / fill)
    return mean, std, fill


def robust_z(values: F64, group: npt.NDArray[np.int64], valid: B, min_size: int, rel_floor: float) -> F64:
    """(x - median) / (1.4826 MAD) within each group, fully vectorised (sort once, index the middles);
    NaN outside `valid` and in groups smaller than `min_size`. The scale is floored at `rel_floor` of
    the median so a fleet of identical readings does not make a 0.1 % difference an outlier."""
    out = np.full(len(values), np.nan)
    rows = np.flatnonzero(valid & np.isfinite(values))
    if not len(rows):
        return out
    order = np.lexsort((values[rows], group[rows]))
    rows = rows[order]
    keys, vals = group[rows], values[rows]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    median = (vals[starts + (sizes - 1) // 2] + vals[starts + sizes // 2]) / 2
    run = np.repeat(np.arange(len(starts)), sizes)
    dev = np.abs(vals - median[run])
    dev_sorted = dev[np.lexsort((dev, run))]
    mad = (dev_sorted[starts + (sizes - 1) // 2] + dev_sorted[starts + sizes // 2]) / 2
    scale = np.maximum(MAD_TO_SIGMA * mad, rel_floor * np.abs(median))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (vals - median[run]) / scale[run]
    out[rows] = np.where(sizes[run] >= min_size, z, np.nan)
    return out
