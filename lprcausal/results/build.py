"""Builders of the result Datasets from plain arrays: the one place their layout is made.

``lprcausal.study.collect`` fills them from the run store; tests fill them with
synthetic numbers. Either way the Dataset has the schema of
:mod:`lprcausal.results.schema`, design included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from lprcausal.results.schema import (
    ACC,
    COUPLED,
    DESIGN,
    DESIGN_WEIGHTS,
    DESIGNS,
    DIVERGED,
    FACTORIAL,
    IS_COUPLED,
    MASK_SPARSITY,
    MATCH,
    REFERENCE_H_FIND,
    ROLES,
    RUN_ID,
    SEED,
    SPARSITY,
    TRANSPLANT_DIMS,
    VAL_ACC,
    pair_label,
)

# The cells of one kind: "acc" and, when known, "val_acc", "diverged", "run_id".
Cells = Mapping[str, np.ndarray]


def decoupled_design(
    finds: Sequence[str],
    evals: Sequence[str],
    same_h: np.ndarray,
    *,
    reference_h_find: str | None = None,
    reference_h_eval: str | None = None,
) -> tuple[dict, dict]:
    """Design coords and attrs of a decoupled Dataset: which cells are coupled, and
    which arms the decoupling tests compare against.

    ``same_h[i, j]``: H_find ``finds[i]`` and H_eval ``evals[j]`` are the same H (read
    for fixed H_eval only). Reference H_eval: ``reference_h_eval``, else the only fixed
    H_eval, else none (every fixed H_eval is a decoupled arm of its own). Reference
    H_find of an H_eval arm: ``reference_h_find``, else the H_find with that H_eval's H
    (the usual coupled practice), else the first H_find, noted in ``design_notes``.
    Returns (coords ``is_coupled(h_find, h_eval)``, ``reference_h_find(h_eval)``;
    attrs ``reference_h_eval``, ``design_notes``).
    """
    same = np.asarray(same_h, dtype=bool).reshape(len(finds), len(evals))
    fixed = [e for e in evals if e != COUPLED]
    notes: list[str] = []
    is_coupled = np.array([[e == COUPLED or bool(same[i, j]) for j, e in enumerate(evals)]
                           for i in range(len(finds))], dtype=bool).reshape(same.shape)
    references = []
    for j, e in enumerate(evals):
        if e == COUPLED:
            references.append("")
        elif reference_h_find is not None:
            references.append(reference_h_find)
        else:
            match = [f for i, f in enumerate(finds) if same[i, j]]
            references.append(match[0] if match else finds[0])
            if not match and len(finds) > 1:
                notes.append(
                    f"no reference H_find declared and none has the H of H_eval {e!r}: "
                    f"using the first H_find, {finds[0]!r}, as reference"
                )
    attrs: dict = {}
    if reference_h_eval is None and len(fixed) == 1:
        reference_h_eval = fixed[0]
    if reference_h_eval is not None:
        attrs["reference_h_eval"] = reference_h_eval
    elif len(fixed) > 1:
        notes.append(
            f"no reference H_eval declared: each of the {len(fixed)} fixed H_eval is tested "
            "as a decoupled arm (column h_eval)"
        )
    if notes:
        attrs["design_notes"] = "\n".join(notes)
    coords = {
        "is_coupled": (("h_find", "h_eval"), is_coupled, IS_COUPLED),
        "reference_h_find": ("h_eval", np.array(references, dtype=object).astype(str),
                             REFERENCE_H_FIND),
    }
    return coords, attrs


def transplant_dataset(
    pairs: Sequence[tuple[str, str]],
    seeds: Sequence[int],
    sparsities: Sequence[float],
    cells: Cells,
    *,
    alphas: Sequence[float] = (),
    alpha_cells: Cells | None = None,
    controls: Sequence[str] = (),
    control_cells: Cells | None = None,
    attrs: Mapping | None = None,
    designs: Sequence[str] | None = None,
    matches: Sequence[str] | None = None,
) -> xr.Dataset:
    """The transplant Dataset of H_find label pairs ``(a, b)``.

    ``cells`` are (pair, w_src, lpr_src, seed, sparsity); ``alpha_cells`` (pair, alpha,
    seed, sparsity); ``control_cells`` (pair, control, w_src, seed, sparsity). Each may
    hold ``mask_sparsity``. ``designs`` (one of :data:`DESIGNS` per pair; default all
    factorial) and ``matches`` (the match rule per pair) become ``design(pair)`` and
    ``match(pair)``; the cells a design of b's weights alone lacks must be NaN.
    """
    designs = list(designs) if designs is not None else [FACTORIAL] * len(pairs)
    for d in designs:
        if d not in DESIGNS:
            raise ValueError(f"design {d!r} is not one of {DESIGNS}")
    data: dict = {}
    _add(data, "", TRANSPLANT_DIMS, cells,
         "eval accuracy of the weights of w_src pruned at the LPR of lpr_src")
    coords: dict = {
        "pair": ("pair", [pair_label(a, b) for a, b in pairs], {"long_name": "H_find pair 'a->b'"}),
        "a": ("pair", [a for a, _ in pairs], {"long_name": "H_find a"}),
        "b": ("pair", [b for _, b in pairs], {"long_name": "H_find b"}),
        "w_src": ("w_src", list(ROLES), {"long_name": "run whose trained weights are pruned"}),
        "lpr_src": ("lpr_src", list(ROLES), {"long_name": "run whose LPR is imposed"}),
        "seed": ("seed", np.array(seeds, dtype=np.int64), SEED),
        "sparsity": ("sparsity", np.array(sparsities, dtype=float), SPARSITY),
        "design": ("pair", designs, DESIGN),
        "match": ("pair", list(matches) if matches is not None else ["name"] * len(pairs),
                  MATCH),
    }
    if alphas:
        assert alpha_cells is not None
        dosed = {"a" if d == FACTORIAL else "b" for d in designs}
        whose = "a" if dosed == {"a"} else "b" if dosed == {"b"} else (
            "a (b for pairs of b's weights alone)")
        _add(data, "_alpha", ("pair", "alpha", "seed", "sparsity"), alpha_cells,
             f"eval accuracy of weights {whose} at LPR (1-alpha)*LPR_a + alpha*LPR_b")
        coords["alpha"] = (
            "alpha",
            np.array(alphas, dtype=float),
            {"long_name": "interpolation weight toward the LPR of b", "units": "1"},
        )
    if controls:
        assert control_cells is not None
        _add(data, "_control", ("pair", "control", "w_src", "seed", "sparsity"), control_cells,
             "eval accuracy of the weights of w_src with a control mask at the same sparsity")
        coords["control"] = ("control", list(controls), {"long_name": "control mask kind"})
    ds = xr.Dataset(data, coords=coords)
    for i, d in enumerate(designs):  # cells a design lacks: NaN, not diverged
        absent = {"pair": i, "w_src": [k for k, r in enumerate(ROLES)
                                        if r not in DESIGN_WEIGHTS[d]]}
        for suffix in ("", "_control"):
            if "acc" + suffix not in ds or not absent["w_src"]:
                continue
            if np.isfinite(ds["acc" + suffix][absent].values).any():
                raise ValueError(f"pair {i} is {d} but has cells of weights it lacks")
            ds["diverged" + suffix][absent] = False
    ds.attrs = dict(attrs or {})
    return ds


def _add(data: dict, suffix: str, dims: tuple, cells: Cells, long_name: str) -> None:
    data["acc" + suffix] = (dims, np.asarray(cells["acc"], dtype=float),
                            {**ACC, "long_name": long_name})
    if "val_acc" in cells:
        data["val_acc" + suffix] = (dims, cells["val_acc"], VAL_ACC)
    if "mask_sparsity" in cells:
        data["mask_sparsity" + suffix] = (dims, np.asarray(cells["mask_sparsity"], dtype=float),
                                          MASK_SPARSITY)
    diverged = cells["diverged"] if "diverged" in cells else np.isnan(data["acc" + suffix][1])
    data["diverged" + suffix] = (dims, diverged, DIVERGED)
    if "run_id" in cells:
        data["run_id" + suffix] = (dims, np.asarray(cells["run_id"]).astype(str), RUN_ID)
