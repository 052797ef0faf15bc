"""Input checks and shared helpers for the dataset-level analyses.

What the analyses need from a study's result Datasets, checked up front so a malformed
or incomplete results folder gives one :class:`LprError` naming the file, the variable
and the expected dims (see :mod:`lprcausal.study.collect` for the schema).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from lprcausal.errors import LprError
from lprcausal.stats.records import TestRecord, join_notes

COUPLED = "coupled"
ROLES = ("a", "b")
DEFAULT_LEVEL = 0.95
# One accuracy point: direct effects inside +-1 point count as "no effect" (TOST).
DEFAULT_TOST_MARGIN = 0.01


def require(
    ds: xr.Dataset,
    var: str,
    dims: tuple[str, ...],
    file: str,
    made_by: str,
    optional: tuple[str, ...] = (),
) -> xr.DataArray:
    """``ds[var]`` with its dims checked; LprError naming the file, variable and dims.

    ``dims`` must all be present; ``optional`` dims may be; nothing else is allowed.
    """
    expected = f"{var}({', '.join((*optional, *dims))})"
    if var not in ds.data_vars:
        raise LprError(
            f"{file} has no variable {var!r}: expected {expected}, {made_by}. Variables "
            f"present: {', '.join(map(str, ds.data_vars)) or 'none'}."
        )
    have = set(ds[var].dims)
    if not set(dims) <= have or not have <= set(dims) | set(optional):
        raise LprError(
            f"{file} variable {var!r} has dims {tuple(ds[var].dims)}: expected {expected}."
        )
    return ds[var]


def labels(ds: xr.Dataset | xr.DataArray, dim: str) -> list[str]:
    """The labels along ``dim`` as strings."""
    return [str(v) for v in ds[dim].values]


def check_decoupled(ds: xr.Dataset) -> None:
    """Raise LprError unless ``ds`` has ``acc(h_find, h_eval, seed, sparsity)`` (and, if
    present, ``find_acc`` / ``lpr`` with their dims) with unique labels."""
    made = "the eval accuracy that `lprcausal study run` writes"
    require(ds, "acc", ("h_find", "h_eval", "seed", "sparsity"), "decoupled.nc", made)
    if "find_acc" in ds:
        require(ds, "find_acc", ("h_find", "seed", "sparsity"), "decoupled.nc", made)
    if "lpr" in ds:
        require(ds, "lpr", ("h_find", "seed", "sparsity", "layer"), "decoupled.nc", made)
    for dim in ("h_find", "h_eval", "seed", "sparsity"):
        values = labels(ds, dim)
        if len(set(values)) != len(values):
            raise LprError(
                f"decoupled.nc coordinate {dim!r} repeats a value ({values}): expected each "
                "label once."
            )


def check_transplant(ds: xr.Dataset) -> None:
    """Raise LprError unless ``ds`` has ``acc([pair,] w_src, lpr_src, seed, sparsity)``
    with w_src and lpr_src labelled a and b (and, if present, a well-formed acc_alpha)."""
    made = "the transplant cells that `lprcausal study run` writes for a [transplant] table"
    acc = require(
        ds,
        "acc",
        ("w_src", "lpr_src", "seed", "sparsity"),
        "transplant.nc",
        made,
        optional=("pair",),
    )
    for dim in ("w_src", "lpr_src"):
        if sorted(labels(acc, dim)) != list(ROLES):
            raise LprError(
                f"transplant.nc coordinate {dim!r} = {labels(acc, dim)}: expected the two "
                "roles ['a', 'b'] (a and b of each pair)."
            )
    if "acc_alpha" in ds:
        require(
            ds,
            "acc_alpha",
            ("alpha", "seed", "sparsity"),
            "transplant.nc",
            made,
            optional=("pair",),
        )


def transplant_acc(tds: xr.Dataset, var: str = "acc") -> xr.DataArray:
    """``tds[var]`` with a ``pair`` dim (added, labelled from attrs, if absent) and the
    roles in the order a, b."""
    da = tds[var]
    if "pair" not in da.dims:
        da = da.expand_dims(pair=[str(tds.attrs.get("pair", "a->b"))])
    for dim in ("w_src", "lpr_src"):
        if dim in da.dims:
            da = da.sel({dim: list(ROLES)})
    return da


def tag(rec: TestRecord, family: str, coords: dict, note: str = "") -> TestRecord:
    """Set a record's family, add selection coords, append a note; returns it."""
    rec.family = family
    rec.coords.update(coords)
    rec.note = join_notes(rec.note, note)
    return rec


def diverged_summary(ds: xr.Dataset, file: str) -> str:
    """One line on diverged runs (``diverged*`` flags, else NaN accuracies) in ``ds``."""
    flags = [v for v in ds.data_vars if str(v).startswith("diverged")]
    if flags:
        n = sum(int(np.asarray(ds[v].values, dtype=bool).sum()) for v in flags)
        total = sum(int(ds[v].size) for v in flags)
        what = f"{n} of {total} eval runs diverged"
        if "find_diverged" in ds and int(ds["find_diverged"].sum()):
            what += f" (incl. those of {int(ds['find_diverged'].sum())} diverged find run(s))"
    else:
        accs = [v for v in ds.data_vars if str(v).startswith("acc")]
        n = sum(int(np.isnan(ds[v].values.astype(float)).sum()) for v in accs)
        what = f"{n} accuracy value(s) are NaN"
    if not n:
        return ""
    return (
        f"{file}: {what}; their accuracy is NaN and each paired test drops those seeds "
        "(n and the note of each test say how many)"
    )
