"""Run every default analysis on a results directory and store the outcome beside it.

:func:`analyze_results` reads ``decoupled.nc`` and ``transplant.nc`` (whichever
exist), runs the tests of :mod:`lprcausal.stats.analyses`, corrects p-values per
family and returns a :class:`StatsResult`: the test records as one xarray Dataset
(dim ``record``; coords ``family``, ``estimand``, ``pair``, ``h_find``, ``reference``,
``h_eval``, ``sparsity``, ``layer``), the within-seed ANOVA tables, the dose-response
summaries for figures, and the warnings. :func:`write_stats` saves them as
``stats.nc``, ``anova.nc`` and ``dose_fit.nc``; :func:`family_dataset` unstacks one
family of a stats Dataset into named dims.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import statsmodels
import xarray as xr

from lprcausal import __version__
from lprcausal.errors import LprError, bad_value
from lprcausal.results.check import check_decoupled, check_transplant
from lprcausal.results.io import load_results_dir, save_dataset
from lprcausal.results.schema import ANOVA_FILE, DOSE_FIT_FILE, STATS_FILE
from lprcausal.stats import analyses
from lprcausal.stats.paired import min_sign_flip_p
from lprcausal.stats.records import TestRecord, records_to_dataset

INPUTS = ("decoupled", "transplant")
# Selection coords of the records, in the order tables show them.
COORDS = ("pair", "h_eval", "reference", "sparsity", "h_find", "layer")
SELECTION = "no selection: every test of every family is reported"


@dataclass
class StatsResult:
    """Everything ``lprcausal stats`` computes for one results directory."""

    stats: xr.Dataset
    anova: xr.Dataset = field(default_factory=xr.Dataset)
    dose_fit: xr.Dataset = field(default_factory=xr.Dataset)
    warnings: list[str] = field(default_factory=list)


def library_versions() -> str:
    return (
        f"lprcausal {__version__}; numpy {np.__version__}; scipy {scipy.__version__}; "
        f"statsmodels {statsmodels.__version__}; pandas {pd.__version__}; "
        f"xarray {xr.__version__}"
    )



def check_options(level: float, tost_margin: float) -> None:
    if not (isinstance(level, (int, float)) and 0.5 < level < 1):
        raise bad_value("--level", level, "a confidence level between 0.5 and 1, e.g. 0.95")
    if not (isinstance(tost_margin, (int, float)) and 0 < tost_margin < 1):
        raise bad_value("--tost-margin", tost_margin, "0 < margin < 1 (accuracy as a fraction; "
                        "0.01 = one accuracy point)")



def analyze(
    data: dict[str, xr.Dataset],
    *,
    level: float = analyses.DEFAULT_LEVEL,
    tost_margin: float = analyses.DEFAULT_TOST_MARGIN,
    source: str = "",
) -> StatsResult:
    """Run the default analyses on ``{"decoupled": ds, "transplant": ds}`` (either may be
    missing) and return the corrected test records with ANOVA, dose fit and warnings."""
    check_options(level, tost_margin)
    unknown = set(data) - set(INPUTS)
    if unknown or not data:
        raise LprError(f"analyze got datasets {sorted(data)}: expected some of {list(INPUTS)}.")
    records: list[TestRecord] = []
    warnings: list[str] = []
    result = StatsResult(xr.Dataset())
    if "decoupled" in data:
        ds = data["decoupled"]
        check_decoupled(ds)
        design = analyses.decoupled_design(ds)
        recs, notes = analyses.decoupling_tests(ds, level=level, design=design)
        records += recs
        warnings += notes
        recs, notes = analyses.lpr_tests(ds, reference=design.lpr_reference, level=level)
        records += recs
        warnings += notes
        warnings += _seed_warnings(ds, "decoupled.nc")
        warnings.append(analyses.diverged_summary(ds, "decoupled.nc"))
    else:
        warnings.append("no decoupled.nc: decoupled find/eval and layerwise tests not run")
    if "transplant" in data:
        tds = data["transplant"]
        check_transplant(tds)
        records += analyses.mediation_analysis(tds, level=level, tost_margin=tost_margin)
        records += analyses.control_contrast_tests(tds, level=level)
        warnings += analyses.b_only_notes(tds)
        result.anova, notes = analyses.anova_dataset(tds)
        warnings += notes
        recs, notes = analyses.dose_response_tests(tds, level=level)
        records += recs
        warnings += notes
        result.dose_fit = analyses.dose_fit(tds)
        warnings += _seed_warnings(tds, "transplant.nc")
        warnings.append(analyses.diverged_summary(tds, "transplant.nc"))
    else:
        warnings.append(
            "no transplant.nc: mediation, ANOVA and dose-response not tested; add "
            "a [transplant] table (pairs = [[a, b]]) to the study spec"
        )
    analyses.correct(records)
    warnings += _power_warnings(records, level)
    result.warnings = list(dict.fromkeys(w for w in warnings if w))
    result.stats = _stats_dataset(records, result.warnings, level, tost_margin, source)
    for extra in (result.anova, result.dose_fit):
        if extra.data_vars:
            extra.attrs.update(
                {
                    "source": f"lprcausal {__version__}",
                    "libraries": library_versions(),
                    "results_dir": source,
                }
            )
    return result


def analyze_results(
    results_dir: str | Path,
    *,
    level: float = analyses.DEFAULT_LEVEL,
    tost_margin: float = analyses.DEFAULT_TOST_MARGIN,
) -> StatsResult:
    """:func:`analyze` on whichever of ``decoupled.nc`` / ``transplant.nc`` a results
    directory holds (LprError if neither)."""
    check_options(level, tost_margin)  # before any file is read
    found = load_results_dir(results_dir, INPUTS)
    data = {name: ds for name, ds in found.items() if ds is not None}
    return analyze(data, level=level, tost_margin=tost_margin, source=str(results_dir))



def _seed_warnings(ds: xr.Dataset, file: str) -> list[str]:
    n = int(ds.sizes.get("seed", 0))
    if n == 1:
        return [
            f"{file} has 1 seed: no paired test is possible, so estimates are shown "
            "without tests (set seeds >= 2 in [study]; >= 6 lets an exact sign-flip "
            "test reach p < 0.05)"
        ]
    return []


def _power_warnings(records: list[TestRecord], level: float) -> list[str]:
    """Say when a test can never reach alpha."""
    alpha = 1 - level
    out = []
    flips = sorted(
        {
            r.n
            for r in records
            if r.n >= 1
            and not math.isnan(r.p_perm_min)
            and "sign-flip" in r.note
            and min_sign_flip_p(r.n) >= alpha
        }
    )
    if flips:
        need = next(n for n in range(1, 64) if min_sign_flip_p(n) < alpha)
        out.append(
            f"n = {', '.join(map(str, flips))} seeds: the exact sign-flip p (p_perm) "
            f"cannot go below {min_sign_flip_p(flips[0]):.4g} (p < {alpha:g} needs "
            f">= {need} seeds); t-test p-values rest on normally distributed per-seed "
            "differences"
        )
    ranks = sorted(
        {r.n for r in records if r.family.startswith("find_eval_ranking") and r.p_perm_min >= alpha}
    )
    if ranks:
        out.append(
            f"find-vs-eval ranking over {', '.join(map(str, ranks))} H_find: the exact "
            f"permutation test cannot reach p < {alpha:g} (add H_find values)"
        )
    omnibus = sorted({r.n for r in records if r.family == "lpr_omnibus" and r.p_perm_min >= alpha})
    if omnibus:
        out.append(
            f"LPR omnibus test over {', '.join(map(str, omnibus))} seeds: the exact "
            f"permutation test cannot reach p < {alpha:g} (add seeds)"
        )
    return out


def _stats_dataset(
    records: list[TestRecord], warnings: list[str], level: float, tost_margin: float, source: str
) -> xr.Dataset:
    for rec in records:  # the same coords on every record keep the netCDF columns aligned
        for key in COORDS:
            rec.coords.setdefault(key, math.nan if key == "sparsity" else "")
    ds = records_to_dataset(records)
    ds = ds.set_coords([c for c in ("family", "estimand") if c in ds])
    ds.attrs.update(
        {
            "title": "lprcausal statistical test records",
            "source": f"lprcausal {__version__}",
            # no timestamp: the records are a function of the results and the version, so
            # recomputing them rewrites the same file (no spurious change under git)
            "history": f"lprcausal stats {source}".rstrip(),
            "results_dir": source,
            "ci_level": level,
            "alpha": round(1 - level, 12),
            "tost_margin": tost_margin,
            "families": json.dumps({k: vars(v) for k, v in analyses.FAMILIES.items()}),
            "libraries": library_versions(),
            "warnings": json.dumps(warnings),
            "selection": SELECTION,
        }
    )
    return ds


def write_stats(results_dir: str | Path, result: StatsResult) -> list[Path]:
    """Save stats.nc (and anova.nc, dose_fit.nc when there is a transplant) in
    ``results_dir``, atomically; returns the paths written."""
    out = [save_dataset(result.stats, Path(results_dir) / STATS_FILE)]
    for data, name in ((result.anova, ANOVA_FILE), (result.dose_fit, DOSE_FIT_FILE)):
        if data.data_vars:
            out.append(save_dataset(data, Path(results_dir) / name))
        else:  # none this time (e.g. cross-architecture pairs only): no stale file stays
            (Path(results_dir) / name).unlink(missing_ok=True)
    return out


def family_dataset(stats: xr.Dataset, family: str) -> xr.Dataset:
    """The records of one family with the ``record`` dim unstacked into its coords.

    E.g. ``mediation`` -> dims (estimand, pair, sparsity). Only coords that vary
    within the family become dims; constant ones stay scalar coords.
    """
    if "family" not in stats.coords or "record" not in stats.dims:
        raise LprError(
            "the stats Dataset has no 'family' coordinate along 'record': expected "
            "the stats.nc written by `lprcausal stats`."
        )
    families = list(dict.fromkeys(str(f) for f in stats["family"].values))
    if family not in families:
        raise LprError(f"family = {family!r} is not in these stats: expected one of {families}.")
    sub = stats.isel(record=np.flatnonzero(stats["family"].values.astype(str) == family))
    keys = [k for k in ("family", "estimand", *COORDS) if k in sub.coords]
    dims = [k for k in keys if len(set(sub[k].values.tolist())) > 1]
    constant = {k: sub[k].values[0] for k in keys if k not in dims}
    sub = sub.drop_vars(list(constant))
    # Coords this family never uses ("" or NaN on every record) are left out.
    constant = {k: v for k, v in constant.items() if str(v) not in ("", "nan")}
    if len(dims) == 1:
        sub = sub.swap_dims({"record": dims[0]})
    elif dims:
        fill = {name: "" if sub[name].dtype.kind in "US" else math.nan for name in sub.data_vars}
        ints = [name for name in sub.data_vars if sub[name].dtype.kind in "iu"]
        sub = sub.assign({name: sub[name].astype(float) for name in ints})
        sub = sub.set_index(record=dims).unstack("record", fill_value=fill)
    else:
        sub = sub.squeeze("record")
    return sub.assign_coords(constant)
