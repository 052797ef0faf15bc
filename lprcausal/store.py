"""Content-addressed run store.

Every run lives in ``<root>/<run id>/`` where the id is the hash of its resolved spec
(:func:`lprcausal.config.spec_hash`). A run directory is built in ``<root>/.tmp/`` and
renamed into place in one step, so a directory under its id is always complete; a
killed process leaves at most a stray temp folder, never a half-written run. Each run
carries ``manifest.json`` with the SHA-256 of its files, checked on read, so a
truncated or hand-edited run is reported instead of being used.

Tensors are stored with safetensors (no code can run on load). Friendly names are
files in ``<root>/names/`` holding a run id.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

from lprcausal.errors import LprError

RUN_FILE = "run.json"
MANIFEST = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_ID = re.compile(r"^[0-9a-f]{16}$")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file via a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class RunWriter:
    """Collects a run's files in a temp folder; :meth:`RunStore.commit` moves it into place."""

    def __init__(self, folder: Path):
        self.folder = folder

    def json(self, name: str, obj: Any) -> None:
        (self.folder / name).write_text(json.dumps(obj, indent=1, sort_keys=True, default=_jsonable))

    def tensors(self, name: str, tensors: dict[str, torch.Tensor]) -> None:
        clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        save_file(clean, str(self.folder / name))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj
    if isinstance(obj, tuple):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj)}")


class RunStore:
    """A folder of runs addressed by id, unique id prefix, or friendly name."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._verified: set[str] = set()

    # ------------------------------------------------------------------ layout
    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def exists(self, run_id: str) -> bool:
        return (self.root / run_id / MANIFEST).is_file()

    def run_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _ID.match(p.name) and p.is_dir())

    # ------------------------------------------------------------------ writing
    @contextmanager
    def new_run(self, run_id: str) -> Iterator[RunWriter]:
        """Build a run in a temp folder; on success it is renamed to its id atomically."""
        tmp_root = self.root / ".tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        folder = tmp_root / f"{run_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        try:
            writer = RunWriter(folder)
            yield writer
            manifest = {
                p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.name != MANIFEST
            }
            (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            target = self.run_dir(run_id)
            try:
                os.rename(folder, target)
            except OSError:
                if not self.exists(run_id):
                    raise
                # another process finished the same run first: keep theirs
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    @contextmanager
    def lock(self, run_id: str, timeout: float = -1) -> Iterator[bool]:
        """Hold the per-run lock (blocking by default); yields False if it timed out."""
        (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".locks" / f"{run_id}.lock"))
        try:
            lock.acquire(timeout=timeout)
        except TimeoutError:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def try_lock(self, run_id: str) -> FileLock | None:
        """Acquire the run's lock without waiting; None if another process holds it."""
        (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".locks" / f"{run_id}.lock"))
        try:
            lock.acquire(timeout=0)
        except TimeoutError:
            return None
        return lock

    # ------------------------------------------------------------------ reading
    def _verify(self, run_id: str) -> None:
        if run_id in self._verified:
            return
        folder = self.run_dir(run_id)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError):
            raise self._damaged(run_id, MANIFEST, "is missing or not valid JSON") from None
        for name, digest in manifest.items():
            path = folder / name
            if not path.is_file():
                raise self._damaged(run_id, name, "is missing")
            if _sha256(path) != digest:
                raise self._damaged(run_id, name, "does not match its recorded checksum")
        self._verified.add(run_id)

    def _damaged(self, run_id: str, name: str, what: str) -> LprError:
        return LprError(
            f"Run {run_id} in store {str(self.root)!r} is damaged: its file {name!r} {what} "
            "(truncated or edited by hand). It is not used; delete the folder "
            f"{str(self.run_dir(run_id))!r} to recompute it."
        )

    def read_json(self, run_id: str, name: str = RUN_FILE) -> dict:
        self._verify(run_id)
        try:
            return json.loads((self.run_dir(run_id) / name).read_text())
        except FileNotFoundError:
            raise LprError(
                f"Run {run_id} has no {name!r}: it was written by a run kind that does not "
                "store it."
            ) from None

    def read_tensors(self, run_id: str, name: str) -> dict[str, torch.Tensor]:
        self._verify(run_id)
        path = self.run_dir(run_id) / name
        if not path.is_file():
            raise LprError(f"Run {run_id} has no {name!r}.")
        return load_file(str(path))

    def has_file(self, run_id: str, name: str) -> bool:
        return (self.run_dir(run_id) / name).is_file()

    # ------------------------------------------------------------------ names
    def names(self) -> dict[str, str]:
        folder = self.root / "names"
        if not folder.is_dir():
            return {}
        return {p.name: p.read_text().strip() for p in sorted(folder.iterdir()) if p.is_file()
                and not p.name.startswith(".")}

    def set_name(self, name: str, run_id: str) -> None:
        if not _NAME.match(name) or _ID.match(name):
            raise LprError(
                f"name = {name!r} is not valid: expected letters, digits, '_', '.', '-' "
                "(not starting with a symbol, and not a 16-hex-digit run id)."
            )
        current = self.names().get(name)
        if current is not None and current != run_id:
            raise LprError(
                f"name = {name!r} already refers to run {current}: expected a new name, or "
                "the same command that made that run."
            )
        atomic_write_bytes(self.root / "names" / name, (run_id + "\n").encode())

    def resolve(self, ref: str, field: str = "run") -> str:
        """Run id for a name, a full id or a unique id prefix (at least 4 hex digits)."""
        ref = str(ref).strip()
        names = self.names()
        if ref in names:
            run_id = names[ref]
            if not self.run_dir(run_id).is_dir():
                raise LprError(
                    f"{field} = {ref!r} names run {run_id}, which is not in store "
                    f"{str(self.root)!r} (deleted?)."
                )
            return run_id
        ids = self.run_ids()
        if len(ref) >= 4 and re.fullmatch(r"[0-9a-f]+", ref):
            hits = [i for i in ids if i.startswith(ref)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise LprError(
                    f"{field} = {ref!r} is ambiguous: it is a prefix of {len(hits)} runs "
                    f"({', '.join(hits[:4])}{', ...' if len(hits) > 4 else ''}); expected a "
                    "longer prefix or a name."
                )
        known = ", ".join(list(names)[:8]) or "none"
        raise LprError(
            f"{field} = {ref!r} is not a run in store {str(self.root)!r}: expected a run name "
            f"(known names: {known}), a run id or a unique id prefix of at least 4 hex digits "
            "(see `lprcausal runs list`)."
        )
