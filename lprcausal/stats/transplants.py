"""Tests on the transplant Dataset: mediation contrasts, proportion mediated, TOST on
the direct effects, the within-seed ANOVA, and the dose-response over alpha.

Input: ``acc(pair, w_src, lpr_src, seed, sparsity)`` with roles ``a`` and ``b``,
optionally ``acc_alpha(pair, alpha, seed, sparsity)`` and ``acc_control``. A pair
whose design (``design(pair)``: cross-architecture, checkpoint) has the weights of b
alone has no cells of weights a: it gets NIE_b, the control contrasts and the
dose-response only, and a note saying why.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from lprcausal.results.check import check_transplant, labels
from lprcausal.results.read import b_only, b_only_kind, b_only_pairs, b_only_reason, weight_roles
from lprcausal.results.schema import CONTRASTS
from lprcausal.stats.anova import FORMULA as ANOVA_FORMULA
from lprcausal.stats.anova import TERMS as ANOVA_TERMS
from lprcausal.stats.anova import within_seed_anova
from lprcausal.stats.defaults import DEFAULT_LEVEL, DEFAULT_TOST_MARGIN
from lprcausal.stats.mediation import mediation_tests, nie_b_test, nie_test, proportion_mediated
from lprcausal.stats.mediation import transplant_contrasts as _contrasts
from lprcausal.stats.paired import paired_t, tost_paired
from lprcausal.stats.records import TestRecord
from lprcausal.stats.schema import nan_mean, tag
from lprcausal.stats.trend import isotonic_fit, page_trend, per_seed_slopes, slope_test


def mediation_analysis(
    tds: xr.Dataset, *, level: float = DEFAULT_LEVEL, tost_margin: float = DEFAULT_TOST_MARGIN
) -> list[TestRecord]:
    """The primary NIE test per pair; NIE, TE, NIE_a, NIE_b, NDE_a, NDE_b, INT per pair
    and sparsity; proportion mediated; TOST of NDE_a and NDE_b against +-``tost_margin``.

    Family ``mediation`` (pre-registered): one paired t test per pair of the NIE,
    each seed's NIE averaged over the sparsities (:func:`nie_test`). Family
    ``mediation_contrasts`` (exploratory): paired t tests of every contrast per pair and
    sparsity (t CI at ``level``, exact sign-flip p, d_z). The proportion mediated, NIE
    over TE with Fieller's CI, is given only when the TE interval excludes 0. TOST
    p < 1 - level shows the weights' direct effect lies inside +-margin; a
    non-significant t test alone never does.
    """
    check_transplant(tds)
    acc = tds["acc"].transpose("pair", "w_src", "lpr_src", "seed", "sparsity")
    y = acc.values.astype(float)
    h_eval = str(tds.attrs.get("h_eval", ""))
    alpha = round(1 - level, 12)
    out: list[TestRecord] = []
    for i, pair in enumerate(labels(acc, "pair")):
        by_pair = {"pair": pair} | ({"h_eval": h_eval} if h_eval else {})
        if b_only(tds, pair):
            note = f"{b_only_kind(tds, pair)} pair: only the weights of b take both LPRs"
            out += _b_only_mediation(y[i], acc["sparsity"].values, by_pair, level, note)
            continue
        out.append(tag(nie_test(y[i], level=level), "mediation", by_pair))
        for k, s in enumerate(float(v) for v in acc["sparsity"].values):
            cells = y[i, :, :, :, k]
            at = by_pair | {"sparsity": s}
            out.append(tag(nie_test(cells, level=level), "mediation_contrasts", at))
            tests = {r.estimand: r for r in mediation_tests(cells, level=level)}
            out += [tag(tests[name], "mediation_contrasts", at) for name in CONTRASTS]
            out.append(tag(proportion_mediated(cells, level=level), "proportion_mediated", at))
            diffs = _contrasts(cells)
            for name in ("NDE_a", "NDE_b"):
                rec = tost_paired(
                    diffs[name],
                    tost_margin,
                    level=level,
                    estimand=f"|{name}| < margin",
                    scale=float(np.nanmax(np.abs(cells), initial=0.0)),
                )
                note = (
                    f"p < {alpha:g} shows |NDE| < {tost_margin:g}; a t test with p >= "
                    f"{alpha:g} alone cannot show that the effect is absent"
                )
                out.append(tag(rec, "direct_effect_equivalence", at, note))
    return out


def _b_only_mediation(y: np.ndarray, sparsities, by_pair: dict, level: float,
                      note: str) -> list[TestRecord]:
    """A pair of b's weights alone: NIE_b as the pre-registered test (averaged over the
    sparsities) and per sparsity; nothing that needs the weights of a."""
    out = [tag(nie_b_test(y, level=level), "mediation", by_pair, note)]
    for k, s in enumerate(float(v) for v in sparsities):
        rec = nie_b_test(y[:, :, :, k], level=level)
        out.append(tag(rec, "mediation_contrasts", by_pair | {"sparsity": s}, note))
    return out


def b_only_notes(tds: xr.Dataset) -> list[str]:
    """One line per pair of b's weights alone: which contrasts are absent, and why."""
    return [f"transplant pair {p}: only NIE_b and the control contrasts are tested; "
            f"{b_only_reason(tds, p)}" for p in b_only_pairs(tds)]


def control_contrast_tests(tds: xr.Dataset, *, level: float = DEFAULT_LEVEL) -> list[TestRecord]:
    """Each transplant cell against each control mask on the same weights, paired by seed.

    For weights ``w`` (a and b; b alone when the pair's design has only b's), control ``c`` and LPR
    source ``l``: ``Y(w,l) - c(w)``, e.g. ``Y(b,a) - shuffle(b)`` (does a's LPR on b's
    weights beat b's own LPR with shuffled positions?). Family ``control_contrasts``.
    """
    if "acc_control" not in tds:
        return []
    check_transplant(tds)
    acc = tds["acc"].transpose("pair", "w_src", "lpr_src", "seed", "sparsity")
    ctl = tds["acc_control"].transpose("pair", "control", "w_src", "seed", "sparsity")
    h_eval = str(tds.attrs.get("h_eval", ""))
    out = []
    for pair in labels(acc, "pair"):
        for s in (float(v) for v in acc["sparsity"].values):
            at = {"pair": pair, "sparsity": s} | ({"h_eval": h_eval} if h_eval else {})
            for c in labels(ctl, "control"):
                for w in weight_roles(tds, pair):
                    base = ctl.sel(pair=pair, control=c, w_src=w, sparsity=s).values
                    for lp in ("a", "b"):
                        cell = acc.sel(pair=pair, w_src=w, lpr_src=lp, sparsity=s).values
                        scale = float(np.nanmax(np.abs(np.r_[cell, base]), initial=0.0))
                        rec = paired_t(cell - base, level=level,
                                       estimand=f"Y({w},{lp}) - {c}({w})", scale=scale)
                        out.append(tag(rec, "control_contrasts", at))
    return out


def anova_dataset(tds: xr.Dataset) -> tuple[xr.Dataset, list[str]]:
    """Within-seed (repeated-measures) ANOVA of the 2 x 2 grid per pair and sparsity, on
    the seeds with all four cells (:func:`~lprcausal.stats.anova.within_seed_anova`).

    Output dims (pair, sparsity, term); variables sum_sq, df, F, p (NaN where the model
    could not be fit: fewer than 2 complete seeds) and n (complete seeds). Each effect
    (w_src, lpr_src, w_src:lpr_src) is tested against its own interaction with seed.
    Pairs of b's weights alone (cross-architecture, checkpoint) have no 2 x 2 grid: they
    are left out with a warning (an empty Dataset when no pair is factorial).
    """
    check_transplant(tds)
    acc = tds["acc"].transpose("pair", "w_src", "lpr_src", "seed", "sparsity")
    pairs = labels(acc, "pair")
    sparsities = [float(v) for v in acc["sparsity"].values]
    terms = list(ANOVA_TERMS)
    shape = (len(pairs), len(sparsities), len(terms))
    cols = {"sum_sq": "sum_sq", "df": "df", "F": "F", "p": "PR(>F)"}
    data = {name: np.full(shape, np.nan) for name in cols}
    n_complete = np.zeros(shape[:2], dtype=np.int64)
    warnings = []
    y = acc.values.astype(float)
    for i, pair in enumerate(pairs):
        if b_only(tds, pair):
            warnings.append(f"ANOVA of pair {pair} not fit: a {b_only_kind(tds, pair)} pair "
                            "has no cells of weights a")
            continue
        for k, s in enumerate(sparsities):
            n_complete[i, k] = int((~np.isnan(y[i, :, :, :, k]).any(axis=(0, 1))).sum())
            if n_complete[i, k] < 2:
                warnings.append(
                    f"ANOVA of pair {pair} at sparsity {s:g} not fit: "
                    f"{n_complete[i, k]} seed(s) with all four cells (need 2)"
                )
                continue
            table = within_seed_anova(y[i, :, :, :, k])
            for name, col in cols.items():
                data[name][i, k] = table.loc[terms, col].to_numpy()
    dims = ("pair", "sparsity", "term")
    ds = xr.Dataset(
        {name: (dims, values) for name, values in data.items()}
        | {"n": (("pair", "sparsity"), n_complete, {"long_name": "seeds with all 4 cells"})},
        coords={"pair": pairs, "sparsity": sparsities, "term": terms},
    )
    long = {
        "sum_sq": "sum of squares",
        "df": "degrees of freedom",
        "F": "F statistic (effect over its effect x seed mean square)",
        "p": "p-value of the F test (unadjusted)",
    }
    for name, text in long.items():
        ds[name].attrs["long_name"] = text
    ds.attrs["title"] = "within-seed (repeated-measures) ANOVA of the transplant grid"
    ds.attrs["formula"] = ANOVA_FORMULA
    ds.attrs["method"] = (
        "each effect tested against its interaction with seed (F = t^2 of the paired t "
        "test of its per-seed contrast); seeds with a missing cell dropped"
    )
    factorial = [p for p in pairs if not b_only(tds, p)]
    if not factorial:  # pairs of b's weights alone only: no 2 x 2 grid to analyse
        return xr.Dataset(), warnings
    return ds.sel(pair=factorial), warnings


def dose_response_tests(
    tds: xr.Dataset, *, level: float = DEFAULT_LEVEL
) -> tuple[list[TestRecord], list[str]]:
    """Page's trend test over alpha (seeds as blocks; two-sided) and the t test of the
    per-seed OLS slopes, per pair and sparsity. Returns (records, warnings)."""
    if "acc_alpha" not in tds:
        return [], [
            "transplant.nc has no acc_alpha: dose-response not tested; add "
            "`alphas = [0.0, 0.5, 1.0]` to [transplant]"
        ]
    check_transplant(tds)
    dose = tds["acc_alpha"].sortby("alpha")
    dose = dose.transpose("pair", "seed", "alpha", "sparsity")
    alphas = dose["alpha"].values.astype(float)
    warnings = []
    if alphas.size < 3:
        warnings.append(
            f"transplant.nc has {alphas.size} alpha(s): Page's trend test needs "
            ">= 3 (add values to `alphas` in [transplant]); slopes still tested"
        )
    y = dose.values.astype(float)
    h_eval = str(tds.attrs.get("h_eval", ""))
    out = []
    for i, pair in enumerate(labels(dose, "pair")):
        for k, s in enumerate(float(v) for v in dose["sparsity"].values):
            at = {"pair": pair, "sparsity": s} | ({"h_eval": h_eval} if h_eval else {})
            if alphas.size >= 3:
                rec = page_trend(
                    y[i, :, :, k], alternative="two-sided", estimand="trend (mean rho)"
                )
                out.append(tag(rec, "dose_response", at))
            rec = slope_test(alphas, y[i, :, :, k], level=level, estimand="slope per alpha")
            out.append(tag(rec, "dose_response", at))
    return out, warnings


def dose_fit(tds: xr.Dataset) -> xr.Dataset:
    """What the dose-response figure draws: per (pair, alpha, sparsity) the seed mean,
    sd and count of ``acc_alpha``, its isotonic fit, and the per-seed slopes.

    The isotonic fit is monotone in the direction of the mean per-seed slope
    (``direction``: "increasing" or "decreasing"), least squares on the seed means.
    Empty Dataset when there is no ``acc_alpha``.
    """
    if "acc_alpha" not in tds:
        return xr.Dataset()
    check_transplant(tds)
    dose = tds["acc_alpha"].sortby("alpha")
    dose = dose.transpose("pair", "alpha", "seed", "sparsity")
    y = dose.values.astype(float)
    alphas = dose["alpha"].values.astype(float)
    mean, n = nan_mean(y, 2)
    dev = np.where(np.isnan(y), 0.0, y - np.nan_to_num(mean)[:, :, None, :])
    sd = np.where(n > 1, np.sqrt((dev**2).sum(axis=2) / np.maximum(n - 1, 1)), np.nan)
    iso = np.full(mean.shape, np.nan)
    slopes = np.full((y.shape[0], y.shape[2], y.shape[3]), np.nan)
    direction = np.full((y.shape[0], y.shape[3]), "", dtype=object)
    for i in range(y.shape[0]):
        for k in range(y.shape[3]):
            slopes[i, :, k] = per_seed_slopes(alphas, y[i, :, :, k].T)
            ok = slopes[i, :, k][~np.isnan(slopes[i, :, k])]
            up = ok.size == 0 or ok.mean() >= 0
            direction[i, k] = "increasing" if up else "decreasing"
            sign = 1.0 if up else -1.0
            iso[i, :, k] = sign * isotonic_fit(alphas, sign * mean[i, :, k])
    dims = ("pair", "alpha", "sparsity")
    units = {"units": "1"}
    ds = xr.Dataset(
        {
            "acc_mean": (dims, mean, {"long_name": "seed mean of acc_alpha", **units}),
            "acc_sd": (dims, sd, {"long_name": "seed sd of acc_alpha (ddof=1)", **units}),
            "n": (dims, n.astype(np.int64), {"long_name": "seeds with acc_alpha"}),
            "acc_isotonic": (
                dims,
                iso,
                {
                    "long_name": "isotonic (least-squares monotone) fit of acc_mean over alpha",
                    **units,
                },
            ),
            "direction": (
                ("pair", "sparsity"),
                direction.astype(str),
                {"long_name": "direction of the isotonic fit (sign of the mean slope)"},
            ),
            "slope": (
                ("pair", "seed", "sparsity"),
                slopes,
                {"long_name": "per-seed OLS slope of acc_alpha on alpha", "units": "1"},
            ),
        },
        coords={
            "pair": dose["pair"].values.astype(str),
            "alpha": alphas,
            "seed": dose["seed"].values,
            "sparsity": dose["sparsity"].values.astype(float),
        },
    )
    ds.attrs["title"] = "dose-response summaries for figures"
    return ds
