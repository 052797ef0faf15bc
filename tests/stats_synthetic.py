"""Synthetic study results with the schema of lprcausal.results, for the stats tests.

Labels look like the study's (``lr=0.03``); the design (which H_eval has the H of which
H_find, the references) is recorded by the builders ``lprcausal.study.collect`` uses.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from lprcausal.results import build

FINDS = ("lr=0.01", "lr=0.03", "lr=0.1")
EVALS = ("coupled", "lr=0.03")


def config(label: str) -> str:
    """The H a label names (its own text when it names none, e.g. 'coupled', 'fixed')."""
    if "=" not in label:
        return label
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
    # configs=False: H told apart by label only (a fixed H_eval 'fixed' has no H_find's H)
    same = np.array([[(config(f) == config(e)) if configs else f == e for e in evals]
                     for f in finds], dtype=bool)
    attrs = dict(attrs or {})
    design, design_attrs = build.decoupled_design(
        list(finds), list(evals), same,
        reference_h_find=attrs.pop("reference_h_find", None),
        reference_h_eval=attrs.pop("reference_h_eval", None),
    )
    ds = xr.Dataset(data, coords=coords).assign_coords(design)
    ds.attrs = {"title": "synthetic: decoupled find/eval", **attrs, **design_attrs}
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
    ds = build.transplant_dataset(
        [tuple(p.split("->")) for p in pairs],
        np.arange(acc.shape[3]),
        sparsities,
        {"acc": acc},
        alphas=alphas if acc_alpha is not None else (),
        alpha_cells={"acc": acc_alpha} if acc_alpha is not None else None,
        attrs={"title": "synthetic: LPR transplants", "h_eval": "lr=0.03"},
    )
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
