"""Reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed.

Layout: two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions ``d``, then ``d`` big-endian uint32 sizes, then the data in row-major
order. Only unsigned-byte files exist in these datasets, so only those are read.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from lprcausal.errors import LprError

_UBYTE = 0x08


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The uint8 array stored in an IDX file (``.gz`` files are decompressed).

    Raises :class:`LprError` naming the file when it cannot be read or its header
    does not match its size.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise LprError(f"could not read IDX file {str(path)!r}: {err}.") from None

    def bad(reason: str) -> LprError:
        return LprError(f"IDX file {str(path)!r} is malformed: {reason}.")

    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise bad("it does not start with the IDX magic bytes 0x00 0x00")
    if raw[2] != _UBYTE:
        raise bad(f"type code 0x{raw[2]:02x}, expected 0x08 (unsigned byte)")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise bad(f"the header announces {ndim} dimensions but the file ends first")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - offset != count:
        raise bad(f"shape {shape} needs {count} data bytes but the file has {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, count=count, offset=offset).reshape(shape)
