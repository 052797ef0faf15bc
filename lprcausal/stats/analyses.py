"""Dataset-level analyses: the default tests, run on study result Datasets.

Inputs are the study's xarray Datasets (schema: :mod:`lprcausal.results.schema`):

- decoupled: ``acc(h_find, h_eval, seed, sparsity)`` (``h_eval`` may hold the label
  ``coupled``), ``find_acc(h_find, seed, sparsity)``, ``lpr(h_find, seed, sparsity,
  layer)`` and the recorded design (coupled cells, reference arms; see
  :func:`decoupled_design`);
- transplant: ``acc(pair, w_src, lpr_src, seed, sparsity)`` with ``w_src`` /
  ``lpr_src`` labels ``a`` and ``b``, optionally ``acc_alpha(pair, alpha, seed,
  sparsity)``.

Every test function returns :class:`TestRecord` objects whose ``coords`` say which
slice was tested and whose ``family`` names the multiple-comparison family
(:data:`FAMILIES`); :func:`correct` then adjusts each family's flattened p-values.
Seeds pair the arms: differences are taken within a seed, and a seed missing in one
arm (a diverged run, NaN) drops that pair only, with the count in the record's note.
Functions are pure: problems that still let an analysis run come back as warning
strings, and input that cannot be analysed raises :class:`LprError`.

The tests live in :mod:`~lprcausal.stats.decoupling` and
:mod:`~lprcausal.stats.transplants` (input checks in :mod:`~lprcausal.stats.schema`);
this module declares the families and gathers the public names.
"""

from __future__ import annotations

from dataclasses import dataclass

from lprcausal.errors import LprError
from lprcausal.stats.decoupling import (
    OMNIBUS_PERMUTATIONS,
    DecoupledDesign,
    decoupled_design,
    decoupling_tests,
    lpr_omnibus,
    lpr_tests,
)
from lprcausal.stats.defaults import DEFAULT_LEVEL, DEFAULT_TOST_MARGIN
from lprcausal.stats.multiple import adjust_records
from lprcausal.stats.records import NAN, TestRecord
from lprcausal.stats.schema import diverged_summary
from lprcausal.stats.transplants import (
    anova_dataset,
    b_only_notes,
    control_contrast_tests,
    dose_fit,
    dose_response_tests,
    mediation_analysis,
)

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_TOST_MARGIN",
    "FAMILIES",
    "OMNIBUS_PERMUTATIONS",
    "DecoupledDesign",
    "Family",
    "anova_dataset",
    "control_contrast_tests",
    "correct",
    "b_only_notes",
    "decoupled_design",
    "decoupling_tests",
    "diverged_summary",
    "dose_fit",
    "dose_response_tests",
    "lpr_omnibus",
    "lpr_tests",
    "mediation_analysis",
]


@dataclass(frozen=True)
class Family:
    """A multiple-comparison family: its correction, why, and what it tests."""

    correction: str  # "holm", "fdr_bh" or "none" (estimates without p-values)
    kind: str
    description: str


FAMILIES: dict[str, Family] = {
    "decoupled_vs_coupled": Family(
        "fdr_bh",
        "exploratory",
        "eval accuracy of each H_find's mask retrained with the fixed H_eval (decoupled) "
        "minus retrained with its own H_find (coupled), paired by seed; grid H_find x "
        "H_eval x sparsity",
    ),
    "h_find_vs_reference": Family(
        "fdr_bh",
        "exploratory",
        "eval accuracy (same fixed H_eval) of each H_find's mask minus the reference "
        "H_find's mask, paired by seed; grid H_find x H_eval x sparsity",
    ),
    "find_eval_ranking": Family(
        "holm",
        "pre-registered",
        "Spearman rho over H_find between mean find accuracy and mean eval accuracy with "
        "the fixed H_eval; negative: worse find models give better masks",
    ),
    "find_eval_ranking_kendall": Family(
        "holm",
        "robustness check",
        "Kendall tau-b over H_find, same question as find_eval_ranking",
    ),
    "mediation": Family(
        "holm",
        "pre-registered",
        "is the effect of H_find carried by the LPR? One paired t test per pair of NIE = "
        "(NIE_a + NIE_b) / 2, NIE_w = Y(w,b) - Y(w,a) (LPR of b instead of a, weights w "
        "fixed), each seed's NIE averaged over the transplant's sparsities; Y(w,l) = acc "
        "of the weights of w at the LPR of l, a = source, b = target. A pair where only b's "
        "weights take both LPRs (cross-architecture, checkpoint) tests NIE_b = Y(b,b) - "
        "Y(b,a) instead",
    ),
    "mediation_contrasts": Family(
        "fdr_bh",
        "exploratory",
        "per pair and sparsity, paired by seed: NIE; TE = Y(b,b)-Y(a,a); NIE_a, NIE_b; "
        "NDE_l = Y(b,l)-Y(a,l) (weights effect, LPR l fixed); INT = NIE_b-NIE_a. They span "
        "3 degrees of freedom (NIE, NDE, INT): TE = NIE_b + NDE_a = NIE_a + NDE_b",
    ),
    "control_contrasts": Family(
        "fdr_bh",
        "exploratory",
        "per pair, sparsity and control mask, paired by seed: Y(w,l) - c(w), a transplant "
        "cell minus control c (shuffle, random, uniform, erk, lamp at the same sparsity) on "
        "the same weights w",
    ),
    "proportion_mediated": Family(
        "none",
        "estimate only",
        "mean NIE / mean TE with NIE = (NIE_a + NIE_b) / 2 and Fieller's interval, "
        "reported only when the TE interval excludes 0",
    ),
    "direct_effect_equivalence": Family(
        "holm",
        "pre-registered",
        "TOST equivalence of the weights' direct effect: p < alpha shows |NDE| < margin",
    ),
    "dose_response": Family(
        "holm",
        "pre-registered",
        "weights of a (of b in a pair of b's weights alone) pruned at the LPR (1-alpha)*LPR_a + "
        "alpha*LPR_b: Page's trend test "
        "(seeds as blocks) and the t test of per-seed OLS slopes over alpha",
    ),
    "lpr_layers": Family(
        "fdr_bh",
        "exploratory",
        "per-layer pruning ratio of each H_find's mask minus the reference H_find's, "
        "paired by seed; grid H_find x layer x sparsity",
    ),
    "lpr_omnibus": Family(
        "holm",
        "pre-registered",
        "does the LPR vector depend on H_find? sum over H_find pairs of the L1 distance "
        "between mean LPR vectors; H_find labels permuted within each seed",
    ),
}


def correct(records: list[TestRecord]) -> list[TestRecord]:
    """Adjust p-values per family (:data:`FAMILIES`), over each family's flattened grid.

    Families marked "none" keep ``p_adj`` NaN and ``correction`` "none". Returns the
    same list.
    """
    by_family: dict[str, list[TestRecord]] = {}
    for rec in records:
        by_family.setdefault(rec.family, []).append(rec)
    for family, recs in by_family.items():
        if family not in FAMILIES:
            raise LprError(
                f"test family {family!r} is not declared: expected one of {sorted(FAMILIES)}."
            )
        method = FAMILIES[family].correction
        if method == "none":
            for rec in recs:
                rec.correction, rec.p_adj = "none", NAN
        else:
            adjust_records(recs, family, method)
    return records
