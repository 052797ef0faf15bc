"""Input checks shared by the pruning functions.

Every check raises :class:`~lprcausal.errors.LprError` with a message that names the
field, the value and what was expected, so a bad call fails before any work is done.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping

import torch

from lprcausal.errors import LprError, bad_value

_MAX_LISTED = 5


def format_names(names: Iterable[str]) -> str:
    """Render a list of names for a message, shortened after a few entries."""
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return f"[{shown}{f', ... (+{more} more)' if more > 0 else ''}]"


def check_fraction(field: str, value: object, *, allow_one: bool = False, hint: str = "") -> float:
    """Return ``value`` as a float if it lies in [0, 1) (or [0, 1] with ``allow_one``)."""
    expected = ("a number in [0, 1]" if allow_one else "a number in [0, 1)") + hint
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise bad_value(field, value, expected)
    x = float(value)
    # Written so that NaN fails too.
    if not (0.0 <= x <= 1.0 if allow_one else 0.0 <= x < 1.0):
        raise bad_value(field, value, expected)
    return x


def check_same_names(
    names: Iterable[str], expected: Iterable[str], what: str, expected_what: str
) -> None:
    """Raise if the two collections of names differ as sets, listing missing and extra."""
    names, expected = list(names), list(expected)
    name_set, expected_set = set(names), set(expected)
    missing = [n for n in expected if n not in name_set]
    extra = [n for n in names if n not in expected_set]
    if missing or extra:
        raise LprError(
            f"{what} does not match {expected_what}: missing names {format_names(missing)}, "
            f"unexpected names {format_names(extra)}; expected exactly the names "
            f"{format_names(expected)}."
        )


def check_seed(seed: object) -> int:
    """Return ``seed`` if it is a non-negative int (what ``torch.Generator`` accepts)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise bad_value("seed", seed, "a non-negative integer below 2**63")
    return int(seed)


def check_count(field: str, value: object) -> int:
    """Return ``value`` if it is a non-negative int (a number of weights)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise bad_value(field, value, "a non-negative integer number of weights")
    return int(value)


def check_no_nan(params: Mapping[str, torch.Tensor]) -> None:
    """Raise if a weight is NaN: it has no magnitude, so no ranking of it means anything."""
    for name, w in params.items():
        if w.is_floating_point() and bool(torch.isnan(w).any()):
            raise LprError(
                f"weights of layer {name!r} contain NaN: expected finite trained weights "
                "to rank by magnitude."
            )
