"""User-facing errors.

Anything the user can get wrong (a bad option, a missing file, two runs that do not
match) raises :class:`LprError` with a one-paragraph message that names the field,
the value and what was expected. The CLI prints the message and exits non-zero
without a traceback; library callers can catch it like any other exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches


class LprError(Exception):
    """A problem with the user's input, stated so the user can fix it."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


def did_you_mean(word: object, options: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` naming the option closest to ``word``, or "" when none is close."""
    near = get_close_matches(str(word), list(options), n=1)
    return f" Did you mean '{near[0]}'?" if near else ""


def bad_value(field: str, value: object, expected: str) -> LprError:
    """Build the standard 'field has value, expected ...' error."""
    return LprError(f"{field} = {value!r} is not valid: expected {expected}.")


def wrong_type(field: str, value: object, expected: str) -> LprError:
    """Build the standard 'field has a value of the wrong type' error."""
    return LprError(f"{field} = {value!r} has the wrong type: expected {expected}.")


def check_choice(field: str, value: object, choices: Iterable[str]) -> None:
    """Raise the standard 'not known: expected one of ...' error unless ``value`` is a choice."""
    if value not in choices:
        raise LprError(f"{field} = {value!r} is not known: expected one of {', '.join(choices)}.")


def check_distinct(flag: str, values: Iterable) -> None:
    """Raise an error naming the first value of the repeatable ``flag`` given twice."""
    seen = set()
    for v in values:
        if v in seen:
            raise LprError(f"{flag} {v:g} is given twice: expected distinct values."
                           if isinstance(v, float) else
                           f"{flag} {v} is given twice: expected distinct values.")
        seen.add(v)
