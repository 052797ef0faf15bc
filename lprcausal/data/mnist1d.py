"""MNIST-1D, generated locally by the ``mnist1d`` package and cached as ``.npz``.

Nothing is ever downloaded: the package's generator is deterministic given its
``seed`` argument, so the data is a pure function of the generation arguments. The
cache file name is a hash of those arguments (and of the package version). The file
also holds a SHA-256 over those arguments and every array's bytes: a cache file that
cannot be read back, or whose content was changed after it was written, is
regenerated (with a warning), never used.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import random
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from lprcausal.data.dataset import Dataset, assemble

N_CLASSES = 10
CACHE_ENV = "LPRCAUSAL_CACHE"
# Bump when the layout of the cache file changes, so old files are not misread.
_CACHE_FORMAT = 2  # 2: with a content checksum
_ARRAYS = ("x", "y", "x_test", "y_test")
_CHECKSUM = "sha256"


def _content_checksum(args: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    """SHA-256 of the generation arguments and of every array (dtype, shape, bytes)."""
    h = hashlib.sha256(json.dumps(args, sort_keys=True).encode())
    for key in _ARRAYS:
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return np.frombuffer(h.digest(), dtype=np.uint8)


def default_cache_dir() -> Path:
    """``$LPRCAUSAL_CACHE`` if set, else ``~/.cache/lprcausal``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "lprcausal"


def generation_args(n_samples: int | None = None) -> dict[str, Any]:
    """The package's default generation arguments, with ``num_samples`` overridden.

    The download URL is dropped: it does not affect generated data (and nothing here
    downloads).
    """
    from mnist1d.data import get_dataset_args  # lazy: the package imports matplotlib

    args = dict(get_dataset_args(as_dict=True))
    args.pop("url", None)
    if n_samples is not None:
        args["num_samples"] = n_samples
    return args


def cache_path(args: dict[str, Any], cache_dir: Path) -> Path:
    """Cache file for these generation arguments: ``mnist1d_n<N>_<hash>.npz``."""
    key = json.dumps(
        {"args": args, "mnist1d": _package_version(), "format": _CACHE_FORMAT},
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"mnist1d_n{args['num_samples']}_{digest}.npz"


def load_mnist1d(
    *, n_samples: int | None, val_fraction: float, cache_dir: str | os.PathLike | None
) -> Dataset:
    """MNIST-1D as a :class:`Dataset` of shape ``(N, 1, 40)``.

    The package's own train/test split is kept; validation is held out of its train
    part. Inputs are standardized with the scalar mean/std of the full train part.
    """
    args = generation_args(n_samples)
    arrays = _cached_arrays(args, Path(cache_dir) if cache_dir else default_cache_dir())
    x_full, x_test = arrays["x"], arrays["x_test"]
    # Statistics of the full train part (validation included), so changing
    # val_fraction does not change the inputs themselves.
    mean, std = float(x_full.mean()), float(x_full.std())

    def to_input(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((x - mean) / std).astype(np.float32)[:, None, :])

    def to_label(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y.astype(np.int64))

    return assemble(
        "mnist1d",
        to_input(x_full),
        to_label(arrays["y"]),
        to_input(x_test),
        to_label(arrays["y_test"]),
        N_CLASSES,
        val_fraction,
        mean=(mean,),
        std=(std,),
    )


def _cached_arrays(args: dict[str, Any], cache_dir: Path) -> dict[str, np.ndarray]:
    path = cache_path(args, cache_dir)
    if path.exists():
        arrays = _read_cache(path, args)
        if arrays is not None:
            return arrays
    arrays = _generate(args)
    _write_cache(path, arrays, args)
    return arrays


def _generate(args: dict[str, Any]) -> dict[str, np.ndarray]:
    import mnist1d.data  # lazy: the package imports matplotlib

    # The generator seeds and draws from the *global* numpy/random state; restore
    # it afterwards so loading data does not silently reseed the caller.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = mnist1d.data.make_dataset(SimpleNamespace(**args))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x": np.asarray(data["x"], dtype=np.float64),
        "y": np.asarray(data["y"], dtype=np.int64),
        "x_test": np.asarray(data["x_test"], dtype=np.float64),
        "y_test": np.asarray(data["y_test"], dtype=np.int64),
    }


def _expected_sizes(args: dict[str, Any]) -> tuple[int, int]:
    """(train, test) sample counts the generator produces for these arguments."""
    total = (args["num_samples"] // N_CLASSES) * N_CLASSES
    n_train = int(total * args["train_split"])
    return n_train, total - n_train


def _read_cache(path: Path, args: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is unreadable or does not fit ``args``."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in _ARRAYS}
            stored = npz[_CHECKSUM]
    except Exception:  # any failure to read a cache file just means "regenerate"
        return None
    if not np.array_equal(stored, _content_checksum(args, arrays)):
        warnings.warn(
            f"the MNIST-1D cache {path} does not match its checksum (edited?): regenerated",
            stacklevel=4,
        )
        return None
    n_train, n_test = _expected_sizes(args)
    length = args["final_seq_length"]
    ok = (
        arrays["x"].shape == (n_train, length)
        and arrays["x_test"].shape == (n_test, length)
        and arrays["y"].shape == (n_train,)
        and arrays["y_test"].shape == (n_test,)
        and all(arrays[k].dtype.kind == "f" for k in ("x", "x_test"))
        and all(arrays[k].dtype.kind in "iu" for k in ("y", "y_test"))
    )
    return arrays if ok else None


def _write_cache(path: Path, arrays: dict[str, np.ndarray], args: dict[str, Any]) -> None:
    """Write atomically (temp file in the same folder, then rename).

    A cache that cannot be written only costs regeneration next time, so it warns
    instead of failing the load.
    """
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **{_CHECKSUM: _content_checksum(args, arrays)})
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as err:
        warnings.warn(f"could not write the MNIST-1D cache {path}: {err}", stacklevel=3)
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _package_version() -> str:
    try:
        return importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
