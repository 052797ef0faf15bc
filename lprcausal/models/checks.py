"""Validation of the arguments every model family shares.

Each check returns the cleaned value (a tuple of ints) or raises :class:`LprError`
naming the field, the value and what was expected, so the builders stay short.
"""

from __future__ import annotations

from collections.abc import Sequence

from lprcausal.errors import LprError, bad_value


def _is_int(value: object) -> bool:
    # bool is an int subclass; True as a width or a dimension is always a mistake.
    return isinstance(value, int) and not isinstance(value, bool)


def positive_ints(field: str, value: object, expected: str) -> tuple[int, ...]:
    """Return ``value`` as a tuple of positive ints, or raise naming ``field``."""
    if (isinstance(value, (str, bytes)) or not isinstance(value, Sequence)
            or not all(_is_int(v) and v >= 1 for v in value)):
        raise bad_value(field, value, expected)
    return tuple(int(v) for v in value)


def shape_error(model: str, in_shape: object, expected: str) -> LprError:
    """The error for an input shape that model family ``model`` cannot take."""
    return bad_value("in_shape", in_shape, f"a per-sample shape for model {model!r}: {expected}")


def in_shape_of(model: str, in_shape: object, ndim: int, expected: str) -> tuple[int, ...]:
    """Check the per-sample input shape has ``ndim`` positive dims; ``expected`` says which."""
    what = f"a per-sample shape for model {model!r}: {expected}"
    shape = positive_ints("in_shape", in_shape, what)
    if len(shape) != ndim:
        raise shape_error(model, in_shape, expected)
    return shape


def n_classes_of(n_classes: object) -> int:
    """Check the number of output classes is a positive int."""
    if not _is_int(n_classes) or n_classes < 1:
        raise bad_value("n_classes", n_classes, "a positive integer (the number of outputs)")
    return int(n_classes)


def widths_of(
    model: str, widths: object, default: tuple[int, ...], meaning: str, *, exact_len: bool = True
) -> tuple[int, ...]:
    """Return ``widths`` (or ``default`` when None) checked against the family's layout.

    ``meaning`` says what each entry is (e.g. "the 3 stage widths"). With ``exact_len``
    the tuple must have ``len(default)`` entries; otherwise any non-empty length works.
    """
    if widths is None:
        return default
    n = f"{len(default)} " if exact_len else ""
    expected = f"a tuple of {n}positive integers ({meaning}) for model {model!r}"
    cleaned = positive_ints("widths", widths, expected)
    if len(cleaned) == 0 or (exact_len and len(cleaned) != len(default)):
        raise bad_value("widths", widths, expected)

    return cleaned
