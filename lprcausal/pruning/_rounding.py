"""Rounding of real-valued weight counts, robust to float error.

Counts such as ``sparsity * N`` or ``ratio * n`` are computed in floating point, so a
value that is mathematically an integer or a half-integer can come out as
``29.999999999999996`` or ``14.499999999999998``. Before rounding we snap any value
within ``TOLERANCE`` of a multiple of 1/2 onto it; the count is then exact whenever
the inputs were (e.g. ratios taken from a real mask as ``count / n``). With float64
inputs the error of ``r * n`` stays far below ``TOLERANCE`` for counts up to ~1e9.
"""

from __future__ import annotations

import math

TOLERANCE = 1e-6


def snap(x: float) -> float:
    """``x`` moved onto the nearest multiple of 1/2 if it lies within ``TOLERANCE`` of it."""
    half = round(2.0 * x) / 2.0
    return half if abs(x - half) <= TOLERANCE else x


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves upwards (``floor(x + 0.5)``), after :func:`snap`.

    Halves go up rather than to even (Python's ``round``) so that e.g. sparsity 0.5 of
    5 weights removes 3, and the rule does not depend on the parity of the count.
    """
    return math.floor(snap(x) + 0.5)


def floor_snapped(x: float) -> int:
    """``floor(x)`` after :func:`snap`, so ``29.999999999999996`` floors to 30."""
    return math.floor(snap(x))
