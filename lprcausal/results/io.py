"""Saving and loading result Datasets (netCDF4/HDF5 via h5netcdf), atomically."""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from lprcausal.errors import LprError
from lprcausal.filemode import atomic_path

ENGINE = "h5netcdf"


def save_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine=ENGINE, invalid_netcdf=False)
    except OSError as exc:
        # e.g. a full disk: the previous file (if any) is untouched
        raise LprError(
            f"Cannot write results to {str(path)!r} ({exc.strerror or exc}): expected a "
            "writable folder with free space; nothing was replaced."
        ) from None
    return path


def load_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Read a result Dataset fully into memory (the file is closed afterwards)."""
    p = Path(path)
    if not p.is_file():
        raise LprError(f"{str(p)!r} is not a file: expected a netCDF result file.")
    try:
        with xr.open_dataset(p, engine=ENGINE) as ds:
            return ds.load()
    except (OSError, ValueError) as exc:
        raise LprError(f"{str(p)!r} is not a readable netCDF file ({exc}).") from None


def load_results_dir(results_dir: str | os.PathLike, names: tuple[str, ...]) -> dict:
    """``{name: Dataset or None}`` for each ``<name>.nc`` of a study results folder;
    LprError when it is no folder or holds neither decoupled.nc nor transplant.nc."""
    path = Path(results_dir)
    if not path.is_dir():
        raise LprError(
            f"RESULTS_DIR = {str(path)!r} is not a directory: expected a study results folder "
            "such as results/quickstart (written by `lprcausal study run`)."
        )
    found = {n: load_dataset(path / f"{n}.nc") if (path / f"{n}.nc").is_file() else None
             for n in names}
    if found.get("decoupled") is None and found.get("transplant") is None:
        raise LprError(
            f"RESULTS_DIR = {str(path)!r} holds no decoupled.nc or transplant.nc: expected a "
            "study results folder (written by `lprcausal study run`)."
        )
    return found
