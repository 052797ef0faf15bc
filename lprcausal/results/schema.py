"""Names of the result Datasets: dimensions, role and arm labels, variable attrs.

``decoupled.nc``: ``acc(h_find, h_eval, seed, sparsity)`` with the design coords
``is_coupled(h_find, h_eval)`` (True where H_eval = H_find: the coupled run of that
H_find) and ``reference_h_find(h_eval)`` (the H_find each H_eval arm is compared
against; '' for the coupled arm), attr ``reference_h_eval`` when one fixed H_eval is
the decoupled arm (else every fixed H_eval is one) and ``design_notes`` (how
undeclared references were chosen).

``transplant.nc``: ``acc(pair, w_src, lpr_src, seed, sparsity)`` with roles ``a`` and
``b``, ``a(pair)`` / ``b(pair)`` the H_find labels of each pair, optionally
``acc_alpha(pair, alpha, seed, sparsity)`` and ``acc_control(pair, control, w_src,
seed, sparsity)``; attrs ``h_eval`` (label) and ``eval_mode``. The design of each
pair is the coordinate ``design(pair)``: ``factorial`` (weights from {a, b} x LPR from
{a, b}); ``cross_architecture`` (a and b have other prunable layers) or ``checkpoint``
(b is a checkpoint file from outside the store, ``lprcausal transplant --target CKPT
--model M --eval``: a is the run whose LPR it takes, its own LPR the checkpoint's global
magnitude one, and each cell is fine-tuned from the checkpoint), where only the weights
of b take both LPRs: the cells of weights a, and their controls, are absent and hold NaN
with ``diverged`` False and an empty run id. ``match(pair)`` is the rule that matched
b's layers to a's. A file without ``design`` is factorial throughout.
``mask_sparsity`` (same dims as ``acc``) is each cell's realized global sparsity, which
across architectures is what the matched per-layer counts add up to.
"""

from __future__ import annotations

# The H_eval label of the coupled arm (H_eval = the row's H_find).
COUPLED = "coupled"
# What `lprcausal stats` writes beside a study's results, computed from them: stale once
# the results change (a re-collected study removes them).
STATS_FILE, ANOVA_FILE, DOSE_FIT_FILE = "stats.nc", "anova.nc", "dose_fit.nc"
DERIVED_FILES = (STATS_FILE, ANOVA_FILE, DOSE_FIT_FILE)
# The two runs of a transplant pair: weights and LPR each come from a or b.
ROLES = ("a", "b")
# Display names of the multiple-comparison corrections stats.nc records.
CORRECTION_NAMES = {
    "holm": "Holm",
    "fdr_bh": "Benjamini-Hochberg",
    "bonferroni": "Bonferroni",
    "none": "none",
}
# The designs of a transplant pair (coordinate design(pair)).
FACTORIAL, CROSS, CHECKPOINT = "factorial", "cross_architecture", "checkpoint"
DESIGNS = (FACTORIAL, CROSS, CHECKPOINT)
# The roles whose weights take both LPRs in each design: readers key on this, not on
# the design's name, so every design of b's weights alone is read by the same code.
DESIGN_WEIGHTS = {FACTORIAL: ("a", "b"), CROSS: ("b",), CHECKPOINT: ("b",)}
# The transplant contrasts, in the order stats.nc records and figures show them.
CONTRASTS = ("TE", "NIE_a", "NIE_b", "NDE_a", "NDE_b", "INT")
DECOUPLED_DIMS = ("h_find", "h_eval", "seed", "sparsity")
TRANSPLANT_DIMS = ("pair", "w_src", "lpr_src", "seed", "sparsity")

ACC = {"long_name": "eval test accuracy (final epoch)", "units": "1"}
MASK_SPARSITY = {
    "long_name": "fraction of the weights' prunable set the cell's mask removes", "units": "1"
}
DESIGN = {
    "long_name": "transplant design of the pair: factorial, or cross_architecture or "
                 "checkpoint (only the weights of b take both LPRs)",
}
MATCH = {"long_name": "how b's layers took a's ratios (cross_architecture pairs)"}
VAL_ACC = {"long_name": "eval validation accuracy (final epoch)", "units": "1"}
DIVERGED = {"long_name": "run diverged (NaN/inf loss), or its find run did; accuracy is NaN"}
RUN_ID = {"long_name": "run id in the run store (empty: not trained, its find run diverged)"}
SEED = {"long_name": "replicate index"}
SPARSITY = {"long_name": "fraction of prunable weights removed", "units": "1"}
IS_COUPLED = {
    "long_name": "H_eval = H_find: this cell holds the coupled run of the H_find",
}
REFERENCE_H_FIND = {
    "long_name": "H_find each H_eval arm is compared against ('' for the coupled arm)",
}

HP_UNITS = {
    "lr": "1",
    "momentum": "1",
    "weight_decay": "1",
    "batch_size": "samples",
    "epochs": "epochs",
    "iterations": "steps",
    "gamma": "1",
    "beta1": "1",
    "beta2": "1",
    "eps": "1",
}


def pair_label(a: str, b: str) -> str:
    """The label of the transplant pair (a, b) along ``pair``: ``a->b``."""
    return f"{a}->{b}"
