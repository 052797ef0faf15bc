"""What the figures show: selections of cells and lookups in the stats that were written.

Kept apart from the drawing so each is a small pure function on xarray objects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import xarray as xr

from lprcausal.config import LEVEL_TOL
from lprcausal.errors import LprError, bad_value
from lprcausal.results.read import eval_arms
from lprcausal.results.schema import CORRECTION_NAMES


def require(why: str | None, name: str) -> None:
    """Raise the user error for a figure that cannot be drawn (``why`` says why)."""
    if why is not None:
        raise LprError(f"{name} cannot be drawn: {why}.")


def selection(ds: xr.Dataset, dim: str, chosen: object | None) -> list:
    """The labels of ``dim`` to draw: all of them, or the one(s) chosen (checked)."""
    values = list(ds[dim].values.tolist())
    if chosen is None:
        return values
    wanted = list(chosen) if isinstance(chosen, (list, tuple)) else [chosen]
    out = []
    for w in wanted:
        match = [v for v in values if _same(v, w)]
        if not match:
            raise bad_value(dim, w, f"one of {values}")
        out.append(match[0])
    return out


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), abs_tol=LEVEL_TOL)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    return str(a) == str(b)


def default_eval(ds: xr.Dataset) -> str:
    """The H_eval the single-H_eval figures use: the first decoupled arm the study
    recorded (its reference H_eval, else its first fixed one), else the coupled arm."""
    arms = eval_arms(ds)
    return arms[0] if arms else str(ds["h_eval"].values[0])


def pair_title(pair: str, sparsity: float) -> str:
    """Two short lines (panels are often half a column wide): the pair, the sparsity."""
    return f"{str(pair).replace('->', ' → ')}\nsparsity {float(sparsity):g}"


def records(stats: xr.Dataset | None, family: str, **at: object) -> list[dict]:
    """Test records of ``family`` whose selection coords match ``at`` (floats by closeness).

    Each record is a dict of its fields and coords; ``[]`` when ``stats`` is None or
    has no such record.
    """
    if stats is None or "record" not in stats.dims or "family" not in stats:
        return []
    keep = np.asarray(stats["family"].values).astype(str) == family
    for key, value in at.items():
        if key not in stats.coords and key not in stats:
            return []
        col = stats[key].values
        keep &= np.array([_same(v, value) for v in col.tolist()], dtype=bool)
    names = [*stats.data_vars, *[c for c in stats.coords if stats[c].dims == ("record",)]]
    return [
        {
            k: stats[k].values[i].item()
            if hasattr(stats[k].values[i], "item")
            else stats[k].values[i]
            for k in names
        }
        for i in np.flatnonzero(keep)
    ]


def correction_name(method: str) -> str:
    return "no correction" if method == "none" else CORRECTION_NAMES.get(method, method)


def short_layer(name: str) -> str:
    """A layer's name without the trailing ``.weight`` (every prunable tensor is a weight)."""
    return name[: -len(".weight")] if name.endswith(".weight") else name


def count_text(n: int) -> str:
    """Compact parameter counts: 2400 -> '2.4k', 1_200_000 -> '1.2M'."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{suffix}"
    return str(int(n))


def finite(values: Sequence[float] | np.ndarray) -> bool:
    return bool(np.isfinite(np.asarray(values, dtype=float)).any())


def why_not_drawn(
    ds: xr.Dataset | None, file: str, var: str, dims: tuple[str, ...], missing: str, runs: str
) -> str | None:
    """Why a figure of ``ds[var]`` cannot be drawn (None: it can): no ``file``, no ``var``
    with ``dims`` (``missing`` completes that message), or every one of the ``runs``
    diverged (``var`` all NaN)."""
    if ds is None:
        return f"no {file} in this study"
    if var not in ds or not set(dims) <= set(ds[var].dims):
        return f"{file} has no {var}{missing}"
    if not finite(ds[var].values):
        return f"every {runs} run diverged ({var} is all NaN)"
    return None

