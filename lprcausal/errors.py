"""User-facing errors.

Anything the user can get wrong (a bad option, a missing file, two runs that do not
match) raises :class:`LprError` with a one-paragraph message that names the field,
the value and what was expected. The CLI prints the message and exits non-zero
without a traceback; library callers can catch it like any other exception.
"""

from __future__ import annotations


class LprError(Exception):
    """A problem with the user's input, stated so the user can fix it."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


def bad_value(field: str, value: object, expected: str) -> LprError:
    """Build the standard 'field has value, expected ...' error."""
    return LprError(f"{field} = {value!r} is not valid: expected {expected}.")
