"""One transplant design outside a study file (``lprcausal transplant``, the Python API).

It trains the same eval runs as a study's ``[transplant]`` table (the cells of
:func:`lprcausal.study.transplant_design.all_specs`) and collects them with the same code, so its
Dataset is the ``transplant.nc`` a study with this one pair writes, labels included.
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from lprcausal.config import TrainConfig
from lprcausal.pipeline import Context, FindRun, ensure_evals
from lprcausal.results.schema import pair_label
from lprcausal.study.collect import RunReader, provenance_attrs, setup_attrs, transplant_dataset
from lprcausal.study.spec import differing_fields, fixed_eval_label, make_label, model_label
from lprcausal.study.transplant_design import TransplantDesign, all_specs, check_design


def run_design(ctx: Context, design: TransplantDesign, command: str = "") -> xr.Dataset:
    """Check ``design``, train its missing cells (fused) and return its transplant Dataset."""
    check_design(ctx, design)
    ensure_evals(ctx, all_specs(design))
    a, b = (FindRun(ctx.store, r).spec for r in design.pairs[0])
    attrs = {
        **provenance_attrs(command or "lprcausal transplant"),
        **setup_attrs(a.data, a.model, a.prune),
        "title": f"LPR transplant {pair_label(*design.names)}",
    }
    return transplant_dataset([design], RunReader(ctx.store, set()), attrs,
                              h_eval_label(design.train, a.train, b.train))


def h_eval_label(h_eval: TrainConfig, a: TrainConfig, b: TrainConfig) -> str:
    """The label a study gives a fixed H_eval whose H_find grid holds ``a`` and ``b``."""
    return fixed_eval_label(h_eval, a, differing_fields(a, b))[0]


def pair_names(
    store, pairs: Sequence[tuple[str, str]], sources: Sequence[str], targets: Sequence[str]
) -> tuple[str, str]:
    """H_find labels of a and b: the fields of the model (``widths=16+8``, as a study's
    [model.grid] labels them) and of H (``lr=0.1``, as a study labels its grid) that tell
    them apart; the run references as given when neither differs."""
    a_h = {FindRun(store, a).spec.train for a, _ in pairs}
    b_h = {FindRun(store, b).spec.train for _, b in pairs}
    a_m = {FindRun(store, a).spec.model for a, _ in pairs}
    b_m = {FindRun(store, b).spec.model for _, b in pairs}
    if len(a_h) == 1 and len(b_h) == 1 and len(a_m) == 1 and len(b_m) == 1:
        a, b = a_h.pop(), b_h.pop()
        ma, mb = a_m.pop(), b_m.pop()
        fields = differing_fields(a, b)
        labels = [model_label(ma, mb), model_label(mb, ma)]
        labels = [",".join(x for x in (m, make_label(h, fields)) if x)
                  for m, h in zip(labels, (a, b), strict=True)]
        if labels[0] and labels[1] and labels[0] != labels[1]:
            return labels[0], labels[1]
    names = ",".join(sources), ",".join(targets)
    return names if names[0] != names[1] else ("a", "b")
