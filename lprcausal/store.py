"""Content-addressed run store.

Every run lives in ``<root>/<run id>/`` where the id is the hash of its resolved spec
(:func:`lprcausal.config.spec_hash`). A run directory is built in ``<root>/.tmp/`` and
renamed into place in one step, so a directory under its id is always complete; a
killed process leaves at most a stray temp folder (removed by a later process on the
same host once its maker is gone), never a half-written run.

The store trusts only what it wrote. A run is valid when its ``run.json`` describes a
spec whose hash is the folder's id, and its ``manifest.json`` lists exactly the files
present, each with its SHA-256. Anything else is damaged: it is never read, and a
process that needs the run moves it aside into ``<root>/.quarantine/`` (never deleting
it) and computes it again, saying so in one line.

Tensors are stored with safetensors (no code can run on load). Friendly names are
files in ``<root>/names/`` holding a run id (and nothing else: a name never leads
outside the store).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lprcausal.config import spec_from_record, spec_hash
from lprcausal.errors import LprError, bad_value
from lprcausal.filemode import atomic_path, open_to_user

RUN_FILE = "run.json"
MANIFEST = "manifest.json"
QUARANTINE = ".quarantine"
MAX_NAME = 200  # characters: leaves room in a 255-byte file name for temp prefixes
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_ID = re.compile(r"^[0-9a-f]{16}$")
log = logging.getLogger(__name__)


def check_name(name: str, field: str = "name") -> str:
    """``name`` if it can name a run; an LprError naming what is wrong otherwise."""
    if not isinstance(name, str) or not _NAME.match(name) or _ID.match(name):
        raise bad_value(field, name, "letters, digits, '_', '.', '-' (not starting with a "
                        "symbol, and not a 16-hex-digit run id)")
    if len(name) > MAX_NAME:
        raise LprError(
            f"{field} = {name[:24]!r}... is {len(name)} characters long: expected at most "
            f"{MAX_NAME}."
        )
    return name


def _host_tag() -> str:
    """This host, as a file-name-safe tag (temp folders say which host and process made them)."""
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: keep its files
    return True


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file via a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{_host_tag()}-{os.getpid()}-"
    with atomic_path(path, prefix) as tmp, tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())



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
        try:
            save_file(clean, str(self.folder / name))
        except SafetensorError as exc:
            # safetensors reports a failed write (a full disk, say) as its own error type
            reason = str(exc).rsplit("I/O error: ", 1)[-1]
            raise OSError(f"{reason} (writing {name})") from None
        open_to_user(self.folder / name)  # safetensors writes it private (0600)


def _jsonable(obj: Any) -> Any:
    # json writes floats and tuples itself; only paths need help
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj)}")



class RunStore:
    """A folder of runs addressed by id, unique id prefix, or friendly name."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise LprError(
                f"store = {str(self.root)!r} is a file: expected a folder for runs (an "
                "existing run store, or a path where one can be made)."
            )
        self._verified: set[str] = set()
        self.written: set[str] = set()  # runs this object stored (not another process)

    # ------------------------------------------------------------------ layout
    def run_dir(self, run_id: str) -> Path:
        if not _ID.match(str(run_id)):
            raise bad_value("run id", run_id, "16 hex digits")
        return self.root / run_id

    def exists(self, run_id: str) -> bool:
        """True when the run is present and valid (a damaged run counts as absent)."""
        return self.damage(run_id) is None and (self.root / run_id).is_dir()

    def run_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _ID.match(p.name) and p.is_dir())

    # ------------------------------------------------------------------ writing
    @contextmanager
    def new_run(self, run_id: str) -> Iterator[RunWriter]:
        """Build a run in a temp folder; on success it is renamed to its id atomically."""
        tmp_root = self.root / ".tmp"
        try:
            tmp_root.mkdir(parents=True, exist_ok=True)
            self.remove_stale_temp()
            folder = tmp_root / f"{run_id}-{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            folder.mkdir()
        except OSError as exc:
            raise self._write_error(run_id, exc) from None
        try:
            writer = RunWriter(folder)
            try:
                yield writer
                manifest = {
                    p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.name != MANIFEST
                }
                (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            except OSError as exc:
                raise self._write_error(run_id, exc) from None
            target = self.run_dir(run_id)
            if target.exists() and not self.exists(run_id):
                self.quarantine(run_id, self.damage(run_id) or "is incomplete")
            try:
                os.rename(folder, target)
                self.written.add(run_id)
            except OSError:
                if not self.exists(run_id):
                    raise
                # another process finished the same run first: keep theirs
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    def _write_error(self, run_id: str, exc: OSError) -> LprError:
        return LprError(
            f"Cannot write run {run_id} into store {str(self.root)!r} ({exc.strerror or exc}): "
            "expected a writable folder with free space. Nothing stored was changed; runs "
            "already written are kept, and running the command again resumes."
        )

    def remove_stale_temp(self) -> list[Path]:
        """Remove temp entries left by processes of this host that are gone; return them.

        Temp names carry host and process id; entries of other hosts (a shared store) or
        of live processes are left alone.
        """
        removed = []
        host = _host_tag()
        entries = []
        for folder in (self.root / ".tmp", self.root / "names"):
            if folder.is_dir():
                entries += [p for p in folder.iterdir() if p.name.endswith(".tmp") or
                            folder.name == ".tmp"]
        for path in entries:
            match = re.search(rf"[.-]{re.escape(host)}-(\d+)-", path.name)
            if match is None or _process_alive(int(match.group(1))):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def quarantine(self, run_id: str, why: str, then: str = "computed again") -> Path | None:
        """Move a damaged run aside into ``.quarantine/`` (never deleted); say so in one line."""
        source = self.run_dir(run_id)
        if not source.exists():
            return None
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        dest = self.root / QUARANTINE / f"{run_id}-{stamp}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(source, dest)
        except FileNotFoundError:
            return None  # another process moved it first
        self._verified.discard(run_id)
        log.warning("lprcausal: run %s %s; moved to %s and %s.", run_id, why, dest, then)
        return dest

    @contextmanager
    def lock(self, run_id: str, timeout: float = -1) -> Iterator[bool]:
        """Hold the per-run lock (blocking by default); yields False if it timed out."""
        held = self.try_lock(run_id, timeout)
        try:
            yield held is not None
        finally:
            if held is not None:
                held.release()

    def try_lock(self, run_id: str, timeout: float = 0) -> FileLock | None:
        """Acquire the run's lock (without waiting by default); None if another process
        holds it (past ``timeout`` seconds; -1 waits as long as it takes)."""
        (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".locks" / f"{run_id}.lock"))
        try:
            lock.acquire(timeout=timeout)
        except TimeoutError:
            return None
        return lock


    # ------------------------------------------------------------------ checking
    def damage(self, run_id: str) -> str | None:
        """What is wrong with a present run (None when it is valid or absent)."""
        if run_id in self._verified:
            return None
        folder = self.root / run_id
        if not _ID.match(run_id) or not folder.is_dir():
            return None
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return f"has no readable {MANIFEST}"
        if not isinstance(manifest, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()
        ):
            return f"has a {MANIFEST} that is not a file -> SHA-256 table"
        present = {p.name for p in folder.iterdir()} - {MANIFEST}
        unlisted = sorted(present - set(manifest))
        if unlisted:
            return f"holds files its manifest does not list ({', '.join(unlisted[:3])})"
        if RUN_FILE not in manifest:
            return f"has no {RUN_FILE} in its manifest"
        for name, digest in manifest.items():
            path = folder / name
            if not path.is_file():
                return f"misses its file {name!r}"
            if _sha256(path) != digest:
                return f"has a file {name!r} that does not match its checksum"
        try:
            record = json.loads((folder / RUN_FILE).read_text())
            derived = spec_hash(spec_from_record(record))
        except (OSError, ValueError, KeyError, TypeError, LprError) as exc:
            return f"has a {RUN_FILE} that does not describe a run ({exc})"
        if derived != run_id or record.get("id") != run_id:
            return f"has a {RUN_FILE} whose spec hashes to {derived}, not to its folder name"
        self._verified.add(run_id)
        return None

    def _verify(self, run_id: str) -> None:
        if not (self.root / run_id).is_dir():
            raise LprError(f"Run {run_id} is not in store {str(self.root)!r}.")
        why = self.damage(run_id)
        if why is not None:
            raise self._damaged(run_id, why)

    def _damaged(self, run_id: str, what: str, detail: str = "") -> LprError:
        what = what if not detail else f"has a file {what!r} that {detail}"
        return LprError(
            f"Run {run_id} in store {str(self.root)!r} is damaged: it {what}. It is not used; "
            f"`lprcausal runs verify --store {self.root}` moves it aside, and the command "
            "that made it computes it again."
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
        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise self._damaged(run_id, name, f"is not a valid safetensors file ({exc})") from None

    def has_file(self, run_id: str, name: str) -> bool:
        self._verify(run_id)
        return (self.run_dir(run_id) / name).is_file()

    # ------------------------------------------------------------------ names
    def names(self) -> dict[str, str]:
        """Friendly name -> run id; a name file holding anything but a run id is skipped."""
        folder = self.root / "names"
        if not folder.is_dir():
            return {}
        out = {}
        for p in sorted(folder.iterdir()):
            if p.name.startswith(".") or not p.is_file() or p.is_symlink():
                continue
            try:
                target = p.read_text().strip()
            except (OSError, UnicodeDecodeError):
                continue
            if _ID.match(target):
                out[p.name] = target
        return out

    def set_name(self, name: str, run_id: str) -> None:
        check_name(name)
        current = self.names().get(name)
        if current is not None and current != run_id:
            raise LprError(
                f"name = {name!r} already refers to run {current}: expected a new name, or "
                "the same command that made that run."
            )
        try:
            atomic_write_bytes(self.root / "names" / name, (run_id + "\n").encode())
        except OSError as exc:
            raise LprError(
                f"Cannot write name {name!r} into store {str(self.root)!r} "
                f"({exc.strerror or exc}): expected a writable folder with free space; the "
                f"run itself is stored as {run_id}."
            ) from None

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
