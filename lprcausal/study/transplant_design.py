"""The transplant factorial: weights from {a, b} x LPR from {a, b}, plus dose-response and controls.

For find runs ``a`` and ``b`` (one pair per replicate), cell ``(w, l)`` is an eval run
that starts from run ``w``'s rewind point with the layerwise magnitude mask of ``w``'s
trained weights at ``l``'s LPR. The diagonal cells use the same procedure at the run's
own LPR, so all four cells differ only in the factor being varied. All cells of one
replicate share the eval seed (data order), so contrasts are paired.

``alpha`` cells (dose-response) prune run ``a``'s weights at
``(1-alpha)*LPR_a + alpha*LPR_b``; control cells prune ``a`` and ``b`` with a control
mask (``shuffle``, ``random``, ``uniform``, ``erk``, ``lamp``) at the same sparsity.

Structured find runs (``prune.structure = "unit"``, both runs of a pair) transplant
unit fractions instead: cell ``(w, l)`` prunes ``w``'s units layerwise by unit score at
``l``'s exact per-layer unit counts; ``random`` / ``shuffle`` controls take random units at
the same counts and ``uniform`` the same unit fraction in every unit layer
(see :mod:`lprcausal.pipeline.masks`); ``erk`` and ``lamp`` are not defined for units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lprcausal.config import CONTROLS, EvalSpec, MaskSpec, TrainConfig
from lprcausal.errors import LprError
from lprcausal.pipeline import Context, FindRun
from lprcausal.pipeline.masks import check_mask_kind, check_same_layers, check_same_structure


@dataclass(frozen=True)
class TransplantDesign:
    """What to evaluate: replicate pairs of find run ids, levels, H_eval and extras."""

    pairs: tuple[tuple[str, str], ...]
    sparsities: tuple[float, ...]
    train: TrainConfig
    mode: str = "rewind"
    alphas: tuple[float, ...] = ()
    controls: tuple[str, ...] = ()
    eval_seeds: tuple[int, ...] | None = None
    names: tuple[str, str] = field(default=("a", "b"))  # the H_find labels of a and b

    def seeds(self) -> tuple[int, ...]:
        return self.eval_seeds if self.eval_seeds is not None else tuple(range(len(self.pairs)))


def cell_spec(design: TransplantDesign, pair: tuple[str, str], w: int, lp: int, s: float,
              seed: int) -> EvalSpec:
    return EvalSpec(find=pair[w], sparsity=s, train=design.train, mode=design.mode, seed=seed,
                    mask=MaskSpec(kind="transplant", lpr_from=pair[lp]))


def alpha_spec(design: TransplantDesign, pair, alpha: float, s: float, seed: int) -> EvalSpec:
    return EvalSpec(find=pair[0], sparsity=s, train=design.train, mode=design.mode, seed=seed,
                    mask=MaskSpec(kind="interp", lpr_from=pair[0], lpr_to=pair[1], alpha=alpha))


def control_spec(design: TransplantDesign, pair, w: int, control: str, s: float,
                 seed: int) -> EvalSpec:
    return EvalSpec(find=pair[w], sparsity=s, train=design.train, mode=design.mode, seed=seed,
                    mask=MaskSpec(kind=control, seed=seed))


def all_specs(design: TransplantDesign) -> list[EvalSpec]:
    """Every eval run of the design (cells, alphas, controls), in a fixed order."""
    out = []
    for pair, seed in zip(design.pairs, design.seeds(), strict=True):
        for s in design.sparsities:
            out += [cell_spec(design, pair, w, lp, s, seed) for w in (0, 1) for lp in (0, 1)]
            out += [alpha_spec(design, pair, a, s, seed) for a in design.alphas]
            out += [control_spec(design, pair, w, c, s, seed) for c in design.controls
                    for w in (0, 1)]
    return out


def check_design(ctx: Context, design: TransplantDesign) -> None:
    """Every bad input is reported before anything trains."""
    if not design.pairs:
        raise LprError("The transplant has no source/target pair: expected at least one.")
    if len(design.seeds()) != len(design.pairs):
        raise LprError(
            f"--eval-seed gives {len(design.seeds())} seeds for {len(design.pairs)} run pairs: "
            "expected one eval seed per pair."
        )
    for a in design.alphas:
        if not 0 <= a <= 1:
            raise LprError(f"alpha = {a!r} is not valid: expected 0 <= alpha <= 1.")
    for c in design.controls:
        if c not in CONTROLS:
            raise LprError(
                f"control = {c!r} is not known: expected one of {', '.join(CONTROLS)}."
            )
    for a_id, b_id in design.pairs:
        a = FindRun(ctx.store, a_id, "source")
        b = FindRun(ctx.store, b_id, "target")
        a.require_engine("transplant")
        b.require_engine("transplant")
        check_same_layers(a, b)
        check_same_structure(a, b)
        for c in design.controls:
            check_mask_kind(a, c)
        for s in design.sparsities:
            a.level(s, "sparsity")
            b.level(s, "sparsity")
        if a.spec.data != b.spec.data:
            raise LprError(
                f"Runs {a.id} and {b.id} were trained on different data "
                f"({a.spec.data.name} vs {b.spec.data.name}): expected the same dataset."
            )


def pair_runs(store, sources: Sequence[str], targets: Sequence[str]) -> list[tuple[str, str]]:
    """Pair source and target find runs by replicate seed (or one-to-one when single)."""
    a = [FindRun(store, store.resolve(r, "source"), "source") for r in sources]
    b = [FindRun(store, store.resolve(r, "target"), "target") for r in targets]
    if len(a) == 1 and len(b) == 1:
        return [(a[0].id, b[0].id)]
    by_seed_b = {r.spec.seed: r for r in b}
    if len(by_seed_b) != len(b) or len({r.spec.seed for r in a}) != len(a):
        raise LprError("Each source and target group must hold one run per seed.")
    missing = [r.spec.seed for r in a if r.spec.seed not in by_seed_b]
    if missing:
        raise LprError(
            f"Source runs with seeds {missing} have no target run of the same seed: target "
            f"seeds are {sorted(by_seed_b)}; expected the same seeds in both groups."
        )
    return [(r.id, by_seed_b[r.spec.seed].id) for r in sorted(a, key=lambda r: r.spec.seed)]

