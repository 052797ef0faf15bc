"""Synthetic study results with the schema of lprcausal.study.collect, for the stats tests.

Labels look like the study's (``lr=0.03``); ``h_find_config`` / ``h_eval_config`` hold
JSON of the H so the analyses can tell which H_find has the H of which H_eval.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

FINDS = ("lr=0.01", "lr=0.03", "lr=0.1")
EVALS = ("coupled", "lr=0.03")


def config(label: str) -> str:
    if label == "coupled":
        return "coupled"
    key, value = label.split("=")
    return json.dumps({key: float(value), "momentum": 0.9}, sort_keys=True)


def decoupled_ds(
    acc: np.ndarray,
    finds=FINDS,
    evals=EVALS,
    *,
    sparsities=(0.8,),
    find_acc: np.ndarray | None = None,
    lpr: np.ndarray | None = None,
    layers=("fc1.weight", "fc2.weight"),
    configs: bool = True,
    attrs: dict | None = None,
) -> xr.Dataset:
    """``acc`` has shape (h_find, h_eval, seed, sparsity)."""
    acc = np.asarray(acc, dtype=float)
    seeds = np.arange(acc.shape[2])
    data = {
        "acc": (("h_find", "h_eval", "seed", "sparsity"), acc, {"units": "1"}),
        "diverged": (("h_find", "h_eval", "seed", "sparsity"), np.isnan(acc)),
    }
    if find_acc is not None:
        data["find_acc"] = (("h_find", "seed", "sparsity"), np.asarray(find_acc, float))
    coords = {
        "h_find": list(finds),
        "h_eval": list(evals),
        "seed": seeds,
        "sparsity": np.asarray(sparsities, float),
    }
    if lpr is not None:
        data["lpr"] = (("h_find", "seed", "sparsity", "layer"), np.asarray(lpr, float))
        coords["layer"] = list(layers)
        data["n_params"] = ("layer", np.full(len(layers), 100, dtype=np.int64))
    if configs:
        coords["h_find_config"] = ("h_find", [config(f) for f in finds])
        coords["h_eval_config"] = ("h_eval", [config(e) for e in evals])
    ds = xr.Dataset(data, coords=coords)
    ds.attrs = {"title": "synthetic: decoupled find/eval", **(attrs or {})}
    return ds


def transplant_ds(
    acc: np.ndarray,
    *,
    pairs=("lr=0.1->lr=0.01",),
    sparsities=(0.8,),
    acc_alpha: np.ndarray | None = None,
    alphas=(0.0, 0.5, 1.0),
) -> xr.Dataset:
    """``acc`` (pair, w_src, lpr_src, seed, sparsity); ``acc_alpha`` (pair, alpha, seed,
    sparsity)."""
    acc = np.asarray(acc, dtype=float)
    dims = ("pair", "w_src", "lpr_src", "seed", "sparsity")
    data = {"acc": (dims, acc), "diverged": (dims, np.isnan(acc))}
    coords = {
        "pair": list(pairs),
        "w_src": ["a", "b"],
        "lpr_src": ["a", "b"],
        "seed": np.arange(acc.shape[3]),
        "sparsity": np.asarray(sparsities, float),
        "a": ("pair", [p.split("->")[0] for p in pairs]),
        "b": ("pair", [p.split("->")[1] for p in pairs]),
    }
    if acc_alpha is not None:
        adims = ("pair", "alpha", "seed", "sparsity")
        acc_alpha = np.asarray(acc_alpha, dtype=float)
        data["acc_alpha"] = (adims, acc_alpha)
        data["diverged_alpha"] = (adims, np.isnan(acc_alpha))
        coords["alpha"] = np.asarray(alphas, float)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs = {"title": "synthetic: LPR transplants", "h_eval": "lr=0.03"}
    return ds


def cells(
    n_seeds: int,
    effects: dict[tuple[int, int], float],
    noise: float = 0.01,
    seed: int = 0,
    base: float = 0.9,
) -> np.ndarray:
    """(2, 2, n_seeds) transplant cells: base + per-seed offset + effect + noise."""
    rng = np.random.default_rng(seed)
    y = base + rng.normal(0, 0.02, n_seeds)[None, None, :] + rng.normal(0, noise, (2, 2, n_seeds))
    for (w, lp), e in effects.items():
        y[w, lp] += e
    return y


def example_results(n_seeds: int = 6, seed: int = 0) -> tuple[xr.Dataset, xr.Dataset]:
    """A small, complete (decoupled, transplant) pair with some real effects."""
    rng = np.random.default_rng(seed)
    n_f, n_s = len(FINDS), 2
    acc = 0.9 + rng.normal(0, 0.01, (n_f, 2, n_seeds, n_s))
    # coupled arm: decoupling effects 0.02, 0, -0.01 (decoupled - coupled) plus noise
    acc[:, 0] = acc[:, 1] - np.array([0.02, 0.0, -0.01])[:, None, None]
    acc[:, 0] += rng.normal(0, 0.002, (n_f, n_seeds, n_s))
    acc[1, 0] = acc[1, 1]  # lr=0.03: coupled and fixed H_eval are the same run
    find_acc = (
        0.95
        - np.array([0.0, 0.02, 0.05])[:, None, None]
        + rng.normal(0, 0.003, (n_f, n_seeds, n_s))
    )
    lpr = 0.8 + rng.normal(0, 0.01, (n_f, n_seeds, n_s, 2))
    lpr[2, :, :, 0] += 0.05
    dec = decoupled_ds(acc, sparsities=(0.5, 0.8), find_acc=find_acc, lpr=lpr)
    y = cells(n_seeds, {(0, 1): 0.03, (1, 1): 0.03}, seed=seed)
    alphas = (0.0, 0.25, 0.5, 1.0)
    dose = (
        y[0, 0][None, :]
        + 0.03 * np.array(alphas)[:, None]
        + rng.normal(0, 0.005, (len(alphas), n_seeds))
    )
    tp = transplant_ds(y[None, ..., None], acc_alpha=dose[None, ..., None], alphas=alphas)
    return dec, tp
