"""The prunable set of a model: its conv and linear weights, named and in order.

Names are ``state_dict`` keys (e.g. ``layer1.0.conv1.weight``), listed in module
registration order, which every model in this package keeps equal to forward order.
Biases and normalization parameters are never prunable.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from torch import nn

from lprcausal.errors import LprError, bad_value

PRUNABLE_MODULES = (nn.Conv1d, nn.Conv2d, nn.Linear)


def prunable_names(
    model: nn.Module, *, exclude_first: bool = False, exclude_last: bool = False
) -> list[str]:
    """State-dict names of every Conv1d/Conv2d/Linear weight, in forward order.

    exclude_first drops the first such layer (the input layer / stem conv);
    exclude_last drops the last (the classifier). May return an empty list when
    the model has too few layers for the exclusions.
    """
    names = [
        f"{module_name}.weight"
        for module_name, module in model.named_modules()
        if isinstance(module, PRUNABLE_MODULES)
    ]
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


# Weight-bearing modules whose ``weight`` is prunable by default (any network).
_DEFAULT_WEIGHTED = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_ATTENTION_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def _default_prunable(model: nn.Module) -> list[str]:
    names = []
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, _DEFAULT_WEIGHTED) and module.weight is not None:
            names.append(f"{prefix}weight")
        elif isinstance(module, nn.MultiheadAttention):
            # out_proj is a Linear submodule: named_modules reaches it on its own.
            names += [f"{prefix}{a}" for a in _ATTENTION_WEIGHTS if getattr(module, a) is not None]
    return names


def prunable_parameters(
    model: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """The prunable set of any ``model``: parameter name -> parameter, in registration order.

    Default: the weights of Linear, Conv1d/2d/3d and ConvTranspose1d/2d/3d modules and of
    ``nn.MultiheadAttention`` (``in_proj_weight``, or the q/k/v projections, and
    ``out_proj.weight``); never biases, norms or embeddings. ``include`` (shell-style
    globs over parameter names) replaces the default with the parameters it matches;
    ``exclude`` then removes the ones it matches. A pattern that matches nothing, or an
    empty result, raises :class:`LprError` listing the model's parameter names.
    """
    params = dict(model.named_parameters())
    for field_name, patterns in (("include", include), ("exclude", exclude)):
        for pattern in patterns or ():
            if not any(fnmatch.fnmatchcase(n, pattern) for n in params):
                raise LprError(
                    f"{field_name} pattern {pattern!r} matches no parameter of the model: "
                    f"expected a glob over its parameter names {list(params)}."
                )
    if include:
        names = [n for n in params if any(fnmatch.fnmatchcase(n, p) for p in include)]
    else:
        names = [n for n in _default_prunable(model) if n in params]
    names = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in exclude or ())]
    if not names:
        raise LprError(
            f"the model has no prunable weight (include = {include!r}, exclude = {exclude!r}): "
            f"expected at least one of its parameters {list(params)} to be prunable."
        )
    return {n: params[n] for n in names}
