"""Transplant pairs chosen by a rule from an earlier study's decoupled results.

A mediation study should not pick its transplant pairs by hand after looking at the
data. ``[transplant] pairs_from`` states the rule in the spec instead, before the
transplant runs exist, and this module applies it to the decoupled results of the
earlier study (``decoupled.nc``):

``rule = "largest_decoupling"``, ``per = "hyperparameter"``: the H_find points of this
study are grouped by the one field in which each differs from the reference H_find of
the fixed H_eval (``lr``, ``batch_size``, ...; the reference belongs to every group).
Within a group, every unordered pair ``{x, y}`` gets its *decoupling effect*: the
per-seed difference of eval **validation** accuracy with that one fixed H_eval, averaged
over the transplant's sparsities, then over the seeds where both are finite. That is the
total effect ``TE`` the transplant decomposes, measured where choosing is allowed: test
accuracy never selects anything (the mediation study reuses the same seeds and runs, so
a pair chosen on test would carry its selection bias into the reported effects). The
pair with the largest ``|effect|`` is chosen (the first in spec order on a tie), oriented
so that ``b`` has the higher accuracy (``a`` = source, ``TE > 0``). Groups keep the
order of their first point.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lprcausal.errors import LprError

RULES = ("largest_decoupling",)
PER = ("hyperparameter",)
PAIRS_FROM_KEYS = ("decoupled", "rule", "per")


@dataclass(frozen=True)
class PickedPair:
    """One chosen pair: the field it varies, a (source) and b, and the numbers behind it."""

    group: str
    a: str
    b: str
    effect: float  # mean over seeds of val_acc(b) - val_acc(a), fixed H_eval and sparsities
    n_seeds: int
    candidates: int  # pairs compared within the group

    def describe(self) -> str:
        return (
            f"{self.group}: {self.a} -> {self.b}, decoupled eval validation accuracy "
            f"{self.effect:+.4f} over {self.n_seeds} seeds (largest of {self.candidates} pairs)"
        )


def parse_pairs_from(value: Any, source: str) -> tuple[Path, str, str]:
    """``pairs_from`` as (decoupled.nc path, rule, per); the path is relative to the
    study file's folder (the working directory for a spec without a file)."""
    if not isinstance(value, dict):
        raise LprError(
            f"transplant.pairs_from = {value!r} has the wrong type: expected a table "
            '{decoupled = "results/<study>/decoupled.nc", rule = "largest_decoupling", '
            'per = "hyperparameter"}.'
        )
    for key in value:
        if key not in PAIRS_FROM_KEYS:
            raise LprError(
                f"unknown key 'transplant.pairs_from.{key}': valid keys are "
                f"{', '.join(PAIRS_FROM_KEYS)}."
            )
    for key, valid in (("rule", RULES), ("per", PER)):
        if value.get(key) not in valid:
            raise LprError(
                f"transplant.pairs_from.{key} = {value.get(key)!r} is not valid: expected "
                f"one of {', '.join(map(repr, valid))} (written in the file, so the rule is "
                "fixed before the transplant results exist)."
            )
    path = value.get("decoupled")
    if not isinstance(path, str) or not path:
        raise LprError(
            f"transplant.pairs_from.decoupled = {path!r} is not valid: expected the path "
            "of the earlier study's decoupled.nc, relative to this study file."
        )
    base = Path(source).resolve().parent if Path(source).is_file() else Path.cwd()
    return base / path, value["rule"], value["per"]


def pick_pairs(
    path: Path,
    h_find: tuple,
    h_eval: str,
    sparsities: tuple[float, ...],
) -> tuple[PickedPair, ...]:
    """Apply ``largest_decoupling`` per hyperparameter (module doc) to ``path``.

    ``h_find``: this study's H_find points (labels and TrainConfigs define the groups);
    ``h_eval``: the fixed H_eval label whose accuracies are compared (it must exist in
    the file); ``sparsities``: the transplant's sparsities (averaged per seed).
    """
    from lprcausal.results.check import check_decoupled, labels
    from lprcausal.results.io import load_dataset
    from lprcausal.results.read import reference_h_find
    from lprcausal.study.spec import differing_fields

    if not path.is_file():
        raise LprError(
            f"transplant.pairs_from.decoupled = {str(path)!r} does not exist: run the "
            "study that writes it first (its pairs are chosen from its results)."
        )
    ds = load_dataset(path)
    check_decoupled(ds)
    finds, evals = labels(ds, "h_find"), labels(ds, "h_eval")
    if h_eval not in evals:
        raise LprError(
            f"transplant H_eval {h_eval!r} is not an h_eval of {path.name} ({', '.join(evals)}): "
            "expected the same fixed H_eval label in both studies."
        )
    missing = [p.label for p in h_find if p.label not in finds]
    if missing:
        raise LprError(
            f"H_find {', '.join(missing)} of this study are not in {path.name} "
            f"({', '.join(finds)}): expected the same H_find points in both studies."
        )
    ref_label = reference_h_find(ds)[h_eval]
    points = {p.label: p for p in h_find}
    if ref_label not in points:
        raise LprError(
            f"the reference H_find {ref_label!r} of {path.name} is not an H_find of this "
            "study: expected it among the points (the groups are the fields that differ from it)."
        )
    ref = points[ref_label]
    groups: dict[str, list[str]] = {}
    for p in h_find:
        if p.label == ref_label:
            continue
        diff = differing_fields(p.train, ref.train)
        if len(diff) != 1:
            raise LprError(
                f"H_find {p.label!r} differs from the reference {ref_label!r} in "
                f"{', '.join(diff) or 'nothing'}: per = 'hyperparameter' expected each point "
                "to change exactly one field of the reference."
            )
        groups.setdefault(diff[0], [ref_label]).append(p.label)
    if not groups:
        raise LprError("pairs_from found no H_find besides the reference: nothing to pair.")
    have = [float(s) for s in ds["sparsity"].values]
    cols = []
    for s in sparsities:
        hits = [k for k, v in enumerate(have) if np.isclose(v, s, rtol=0, atol=1e-9)]
        if not hits:
            raise LprError(
                f"transplant sparsity {s} is not a sparsity of {path.name} "
                f"({', '.join(map(str, have))}): expected the same targets in both studies."
            )
        cols.append(hits[0])
    val = ds.get("val_acc")
    if val is None or not np.isfinite(val.values).any():
        raise LprError(
            f"pairs_from: {path.name} has no validation accuracy (val_acc): pairs are chosen "
            "on validation accuracy, never on test accuracy. Expected the decoupled results "
            "of a study whose data keeps a validation split (val_fraction > 0)."
        )
    sel = val.sel(h_eval=h_eval).transpose("h_find", "seed", "sparsity")
    acc = sel.values.astype(float)[:, :, cols].mean(axis=2)
    row = {f: i for i, f in enumerate(finds)}
    out = []
    for group, members in groups.items():
        best: tuple[float, str, str, int] | None = None
        pairs = list(itertools.combinations(members, 2))
        for x, y in pairs:
            diffs = acc[row[y]] - acc[row[x]]
            diffs = diffs[np.isfinite(diffs)]
            if diffs.size == 0:
                continue
            effect = float(diffs.mean())
            if best is None or abs(effect) > abs(best[0]):
                best = (effect, x, y, int(diffs.size))
        if best is None:
            raise LprError(
                f"pairs_from: no pair of {group} has a finite accuracy in {path.name} "
                "(every run diverged?): nothing to choose from."
            )
        effect, x, y, n = best
        a, b = (x, y) if effect >= 0 else (y, x)
        out.append(PickedPair(group, a, b, abs(effect), n, len(pairs)))
    return tuple(out)
