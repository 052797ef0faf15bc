"""Unpickling that can rebuild numpy arrays and nothing else.

CIFAR's "python version" batches are pickles. A pickle can name any importable
callable and have it called while loading, so a file from an untrusted data root
could run code. :class:`NumpyOnlyUnpickler` resolves only the few globals a
numpy array needs (plus plain dicts, lists, strings and numbers, which need no
globals) and refuses everything else with an :class:`LprError`.
"""

from __future__ import annotations

import codecs
import os
import pickle
from typing import Any

import numpy as np

from lprcausal.errors import LprError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

# (module, name) as written in the pickle -> the object it may resolve to.
# Files written under numpy 1.x (and Python 2, like the original CIFAR files) say
# ``numpy.core``; numpy 2.x writes ``numpy._core``. ``_frombuffer`` is what numpy
# uses with pickle protocol 5. ``_codecs.encode`` is how Python 3 writes bytes at
# protocol 2 (it only re-encodes a string; it runs no code of the file's choosing).
_ALLOWED: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): codecs.encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` whose globals are limited to numpy array rebuilding."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def load_numpy_pickle(path: str | os.PathLike, *, what: str) -> Any:
    """Unpickle ``path`` allowing only numpy arrays and builtin containers.

    ``encoding="latin1"`` reads Python 2 pickles (the original CIFAR files) the way
    numpy expects. Any failure, including a refused global, is an :class:`LprError`
    naming the file and ``what`` it was supposed to be.
    """
    try:
        with open(path, "rb") as f:
            return NumpyOnlyUnpickler(f, encoding="latin1").load()
    except OSError as err:
        raise LprError(f"could not read {what} file {str(path)!r}: {err}.") from None
    except Exception as err:  # malformed pickles raise many exception types
        raise LprError(
            f"{what} file {str(path)!r} is not a valid numpy-only pickle ({err}); "
            "only numpy arrays, lists, dicts, strings and numbers are loaded from data "
            "files, so a file that needs anything else is refused rather than executed."
        ) from None
