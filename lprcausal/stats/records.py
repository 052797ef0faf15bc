"""Test records: one statistical test, fully described, and their xarray form.

Every test in :mod:`lprcausal.stats` returns a :class:`TestRecord` carrying the
estimand, the selection coordinates, the estimate with its CI (level and method),
the statistic, df, raw and adjusted p, the correction and its family, n, an effect
size, the test name and the library version. :func:`records_to_dataset` stacks
records into an :class:`xarray.Dataset` that saves to netCDF (HDF5 engines).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import xarray as xr

from lprcausal.errors import LprError, bad_value

NAN = math.nan

# Record fields stored as float / int / string variables along `record`.
FLOAT_FIELDS = (
    "estimate",
    "ci_low",
    "ci_high",
    "ci_level",
    "statistic",
    "df",
    "p",
    "p_adj",
    "effect_size",
    "p_perm",
    "p_perm_min",
)
STRING_FIELDS = ("estimand", "test", "ci_method", "correction", "family", "note", "library")

LONG_NAMES = {
    "estimate": "point estimate of the estimand",
    "ci_low": "lower confidence limit",
    "ci_high": "upper confidence limit",
    "ci_level": "confidence level of the interval",
    "statistic": "test statistic",
    "df": "degrees of freedom of the test statistic",
    "p": "unadjusted p-value",
    "p_adj": "p-value adjusted for multiple comparisons within the family",
    "effect_size": "standardized effect size (d_z = mean / sd for paired designs)",
    "p_perm": "permutation (sign-flip) p-value run as a robustness check",
    "p_perm_min": "smallest p-value the permutation test can attain with this n",
    "n": "number of independent units (seeds) used",
    "estimand": "what is estimated",
    "test": "name of the test",
    "ci_method": "how the confidence interval was computed",
    "correction": "multiple-comparison correction applied to p",
    "family": "family of tests the correction was applied over",
    "note": "warnings and caveats",
    "library": "library and version that computed the test",
}


@dataclass(kw_only=True)
class TestRecord:
    """One statistical test, with everything needed to report it.

    ``p_perm`` / ``p_perm_min`` hold a permutation (sign-flip) p-value and the
    smallest p it could attain with this n; they are NaN when no permutation test
    was run. ``coords`` holds the selection coordinates (pair, sparsity, h_find...)
    that say which slice of the results the test was run on.
    """

    __test__ = False  # not a pytest test class despite the name

    estimand: str
    estimate: float
    ci_low: float
    ci_high: float
    ci_level: float
    ci_method: str
    statistic: float
    df: float
    p: float
    p_adj: float = NAN
    correction: str = "none"
    family: str = ""
    n: int
    effect_size: float = NAN
    test: str
    library: str
    note: str = ""
    p_perm: float = NAN
    p_perm_min: float = NAN
    coords: dict[str, object] = field(default_factory=dict)


def join_notes(*notes: str) -> str:
    """Join non-empty notes with '; '."""
    return "; ".join(n for n in notes if n)


def records_to_dataset(
    records: list[TestRecord], dims: tuple[str, ...] | None = None
) -> xr.Dataset:
    """Stack test records into a Dataset.

    With ``dims=None`` every record is one entry along a ``record`` dimension; each
    key of the records' ``coords`` becomes a coordinate along ``record`` (numbers
    stay numeric, missing entries are NaN for numbers and "" for strings). With
    ``dims`` (coord keys, or "estimand"/"test"/"family"), the ``record`` dimension is
    unstacked into those dimensions, which must identify each record uniquely; cells
    without a record are NaN ("" for strings). No MultiIndex is left behind, so the
    result saves with ``to_netcdf(engine="h5netcdf")``.
    """
    coord_keys: list[str] = []
    for rec in records:
        for key in rec.coords:
            if key not in coord_keys:
                coord_keys.append(key)
    clash = set(coord_keys) & ({f.name for f in fields(TestRecord)} | {"record"})
    if clash:
        raise LprError(
            f"Test record coords {sorted(clash)} reuse names of record fields; "
            "rename the selection coordinates (e.g. 'h_find' rather than 'test')."
        )

    data_vars: dict[str, tuple] = {}
    for name in FLOAT_FIELDS:
        values = np.array([getattr(r, name) for r in records], dtype=float)
        data_vars[name] = ("record", values, {"long_name": LONG_NAMES[name]})
    n_values = np.array([r.n for r in records], dtype=np.int64)
    data_vars["n"] = ("record", n_values, {"long_name": LONG_NAMES["n"]})
    for name in STRING_FIELDS:
        values = np.array([str(getattr(r, name)) for r in records], dtype=str)
        data_vars[name] = ("record", values, {"long_name": LONG_NAMES[name]})

    coords = {
        key: ("record", _coord_values([r.coords.get(key) for r in records])) for key in coord_keys
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs["title"] = "statistical test records"
    ds.attrs["source"] = "lprcausal.stats"
    if dims is None:
        return ds
    return _unstack(ds, tuple(dims), coord_keys)


def _coord_values(values: list[object]) -> np.ndarray:
    """Coordinate array: int64 if all ints, float64 if all numbers, else strings."""
    present = [v for v in values if v is not None]
    numeric = all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        for v in present
    )
    if present and numeric:
        if len(present) == len(values) and all(isinstance(v, (int, np.integer)) for v in present):
            return np.array(values, dtype=np.int64)
        return np.array([NAN if v is None else float(v) for v in values], dtype=float)
    return np.array(["" if v is None else str(v) for v in values], dtype=str)


def _unstack(ds: xr.Dataset, dims: tuple[str, ...], coord_keys: list[str]) -> xr.Dataset:
    allowed = [*coord_keys, "estimand", "test", "family"]
    for dim in dims:
        if dim not in allowed:
            raise bad_value("dims", dims, f"names among the record coords {allowed}")
    ds = ds.set_coords([d for d in dims if d not in coord_keys])
    keys = list(zip(*(ds[d].values.tolist() for d in dims), strict=True))
    if len(set(keys)) != len(keys):
        raise bad_value(
            "dims", dims, "coordinates that identify each test record uniquely (some repeat)"
        )
    # Coordinates along `record` that are not unstacked become variables for the
    # unstack (so each cell keeps its own value) and coordinates again after it.
    ds = ds.reset_coords([k for k in coord_keys if k not in dims])
    # Cells without a record get "" (strings) or NaN; integer variables (n, int
    # coords) become float first so NaN fits, and go back to int when complete.
    int_vars = [name for name in ds.data_vars if ds[name].dtype.kind in "iu"]
    ds = ds.assign({name: ds[name].astype(float) for name in int_vars})
    fill = {name: "" if ds[name].dtype.kind in "US" else NAN for name in ds.data_vars}
    out = ds.set_index(record=list(dims)).unstack("record", fill_value=fill)
    for name in int_vars:
        if not np.isnan(out[name].values).any():
            out[name] = out[name].astype(np.int64)
    # unstack sorts the new dims; restore the order in which records named them.
    first_seen = {d: list(dict.fromkeys(ds[d].values.tolist())) for d in dims}
    out = out.sel(first_seen)
    return out.set_coords([k for k in coord_keys if k not in dims])
