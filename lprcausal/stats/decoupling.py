"""Tests on the decoupled Dataset: decoupled vs coupled eval, H_find vs reference,
find/eval rank agreement, and the layerwise pruning ratios.

Input: ``acc(h_find, h_eval, seed, sparsity)`` (``h_eval`` may hold ``coupled``),
``find_acc(h_find, seed, sparsity)``, ``lpr(h_find, seed, sparsity, layer)``.
Seeds pair the arms; a seed missing in one arm drops that pair only (counted in the
record's note).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from lprcausal.errors import LprError
from lprcausal.results.check import check_decoupled, labels
from lprcausal.results.read import (
    coupled_labels,
    design_notes,
    eval_arms,
    fixed_evals,
    reference_h_find,
    same_runs,
)
from lprcausal.stats.defaults import DEFAULT_LEVEL
from lprcausal.stats.paired import no_interval, paired_t, permutation_record
from lprcausal.stats.ranking import rank_agreement
from lprcausal.stats.records import NAN, TestRecord, join_notes
from lprcausal.stats.schema import nan_mean, tag

# Label permutations for the LPR omnibus test: exact when there are at most this many
# distinct arrangements, else this many random ones.
OMNIBUS_PERMUTATIONS = 10_000


@dataclass(frozen=True)
class DecoupledDesign:
    """Which arms of a decoupled Dataset the tests compare.

    ``eval_arms``: the fixed H_eval labels used as the decoupled arm. ``reference``:
    eval arm -> reference H_find. ``coupled``: H_find -> the H_eval label holding its
    coupled run (H_eval = H_find). ``same``: (H_find, H_eval) pairs whose H are equal,
    so the decoupled run is the coupled one. ``lpr_reference``: reference H_find of the
    layerwise tests. ``warnings``: how missing declarations were resolved.
    """

    eval_arms: tuple[str, ...]
    reference: dict[str, str]
    coupled: dict[str, str]
    same: frozenset[tuple[str, str]]
    lpr_reference: str
    warnings: tuple[str, ...]


def decoupled_design(ds: xr.Dataset) -> DecoupledDesign:
    """The arms of a decoupled Dataset, as its producer recorded them (see
    :func:`lprcausal.results.build.decoupled_design`): eval arms (attr
    ``reference_h_eval``, else every fixed H_eval), the reference H_find of each arm,
    each H_find's coupled H_eval and the cells whose H_eval is the H_find's own H."""
    check_decoupled(ds)
    finds = labels(ds, "h_find")
    arms = eval_arms(ds)
    warnings = design_notes(ds)
    if not fixed_evals(ds):
        warnings.append(
            "decoupled.nc has no fixed H_eval (only 'coupled'): decoupled "
            "tests need one; add [eval.train] or [eval.grid] to the spec"
        )
    reference = {e: r for e, r in reference_h_find(ds).items() if e in arms}
    lpr_reference = reference[arms[0]] if arms else finds[0]
    return DecoupledDesign(
        tuple(arms), reference, coupled_labels(ds), same_runs(ds), lpr_reference, tuple(warnings)
    )


def decoupling_tests(
    ds: xr.Dataset, *, level: float = DEFAULT_LEVEL, design: DecoupledDesign | None = None
) -> tuple[list[TestRecord], list[str]]:
    """Decoupled vs coupled, each H_find vs the reference H_find, find/eval ranking.

    For each sparsity, eval arm e (see :func:`decoupled_design`) and H_find f, paired
    t tests (t CI at ``level``, exact sign-flip p, d_z) of the per-seed differences
    ``acc(f, e) - acc(f, coupled)`` (skipped where f has the H of e: the runs are
    the same) and ``acc(f, e) - acc(reference, e)``. With >= 3 H_find and
    ``find_acc``: Spearman and Kendall permutation tests over H_find of mean find
    accuracy vs mean eval accuracy at e. Returns (records, warnings).
    """
    check_decoupled(ds)
    design = design or decoupled_design(ds)
    warnings = list(design.warnings)
    acc = ds["acc"].transpose("h_find", "h_eval", "seed", "sparsity")
    finds, evals = labels(ds, "h_find"), labels(ds, "h_eval")
    fi = {f: i for i, f in enumerate(finds)}
    ei = {e: i for i, e in enumerate(evals)}
    y = acc.values.astype(float)  # (h_find, h_eval, seed, sparsity)
    sparsities = [float(s) for s in ds["sparsity"].values]
    no_coupled = [
        f
        for f in finds
        if f not in design.coupled and any((f, e) not in design.same for e in design.eval_arms)
    ]
    if no_coupled and design.eval_arms:
        warnings.append(
            f"decoupled vs coupled not tested for H_find {', '.join(no_coupled)}: "
            "no coupled arm (add `coupled = true` to [eval])"
        )
    if len(finds) < 2:
        warnings.append(
            f"decoupled.nc has one H_find ({finds[0]!r}): nothing to compare it "
            "with; add values to [find.grid]"
        )
    ranking = "find_acc" in ds and len(finds) >= 3 and bool(design.eval_arms)
    if "find_acc" not in ds:
        warnings.append(
            "decoupled.nc has no find_acc: find-vs-eval ranking not tested "
            "(find_acc is written by `lprcausal study run`)"
        )
    elif len(finds) < 3 and design.eval_arms:
        warnings.append(
            f"find-vs-eval ranking needs >= 3 H_find (decoupled.nc has "
            f"{len(finds)}): add values to [find.grid]"
        )
    find_acc = (
        ds["find_acc"].transpose("h_find", "seed", "sparsity").values.astype(float)
        if ranking
        else None
    )

    out: list[TestRecord] = []
    for k, s in enumerate(sparsities):
        for e in design.eval_arms:
            ref = design.reference[e]
            for f in finds:
                dec = y[fi[f], ei[e], :, k]
                at = {"h_find": f, "h_eval": e, "sparsity": s}
                c = design.coupled.get(f)
                if (f, e) not in design.same and c is not None:
                    diffs = dec - y[fi[f], ei[c], :, k]
                    rec = paired_t(diffs, level=level, estimand="decoupled - coupled")
                    out.append(tag(rec, "decoupled_vs_coupled", at))
                if f != ref:
                    diffs = dec - y[fi[ref], ei[e], :, k]
                    rec = paired_t(diffs, level=level, estimand="H_find - reference")
                    out.append(tag(rec, "h_find_vs_reference", at | {"reference": ref}))
            if find_acc is not None:
                out += _ranking(find_acc[:, :, k], y[:, ei[e], :, k], e, s)
    return out, warnings


def _ranking(find_acc: np.ndarray, eval_acc: np.ndarray, e: str, s: float) -> list[TestRecord]:
    """Rank agreement over H_find of seed-mean find accuracy and seed-mean eval accuracy."""
    find_mean, eval_mean = nan_mean(find_acc, 1)[0], nan_mean(eval_acc, 1)[0]
    out = []
    for method, family, name in (
        ("spearman", "find_eval_ranking", "rho"),
        ("kendall", "find_eval_ranking_kendall", "tau-b"),
    ):
        rec = rank_agreement(
            find_mean, eval_mean, method=method, estimand=f"{name}(find acc, eval acc)"
        )
        out.append(
            tag(rec, family, {"h_eval": e, "sparsity": s}, "over H_find of seed-mean accuracies")
        )
    return out


def lpr_tests(
    ds: xr.Dataset,
    *,
    reference: str | None = None,
    level: float = DEFAULT_LEVEL,
    n_perm: int = OMNIBUS_PERMUTATIONS,
    seed: int = 0,
) -> tuple[list[TestRecord], list[str]]:
    """Per-layer LPR differences vs the reference H_find, and the omnibus test.

    For each sparsity, H_find f != reference and layer: paired t of the per-seed
    ``lpr(f) - lpr(reference)`` (units: fraction of the layer's weights). Per
    sparsity: :func:`lpr_omnibus` over all H_find. Returns (records, warnings).
    """
    if "lpr" not in ds:
        return [], [
            "decoupled.nc has no lpr: layerwise tests not run (lpr is written by "
            "`lprcausal study run`)"
        ]
    check_decoupled(ds)
    finds = labels(ds, "h_find")
    if len(finds) < 2:
        return [], []
    reference = reference or decoupled_design(ds).lpr_reference
    if reference not in finds:
        raise LprError(f"reference = {reference!r} is not an H_find: expected one of {finds}.")
    lpr = ds["lpr"].transpose("h_find", "seed", "sparsity", "layer").values.astype(float)
    layers = labels(ds, "layer")
    r = finds.index(reference)
    out: list[TestRecord] = []
    for k, s in enumerate(float(v) for v in ds["sparsity"].values):
        for i, f in enumerate(finds):
            if i == r:
                continue
            for j, layer in enumerate(layers):
                rec = paired_t(
                    lpr[i, :, k, j] - lpr[r, :, k, j],
                    level=level,
                    estimand="LPR(H_find) - LPR(reference)",
                )
                out.append(
                    tag(
                        rec,
                        "lpr_layers",
                        {"h_find": f, "reference": reference, "sparsity": s, "layer": layer},
                    )
                )
        rec = lpr_omnibus(lpr[:, :, k, :], n_perm=n_perm, seed=seed)
        out.append(tag(rec, "lpr_omnibus", {"sparsity": s}))
    return out, []


def _l1_spread(x: np.ndarray) -> np.ndarray:
    """Sum over H_find pairs of the L1 distance between mean LPR vectors.

    ``x``: (batch, h_find, seed, layer) -> (batch,).
    """
    means = x.mean(axis=2)
    i, j = np.triu_indices(x.shape[1], 1)
    return np.abs(means[:, i] - means[:, j]).sum(axis=(1, 2))


def lpr_omnibus(x: object, *, n_perm: int = OMNIBUS_PERMUTATIONS, seed: int = 0) -> TestRecord:
    """Permutation test that the LPR vector depends on H_find.

    ``x``: (h_find, seed, layer) ratios. Statistic: sum over H_find pairs of the L1
    distance between their seed-mean LPR vectors. Under H0 the H_find labels are
    exchangeable within a seed, so labels are permuted within each seed. Relabelling
    every seed alike leaves the statistic unchanged, so the first seed keeps its
    labels: with (h!)^(seeds-1) <= ``n_perm`` arrangements all are enumerated (exact
    p), else ``n_perm`` random ones (fixed ``seed``; p = (1 + count) / (1 + n_perm)).
    Seeds with a NaN anywhere are dropped.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 3:
        raise LprError(f"lpr_omnibus x has shape {x.shape}: expected (h_find, seed, layer).")
    complete = ~np.isnan(x).any(axis=(0, 2))
    n_drop = int((~complete).sum())
    x = x[:, complete]
    n_h, n, _ = x.shape
    notes = [f"{n_drop} seed(s) with a missing LPR dropped" if n_drop else ""]
    base = no_interval(
        "L1 spread of mean LPR over H_find", n, "permutation test (H_find labels within seed)"
    )
    if n_h < 2 or n < 2:
        notes.append(f"{n_h} H_find x {n} seed(s): no test was possible (need >= 2 x >= 2)")
        observed = float(_l1_spread(x[None])[0]) if n_h >= 2 and n else NAN
        return TestRecord(**base, estimate=observed, statistic=NAN, p=NAN, note=join_notes(*notes))
    observed = float(_l1_spread(x[None])[0])
    tol = 1e-10 * max(1.0, observed)  # same sums in another order differ in the last bits
    per_seed = np.array(list(itertools.permutations(range(n_h))), dtype=np.int64)
    n_arrangements = len(per_seed) ** (n - 1)
    xt = x.transpose(1, 0, 2)  # (seed, h_find, layer)
    rows = np.arange(n)[None, :, None]

    def spreads(perms: np.ndarray) -> np.ndarray:  # perms: (batch, seed, h_find)
        return _l1_spread(xt[rows, perms].transpose(0, 2, 1, 3))

    chunk = max(1, 2_000_000 // (n * x.size))
    if n_arrangements <= n_perm:
        idx = np.array(
            list(itertools.product(range(len(per_seed)), repeat=n - 1)), dtype=np.int64
        ).reshape(n_arrangements, n - 1)
        stats_all = np.concatenate(
            [
                spreads(
                    np.concatenate(
                        [np.broadcast_to(per_seed[0], (len(b), 1, n_h)), per_seed[b]], axis=1
                    )
                )
                for b in np.array_split(idx, max(1, math.ceil(len(idx) / chunk)))
            ]
        )
        p = float(np.mean(stats_all >= observed - tol))
        p_min = float(np.mean(stats_all >= stats_all.max() - tol))
        notes.append(f"exact: all {n_arrangements} label arrangements")
    else:
        rng = np.random.default_rng(seed)
        count = 0
        for start in range(0, n_perm, chunk):
            size = min(chunk, n_perm - start)
            perms = rng.permuted(np.broadcast_to(np.arange(n_h), (size, n, n_h)), axis=2)
            count += int(np.sum(spreads(perms) >= observed - tol))
        p = (1 + count) / (1 + n_perm)
        p_min = 1 / (1 + n_perm)
        notes.append(f"Monte Carlo: {n_perm} label arrangements (seed {seed})")
    return permutation_record(base, observed, p, p_min, notes)
