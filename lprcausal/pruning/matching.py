"""LPR across networks: matching a source network's layers to a target's, and the counts.

A transplant between two architectures (other widths, depths or names) needs, for each
prunable layer of the target, the ratio to prune it at. The rules here turn the
source's LPR (``name -> ratio``) into the target's (``name -> ratio``); they are pure
functions of names and ratios:

- ``name``: the target layer of the same name (both networks must have the same names);
- ``position``: the k-th prunable layer of the source for the k-th of the target (both
  must have the same number of prunable layers);
- ``stage`` (CIFAR ResNets): every target layer of stage ``s`` and role ``r`` takes the
  unweighted mean ratio of the source layers of that stage and role (:func:`resnet_role`);
- ``map``: a table ``target layer -> source layer name, or a fixed ratio``.

Each target layer ``l`` with ``n_l`` weights is then pruned by magnitude at exactly
``round_half_up(ratio_l * n_l)`` weights (:func:`rounded_counts`): halves round up,
``floor(x + 0.5)``, not to even as Python's ``round`` does, after snapping float error
(see ``_rounding``). The target's global sparsity is whatever those counts add up to.
When the two networks have the same shapes and the rule is ``name``, the counts equal
the source mask's own counts exactly.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Mapping, Sequence

import torch

from lprcausal.config import MATCH_RULES
from lprcausal.errors import LprError
from lprcausal.pruning._checks import check_count, check_fraction, check_no_nan, format_names
from lprcausal.pruning._rounding import round_half_up
from lprcausal.pruning.layerwise import magnitude_masks_at_counts
from lprcausal.pruning.masks import Masks, layerwise_ratios

# CIFAR ResNet parameter names (lprcausal.models.resnet): stem conv, block convs, fc.
_RESNET_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.(conv1|conv2|shortcut\.conv)\.weight$")
_RESNET_ENDS = {"conv1.weight": ("stem", "conv"), "fc.weight": ("head", "fc")}
_HINT = (
    "match = 'position' (same number of layers), 'stage' (ResNets of other depths) or a "
    "layer map (target layer -> source layer or fixed ratio)"
)


def rounded_counts(n_params: Mapping[str, int], ratios: Mapping[str, float]) -> dict[str, int]:
    """Weights to remove per layer: ``round_half_up(ratios[l] * n_params[l])``, each layer
    on its own (so the total is the sum of the rounded counts, not a rounded total).

    E.g. ratio 0.5 of 5 weights -> 3, ratio 0.25 of 10 weights -> 3 (2.5 rounds up), ratio
    0.3 of 10 -> 3. Ratios must lie in [0, 1]; names must be those of ``n_params``.
    Keyed in ``n_params`` order.
    """
    missing = [n for n in n_params if n not in ratios]
    if missing:
        raise LprError(f"ratios are missing for layers {format_names(missing)}: expected one "
                       "ratio per target layer.")
    out = {}
    for name, n in n_params.items():
        size = check_count(f"n_params[{name!r}]", n)
        r = check_fraction(f"ratio for layer {name!r}", ratios[name], allow_one=True)
        out[name] = min(round_half_up(r * size), size)
    return out


def resnet_role(name: str) -> tuple[str, str] | None:
    """(stage, role) of a CIFAR ResNet parameter name, or None for other names.

    ``conv1.weight`` -> ("stem", "conv"); ``layer{s}.{j}.conv1.weight`` -> ("stage{s}",
    "conv1"); ``.conv2`` -> ("stage{s}", "conv2"); ``layer{s}.{j}.shortcut.conv.weight``
    -> ("stage{s}", "shortcut") (the 1x1 projection where a block changes shape);
    ``fc.weight`` -> ("head", "fc"). The block index ``j`` is dropped: a block's role is
    its position within the block, so block 0's (downsampling) conv1 shares the role conv1
    with the other blocks of its stage.
    """
    if name in _RESNET_ENDS:
        return _RESNET_ENDS[name]
    m = _RESNET_BLOCK.match(name)
    if m is None:
        return None
    return f"stage{m.group(1)}", "shortcut" if m.group(3) == "shortcut.conv" else m.group(3)


def _check_ratios(ratios: Mapping[str, float], what: str) -> None:
    for name, r in ratios.items():
        check_fraction(f"{what} ratio for layer {name!r}", r, allow_one=True)


def _unmatched(
    rule: str, targets: Sequence[str], unused: Sequence[str], detail: str = ""
) -> LprError:
    parts = []
    if targets:
        parts.append(f"target layer(s) {format_names(targets)} have no source layer")
    if unused:
        parts.append(f"source layer(s) {format_names(unused)} match no target layer")
    return LprError(
        f"match = {rule!r} leaves layers unmatched: {'; '.join(parts)}{detail}. Expected every "
        f"target layer to take the ratio of a source layer and every source layer to be "
        f"used; for networks that differ in names or depth use {_HINT}."
    )


def match_by_name(source: Mapping[str, float], target: Sequence[str]) -> dict[str, float]:
    """Target layer ``l`` takes ``source[l]``; both must have exactly the same names."""
    _check_ratios(source, "source")
    missing = [n for n in target if n not in source]
    unused = [n for n in source if n not in set(target)]
    if missing or unused:
        raise _unmatched("name", missing, unused)
    return {n: float(source[n]) for n in target}


def match_by_position(source: Mapping[str, float], target: Sequence[str]) -> dict[str, float]:
    """The k-th target layer takes the ratio of the k-th source layer (network order)."""
    _check_ratios(source, "source")
    names = list(source)
    if len(names) != len(target):
        raise LprError(
            f"match = 'position' needs as many prunable layers in the target as in the "
            f"source: the source has {len(names)} ({format_names(names)}), the target "
            f"{len(target)} ({format_names(target)}). Expected equal counts; otherwise use "
            "match = 'stage' (ResNets) or a layer map."
        )
    return {t: float(source[s]) for s, t in zip(names, target, strict=True)}


def match_by_stage(source: Mapping[str, float], target: Sequence[str]) -> dict[str, float]:
    """Each target layer takes the unweighted mean ratio of the source layers with its
    (stage, role) (:func:`resnet_role`); both networks must be CIFAR ResNets whose
    (stage, role) groups agree (e.g. ResNet-20 -> ResNet-32, or other widths)."""
    _check_ratios(source, "source")
    foreign = [n for n in (*source, *target) if resnet_role(n) is None]
    if foreign:
        raise LprError(
            f"match = 'stage' needs CIFAR ResNet layer names (conv1, layer<s>.<j>.conv1/"
            f"conv2/shortcut.conv, fc): layers {format_names(dict.fromkeys(foreign))} are not. "
            "Expected two resnet<6n+2> models; for other networks use match = 'name', "
            "'position' or a layer map."
        )
    groups: dict[tuple[str, str], list[float]] = {}
    for name, r in source.items():
        groups.setdefault(resnet_role(name), []).append(float(r))  # type: ignore[arg-type]
    wanted = {resnet_role(n) for n in target}
    missing = [n for n in target if resnet_role(n) not in groups]
    unused = [n for n in source if resnet_role(n) not in wanted]
    if missing or unused:
        have = ", ".join(f"{s}/{r}" for s, r in groups)
        raise _unmatched("stage", missing, unused, f" (source stage/role groups: {have})")
    means = {key: sum(values) / len(values) for key, values in groups.items()}
    return {n: means[resnet_role(n)] for n in target}  # type: ignore[index]


def match_by_map(
    source: Mapping[str, float], target: Sequence[str], layer_map: Mapping[str, str | float]
) -> dict[str, float]:
    """Target layer ``l`` takes ``source[layer_map[l]]`` when the entry is a source layer
    name, or the entry itself when it is a ratio. Every target layer needs an entry;
    entries must name target layers and (for names) source layers."""
    _check_ratios(source, "source")
    checked = parse_layer_map(layer_map)
    unknown = [t for t in checked if t not in set(target)]
    if unknown:
        raise LprError(
            f"the layer map names target layer(s) {format_names(unknown)} that the target "
            f"does not have: expected prunable layers of the target, {format_names(target)}."
        )
    bad = [v for v in checked.values() if isinstance(v, str) and v not in source]
    if bad:
        raise LprError(
            f"the layer map names source layer(s) {format_names(bad)} that the source does "
            f"not have: expected prunable layers of the source, {format_names(source)}, or "
            "a fixed ratio in [0, 1)."
        )
    missing = [t for t in target if t not in checked]
    if missing:
        raise _unmatched("map", missing, [], " (no entry in the layer map)")
    out = {}
    for t in target:
        entry = checked[t]
        out[t] = float(source[entry]) if isinstance(entry, str) else float(entry)
    return out


def parse_layer_map(table: Mapping, where: str = "layer map") -> dict[str, str | float]:
    """A layer map from a TOML table: ``target layer -> source layer name or ratio``.

    Nested tables are joined with dots, so ``fc.weight = "fc.weight"`` (unquoted dotted
    key) and ``"fc.weight" = 0.5`` both mean layer ``fc.weight``. A value must be a
    string (a source layer) or a number in [0, 1) (a fixed ratio).
    """
    if not isinstance(table, Mapping):
        raise LprError(f"{where} = {table!r} has the wrong type: expected a table of "
                       "target layer = source layer name or ratio.")
    out: dict[str, str | float] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, str) and value.strip():
            out[prefix] = value
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[prefix] = check_fraction(f"{where} entry {prefix!r}", value)
        else:
            raise LprError(
                f"{where} entry {prefix!r} = {value!r} is not valid: expected a source "
                "layer name (a string) or a fixed ratio in [0, 1)."
            )

    walk("", table)
    if not out:
        raise LprError(f"{where} is empty: expected entries target layer = source layer or ratio.")
    return out


def layer_map_json(layer_map: Mapping[str, str | float]) -> str:
    """The canonical text of a layer map (sorted keys): what a run's description stores."""
    return json.dumps(parse_layer_map(layer_map), sort_keys=True)


def matched_ratios(
    source: Mapping[str, float],
    target: Sequence[str],
    rule: str = "name",
    layer_map: Mapping[str, str | float] | None = None,
) -> dict[str, float]:
    """The target's LPR (keyed by ``target``, in its order) from the source's under ``rule``
    (:data:`MATCH_RULES`); ``layer_map`` is needed by, and only allowed with, ``map``."""
    if rule not in MATCH_RULES:
        raise LprError(f"match = {rule!r} is not known: expected one of {', '.join(MATCH_RULES)}.")
    if (rule == "map") != (layer_map is not None):
        raise LprError(
            f"match = {rule!r} with {'a' if layer_map is not None else 'no'} layer map: "
            "expected a layer map exactly with match = 'map'."
        )
    target = list(target)
    if rule == "name":
        return match_by_name(source, target)
    if rule == "position":
        return match_by_position(source, target)
    if rule == "stage":
        return match_by_stage(source, target)
    return match_by_map(source, target, layer_map)  # type: ignore[arg-type]


def cross_transplant_masks(
    source_masks: Mapping[str, torch.Tensor],
    target_params: Mapping[str, torch.Tensor],
    rule: str = "name",
    layer_map: Mapping[str, str | float] | None = None,
) -> Masks:
    """Transplant the LPR of ``source_masks`` onto ``target_params`` of another network:
    each target layer pruned by magnitude (ties by flat index) at exactly
    :func:`rounded_counts` of its :func:`matched_ratios`. A layer whose ratio is 1 is
    removed entirely, as the source removed its layer(s)."""
    check_no_nan(target_params)
    ratios = matched_ratios(layerwise_ratios(source_masks), list(target_params), rule, layer_map)
    counts = rounded_counts({n: w.numel() for n, w in target_params.items()}, ratios)
    return magnitude_masks_at_counts(target_params, counts)
