"""Atomic writes, and the permissions a file gets from the user's umask.

Atomic writes (:func:`atomic_path`) go through ``tempfile.mkstemp``, whose files are
private (0600); before the rename they get the mode an ordinary ``open`` would have
made (0644 under the usual umask 022), so results and runs can be shared like any
other file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    # /proc avoids os.umask's set-and-restore, which would race with other threads.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def user_file_mode() -> int:
    """``0o666`` less the process umask."""
    return 0o666 & ~_umask()


def open_to_user(path: str | os.PathLike) -> None:
    """Give ``path`` (a file made by ``mkstemp``) the mode of an ordinary new file."""
    os.chmod(path, user_file_mode())


@contextmanager
def atomic_path(path: Path, prefix: str | None = None) -> Iterator[Path]:
    """A temp file beside ``path`` for the block to write. When the block succeeds it
    gets the mode of an ordinary new file and replaces ``path`` (no reader ever sees
    half a file); otherwise it is removed and ``path`` is left as it was."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        open_to_user(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)

