"""The prunable set of a model: which named weight tensors pruning may touch.

Default rule, for any ``nn.Module``: the weight of every ``Linear``, ``Conv1d/2d/3d``
and ``ConvTranspose1d/2d/3d``, and the projection weights of every
``nn.MultiheadAttention`` (``in_proj_weight``, or ``q/k/v_proj_weight`` when key and
value sizes differ, and ``out_proj.weight``). Biases, normalization parameters and
embeddings are never in it by default.

``include`` globs (``fnmatch`` over parameter names) replace the default with every
parameter they match; ``exclude`` globs remove parameters from the set. Names are
``named_parameters`` keys, listed in registration order (forward order for every
model in this package). A glob that matches nothing, or an empty set, is an error
that lists the model's parameter names.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from torch import nn

from lprcausal.errors import LprError, bad_value

PRUNABLE_MODULES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_ATTENTION_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def default_prunable(model: nn.Module) -> list[str]:
    """Names of the weights the default rule selects, in ``named_parameters`` order."""
    chosen = set()
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, PRUNABLE_MODULES) and isinstance(module.weight, nn.Parameter):
            chosen.add(f"{prefix}weight")
        elif isinstance(module, nn.MultiheadAttention):
            for attr in _ATTENTION_WEIGHTS:  # out_proj is a Linear: selected above
                if isinstance(getattr(module, attr, None), nn.Parameter):
                    chosen.add(f"{prefix}{attr}")
    return [n for n, _ in model.named_parameters() if n in chosen]


def prunable_parameters(
    model: nn.Module,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
) -> dict[str, nn.Parameter]:
    """The prunable set of ``model``: ``{name: parameter}`` in registration order.

    ``include``: globs over parameter names replacing the default rule (see the module
    docstring); ``exclude``: globs removing names from the set. Raises LprError when a
    glob matches nothing or the set is empty, listing the model's parameter names.
    """
    params = dict(model.named_parameters())
    include, exclude = list(include or ()), list(exclude or ())
    if include:
        for pattern in include:
            _must_match("include", pattern, params, params)
        names = [n for n in params if any(fnmatchcase(n, p) for p in include)]
    else:
        names = default_prunable(model)
    for pattern in exclude:
        _must_match("exclude", pattern, names, params)
    names = [n for n in names if not any(fnmatchcase(n, p) for p in exclude)]
    if not names:
        what = (
            "no parameter is prunable by default (the weights of Linear, Conv, ConvTranspose "
            "and MultiheadAttention)" if not include and not exclude
            else f"include = {include!r} and exclude = {exclude!r} leave no prunable parameter"
        )
        raise LprError(
            f"{type(model).__name__}: {what}. Expected at least one; its parameters are: "
            f"{_listing(params)}."
        )
    return {n: params[n] for n in names}


def _must_match(key: str, pattern: str, candidates: Iterable[str], params: dict) -> None:
    if not any(fnmatchcase(n, pattern) for n in candidates):
        among = "of the model" if key == "include" else "in the prunable set"
        raise LprError(
            f"{key} = {pattern!r} matches no parameter {among}: expected a glob over parameter "
            f"names such as 'blocks.*.weight'. The model's parameters are: {_listing(params)}."
        )


def _listing(params: dict) -> str:
    return ", ".join(f"{n} {tuple(p.shape)}" for n, p in params.items()) or "none"


def prunable_names(
    model: nn.Module,
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    exclude_first: bool = False,
    exclude_last: bool = False,
) -> list[str]:
    """Names of the prunable set (:func:`prunable_parameters`), in order.

    exclude_first drops the first of them (the input layer / stem conv); exclude_last
    drops the last (the classifier). May return an empty list when the set has too few
    layers for the exclusions.
    """
    names = list(prunable_parameters(model, include, exclude))
    start = 1 if exclude_first else 0
    stop = len(names) - 1 if exclude_last else len(names)
    return names[start:stop]


def layer_table(model: nn.Module, names: list[str]) -> list[dict]:
    """One row per name: ``{"name", "shape" (tuple of ints), "n_params"}``.

    Works on any device, including ``meta``. Raises LprError for a name that is not
    a parameter of ``model``.
    """
    params = dict(model.named_parameters())
    rows = []
    for name in names:
        if name not in params:
            raise bad_value("layer", name, f"a parameter name of the model, one of {list(params)}")
        shape = tuple(params[name].shape)
        rows.append({"name": name, "shape": shape, "n_params": params[name].numel()})
    return rows
