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

Across architectures (``cross``: the two runs have other prunable layers, e.g. other
widths or depths) only the target's weights can take both LPRs, so the design keeps the
cells of weights ``b``: (b, LPR a) with a's LPR matched onto b's layers by ``match``
(:mod:`lprcausal.pruning.matching`) and (b, LPR b); the dose-response prunes b's weights
at ``(1-alpha)*LPR_a + alpha*LPR_b`` and the controls are made on b's weights. The cells
of weights a do not exist (a's weights do not fit b's layers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from lprcausal.config import CONTROLS, EvalSpec, MaskSpec, TrainConfig
from lprcausal.errors import LprError, check_distinct
from lprcausal.pipeline import Context, FindRun
from lprcausal.pipeline.masks import (
    check_mask_kind,
    check_same_layers,
    check_same_structure,
    same_layers,
)
from lprcausal.pruning import matched_ratios
from lprcausal.results.schema import CROSS, FACTORIAL


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
    cross: bool = False  # other architectures: only the weights of b take both LPRs
    match: str = "name"  # cross only: how b's layers take a's ratios
    layer_map: str | None = None  # cross only, match "map": its canonical JSON

    def seeds(self) -> tuple[int, ...]:
        return self.eval_seeds if self.eval_seeds is not None else tuple(range(len(self.pairs)))

    @property
    def weights(self) -> tuple[int, ...]:
        """The runs (0 = a, 1 = b) whose weights take both LPRs."""
        return (1,) if self.cross else (0, 1)

    @property
    def design(self) -> str:
        """The recorded design of the pair (:data:`lprcausal.results.schema.DESIGNS`)."""
        return CROSS if self.cross else FACTORIAL

    def lpr_mask(self, **kw) -> MaskSpec:
        """A mask borrowing LPR, with the match rule when the LPR crosses architectures."""
        if self.cross:
            kw.update(match=self.match, layer_map=self.layer_map)
        return MaskSpec(**kw)


def cell_spec(design: TransplantDesign, pair: tuple[str, str], w: int, lp: int, s: float,
              seed: int) -> EvalSpec | None:
    """Cell (weights ``w``, LPR ``lp``); None for a cell the design does not have."""
    if w not in design.weights:
        return None
    mask = (MaskSpec(kind="transplant", lpr_from=pair[lp]) if w == lp
            else design.lpr_mask(kind="transplant", lpr_from=pair[lp]))
    return EvalSpec(find=pair[w], sparsity=s, train=design.train, mode=design.mode, seed=seed,
                    mask=mask)


def alpha_spec(design: TransplantDesign, pair, alpha: float, s: float, seed: int) -> EvalSpec:
    """Weights of a (of b across architectures) at ``(1-alpha)*LPR_a + alpha*LPR_b``."""
    mask = design.lpr_mask(kind="interp", lpr_from=pair[0], lpr_to=pair[1], alpha=alpha)
    return EvalSpec(find=pair[design.weights[0]], sparsity=s, train=design.train,
                    mode=design.mode, seed=seed, mask=mask)


def control_spec(design: TransplantDesign, pair, w: int, control: str, s: float,
                 seed: int) -> EvalSpec | None:
    if w not in design.weights:
        return None
    return EvalSpec(find=pair[w], sparsity=s, train=design.train, mode=design.mode, seed=seed,
                    mask=MaskSpec(kind=control, seed=seed))


def all_specs(design: TransplantDesign) -> list[EvalSpec]:
    """Every eval run of the design (cells, alphas, controls), in a fixed order."""
    out: list[EvalSpec | None] = []
    for pair, seed in zip(design.pairs, design.seeds(), strict=True):
        for s in design.sparsities:
            out += [cell_spec(design, pair, w, lp, s, seed) for w in (0, 1) for lp in (0, 1)]
            out += [alpha_spec(design, pair, a, s, seed) for a in design.alphas]
            out += [control_spec(design, pair, w, c, s, seed) for c in design.controls
                    for w in (0, 1)]
    return [spec for spec in out if spec is not None]


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
    check_distinct("--alpha", design.alphas)  # a repeat would be a duplicate coordinate
    check_distinct("--control", design.controls)
    check_distinct("--sparsity", design.sparsities)
    for a_id, b_id in design.pairs:
        a = FindRun(ctx.store, a_id, "source")
        b = FindRun(ctx.store, b_id, "target")
        a.require_engine("transplant")
        b.require_engine("transplant")
        check_same_structure(a, b)
        if design.cross:
            check_cross(a, b, design)
        else:
            check_same_layers(a, b)
        for c in design.controls:
            check_mask_kind(b, c)
        for s in design.sparsities:
            a.level(s, "sparsity")
            b.level(s, "sparsity")
        if a.spec.data != b.spec.data:
            raise LprError(
                f"Runs {a.id} and {b.id} were trained on different data "
                f"({a.spec.data.name} vs {b.spec.data.name}): expected the same dataset."
            )


def check_cross(a: FindRun, b: FindRun, design: TransplantDesign) -> None:
    """A cross-architecture pair: weight pruning, and every layer of b matched to a's."""
    if b.structured:
        raise LprError(
            f"Runs {a.id} and {b.id} prune units (prune.structure = 'unit') and have other "
            "prunable layers: a transplant across architectures is defined for weight "
            "pruning only. Expected two weight-pruning find runs, or the same architecture."
        )
    check_match(a.prunable, b.prunable, design)


def check_match(a_layers: Sequence[str], b_layers: Sequence[str], design: TransplantDesign
                ) -> None:
    """Every prunable layer of b matches a's under the design's rule (LprError listing
    the unmatched ones), checked from names alone before anything trains."""
    layer_map = json.loads(design.layer_map) if design.layer_map is not None else None
    matched_ratios(dict.fromkeys(a_layers, 0.0), list(b_layers), design.match, layer_map)


def crosses_architectures(store, pairs: Sequence[tuple[str, str]]) -> bool:
    """True when every pair's runs have other prunable layers (a cross-architecture
    design), False when every pair's have the same; LprError for a mix."""
    same = [same_layers(FindRun(store, a, "source"), FindRun(store, b, "target"))
            for a, b in pairs]
    if all(same) or not any(same):
        return not same[0] if same else False
    mixed = [f"{a[:8]}->{b[:8]}" for (a, b), ok in zip(pairs, same, strict=True) if not ok]
    raise LprError(
        f"Some source/target pairs have the same prunable layers and others not (pairs "
        f"{', '.join(mixed)} differ): expected every pair of one transplant to cross "
        "architectures the same way; transplant them separately."
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

