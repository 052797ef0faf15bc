"""Validators of the result Datasets: every reader calls one before it reads.

Each raises one :class:`LprError` naming the file, the variable or coordinate and the
expected form (see :mod:`lprcausal.results.schema`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from lprcausal.errors import LprError
from lprcausal.results.schema import (
    DECOUPLED_DIMS,
    DESIGN_WEIGHTS,
    DESIGNS,
    ROLES,
)

MADE_DECOUPLED = "the eval accuracy that `lprcausal study run` writes"
MADE_TRANSPLANT = (
    "the transplant cells that `lprcausal transplant` or a study's [transplant] table write"
)


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


def check_accuracy(da: xr.DataArray, file: str) -> None:
    """Raise LprError unless ``da`` holds accuracies as finite floats, NaN marking a diverged
    or missing run (strings, integers or infinities mean a damaged or foreign file)."""
    if not np.issubdtype(da.dtype, np.floating):
        raise LprError(
            f"{file} variable {da.name!r} has dtype {da.dtype}: expected accuracies as "
            "floats (NaN for a diverged run)."
        )
    values = np.asarray(da.values, dtype=float)
    bad = values[np.isinf(values)]
    if bad.size:
        raise LprError(
            f"{file} variable {da.name!r} holds {bad.size} infinite value(s): expected "
            "finite accuracies (NaN for a diverged run)."
        )


def labels(ds: xr.Dataset | xr.DataArray, dim: str) -> list[str]:
    """The labels along ``dim`` as strings."""
    return [str(v) for v in ds[dim].values]


def check_decoupled(ds: xr.Dataset) -> None:
    """Raise LprError unless ``ds`` has ``acc(h_find, h_eval, seed, sparsity)`` with
    unique labels, its design coords ``is_coupled(h_find, h_eval)`` and
    ``reference_h_find(h_eval)``, and, if present, ``find_acc`` / ``lpr`` with their dims."""
    check_accuracy(require(ds, "acc", DECOUPLED_DIMS, "decoupled.nc", MADE_DECOUPLED),
                   "decoupled.nc")
    if "find_acc" in ds:
        check_accuracy(require(ds, "find_acc", ("h_find", "seed", "sparsity"), "decoupled.nc",
                               MADE_DECOUPLED), "decoupled.nc")
    if "lpr" in ds:
        require(ds, "lpr", ("h_find", "seed", "sparsity", "layer"), "decoupled.nc",
                MADE_DECOUPLED)
    for dim in DECOUPLED_DIMS:
        values = labels(ds, dim)
        if len(set(values)) != len(values):
            raise LprError(
                f"decoupled.nc coordinate {dim!r} repeats a value ({values}): expected each "
                "label once."
            )
    for name, dims in (("is_coupled", ("h_find", "h_eval")), ("reference_h_find", ("h_eval",))):
        if name not in ds.coords or tuple(ds[name].dims) != dims:
            raise LprError(
                f"decoupled.nc has no design coordinate {name}({', '.join(dims)}): expected "
                "the design that `lprcausal study run` records (lprcausal.results.build."
                "decoupled_design makes it); collect the study again with this version."
            )
    arm = ds.attrs.get("reference_h_eval")
    if arm is not None and str(arm) not in labels(ds, "h_eval"):
        raise LprError(
            f"decoupled.nc attr reference_h_eval = {arm!r} names no H_eval: expected one of "
            f"{labels(ds, 'h_eval')}."
        )


def check_transplant(ds: xr.Dataset) -> None:
    """Raise LprError unless ``ds`` has ``acc(pair, w_src, lpr_src, seed, sparsity)``
    with w_src and lpr_src labelled a and b, ``a(pair)`` / ``b(pair)`` H_find labels
    and, if present, a ``design(pair)`` of :data:`~lprcausal.results.schema.DESIGNS` and
    well-formed ``acc_alpha`` / ``acc_control``."""
    acc = require(ds, "acc", ("pair", "w_src", "lpr_src", "seed", "sparsity"),
                  "transplant.nc", MADE_TRANSPLANT)
    check_accuracy(acc, "transplant.nc")
    for dim in ("w_src", "lpr_src"):
        if labels(acc, dim) != list(ROLES):
            raise LprError(
                f"transplant.nc coordinate {dim!r} = {labels(acc, dim)}: expected the two "
                "roles ['a', 'b'] (a and b of each pair), in that order."
            )
    for role in ROLES:
        if role not in ds.coords or tuple(ds[role].dims) != ("pair",):
            raise LprError(
                f"transplant.nc has no coordinate {role}(pair): expected the H_find label of "
                f"role {role} of each pair, as {MADE_TRANSPLANT}."
            )
    if "design" in ds.coords:
        bad = [d for d in labels(ds, "design") if d not in DESIGNS]
        if tuple(ds["design"].dims) != ("pair",) or bad:
            raise LprError(
                f"transplant.nc coordinate design = {labels(ds, 'design')}: expected one of "
                f"{list(DESIGNS)} per pair, as {MADE_TRANSPLANT}."
            )
        for pair, d in zip(labels(ds, "pair"), labels(ds, "design"), strict=True):
            absent = [r for r in ROLES if r not in DESIGN_WEIGHTS[d]]
            if absent and np.isfinite(acc.sel(pair=pair, w_src=absent).values).any():
                raise LprError(
                    f"transplant.nc pair {pair!r} has design {d!r} but accuracies in cells of "
                    f"weights {absent}: expected NaN there (only the weights of "
                    f"{list(DESIGN_WEIGHTS[d])} take both LPRs in that design)."
                )
    for var, extra in (("acc_alpha", ("alpha",)), ("acc_control", ("control", "w_src"))):
        if var in ds:
            dims = ("pair", *extra, "seed", "sparsity")
            da = require(ds, var, dims, "transplant.nc", MADE_TRANSPLANT)
            check_accuracy(da, "transplant.nc")
