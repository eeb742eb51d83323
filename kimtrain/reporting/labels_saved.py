"""DFT labels saved: how many fewer DFT-labelled configurations a strategy needs to reach the
baseline's test error at the full training size, read off the learning curves."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class LabelsSaved:
    """Where a strategy's curve reaches the baseline's full-size error `target`.

    n: the training size at which it does (log-log interpolation between the two curve points
    around the first crossing), or None; below: True when even the smallest point is already at or
    under the target (then n is that smallest size, and the saving is at least ratio); ratio: full
    size / n, or None when the curve never reaches the target; target: the error it was read at."""
    n: float | None
    ratio: float | None
    below: bool = False
    target: float = math.nan

    def __str__(self) -> str:
        if self.ratio is None:
            return "not reached"
        return f"{'> ' if self.below else ''}{self.ratio:.1f}x"


def labels_saved(sizes, errors, target: float, full: float) -> LabelsSaved:
    """sizes: training sizes of a strategy's curve (any order), errors: its test errors there (same
    units as target, > 0), target: the baseline's error at the full size `full`."""
    points = sorted((float(n), float(e)) for n, e in zip(sizes, errors) if math.isfinite(e) and e > 0)
    if not points or not target > 0:
        return LabelsSaved(None, None, target=target)
    if points[0][1] <= target:
        return LabelsSaved(points[0][0], full / points[0][0], below=True, target=target)
    for (n0, e0), (n1, e1) in zip(points, points[1:]):
        if e1 <= target:  # the first crossing, between n0 (above) and n1 (at or below)
            t = (math.log(target) - math.log(e0)) / (math.log(e1) - math.log(e0))
            n = math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
            return LabelsSaved(n, full / n, target=target)
    return LabelsSaved(None, None, target=target)
