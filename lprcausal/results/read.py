"""The design a result Dataset records, read back: coupled cells, arms, references of a
decoupled Dataset; the design of each transplant pair.

Readers call :func:`lprcausal.results.check.check_decoupled` first; nothing here
guesses the design from labels or configs.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from lprcausal.results.check import labels
from lprcausal.results.schema import CHECKPOINT, COUPLED, CROSS, DESIGN_WEIGHTS, FACTORIAL


def fixed_evals(ds: xr.Dataset) -> list[str]:
    """The H_eval labels other than the coupled arm."""
    return [e for e in labels(ds, "h_eval") if e != COUPLED]


def eval_arms(ds: xr.Dataset) -> list[str]:
    """The fixed H_eval the decoupling tests use: attr ``reference_h_eval``, else all."""
    declared = ds.attrs.get("reference_h_eval")
    return [str(declared)] if declared is not None else fixed_evals(ds)


def coupled_labels(ds: xr.Dataset) -> dict[str, str]:
    """H_find -> the H_eval label holding its coupled run (the ``coupled`` arm, else a
    fixed H_eval with the same H); H_find without one are left out."""
    evals = labels(ds, "h_eval")
    flags = ds["is_coupled"].transpose("h_find", "h_eval").values
    out = {}
    for f, row in zip(labels(ds, "h_find"), flags, strict=True):
        hits = [e for e, hit in zip(evals, row, strict=True) if hit]
        if hits:
            out[f] = COUPLED if COUPLED in hits else hits[0]
    return out


def same_runs(ds: xr.Dataset) -> frozenset[tuple[str, str]]:
    """(H_find, fixed H_eval) cells whose H are equal: the decoupled run is the coupled one."""
    flags = ds["is_coupled"].transpose("h_find", "h_eval").values
    return frozenset(
        (f, e)
        for f, row in zip(labels(ds, "h_find"), flags, strict=True)
        for e, hit in zip(labels(ds, "h_eval"), row, strict=True)
        if hit and e != COUPLED
    )


def reference_h_find(ds: xr.Dataset) -> dict[str, str]:
    """Fixed H_eval -> the H_find its arm is compared against."""
    refs = ds["reference_h_find"].values
    return {e: str(r) for e, r in zip(labels(ds, "h_eval"), refs, strict=True) if e != COUPLED}


def design_notes(ds: xr.Dataset) -> list[str]:
    """How the producer chose references that the study did not declare."""
    text = str(ds.attrs.get("design_notes", ""))
    return [line for line in text.split("\n") if line]


def coupled_acc(ds: xr.Dataset) -> xr.DataArray | None:
    """Accuracy with H_eval = H_find as ``(h_find, seed, sparsity)`` (NaN for an H_find
    without a coupled run); None when no H_find has one."""
    coupled = coupled_labels(ds)
    if not coupled:
        return None
    acc = ds["acc"].transpose("h_find", "h_eval", "seed", "sparsity")
    # Rows come from different H_eval: their H_eval coords (eval_lr, ...) are dropped.
    rows = [
        acc.sel(h_find=f, h_eval=coupled[f]).reset_coords(drop=True)
        if f in coupled
        else xr.full_like(acc.isel(h_find=0, h_eval=0).reset_coords(drop=True), np.nan)
        for f in labels(ds, "h_find")
    ]
    out = xr.concat(rows, dim="h_find").assign_coords(h_find=ds["h_find"].values)
    keep = {k: v for k, v in ds["h_find"].coords.items() if k != "h_find" and v.dims == ("h_find",)}
    return out.assign_coords(keep)


def pair_design(tds: xr.Dataset, pair: str) -> str:
    """The design of transplant pair ``pair``: one of
    :data:`~lprcausal.results.schema.DESIGNS` (files without a ``design`` coordinate are
    factorial)."""
    if "design" not in tds.coords:
        return FACTORIAL
    return str(tds["design"].sel(pair=pair).values)


def weight_roles(tds: xr.Dataset, pair: str) -> tuple[str, ...]:
    """The roles whose weights take both LPRs in ``pair``: ("a", "b"), or ("b",) when
    only b's weights are in the design (across architectures, onto a checkpoint)."""
    return DESIGN_WEIGHTS[pair_design(tds, pair)]


def b_only(tds: xr.Dataset, pair: str) -> bool:
    """True when only the weights of b take both LPRs in ``pair``: the cells of weights a
    are absent, and of the contrasts only NIE_b is defined."""
    return weight_roles(tds, pair) == ("b",)


def b_only_pairs(tds: xr.Dataset) -> list[str]:
    """The pairs whose design has the weights of b alone."""
    return [p for p in labels(tds, "pair") if b_only(tds, p)]


# Why a design has the weights of b alone: (a few words, the reason).
_WHY_B_ONLY = {
    CROSS: ("cross-architecture",
            "a and b are different architectures, so a's weights cannot take b's LPR"),
    CHECKPOINT: ("checkpoint",
                 "b is a checkpoint from outside the store, pruned at the LPR of run a and at "
                 "its own global magnitude LPR, and a's weights are not in the design"),
}
_ABSENT = (
    ": the cells of weights a are absent and only NIE_b = Y(b,b) - Y(b,a) and the control "
    "contrasts on b's weights are defined (TE, NIE_a, NDE_a, NDE_b, INT, the mean NIE, the "
    "proportion mediated, the NDE equivalence tests and the 2x2 ANOVA need them)"
)


def b_only_kind(tds: xr.Dataset, pair: str) -> str:
    """A few words naming why ``pair`` has b's weights alone (``cross-architecture``,
    ``checkpoint``), for notes and titles."""
    return _WHY_B_ONLY[pair_design(tds, pair)][0]


def b_only_reason(tds: xr.Dataset, pair: str) -> str:
    """Why ``pair`` has b's weights alone, and which contrasts that leaves."""
    return _WHY_B_ONLY[pair_design(tds, pair)][1] + _ABSENT
