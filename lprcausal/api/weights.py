"""Turn what a user passes (an ``nn.Module`` or a ``name -> tensor`` mapping) into weights."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from lprcausal.errors import LprError
from lprcausal.models.prunable import prunable_parameters
from lprcausal.pruning._checks import format_names
from lprcausal.pruning.masks import check_masks_match

ModelOrParams = nn.Module | Mapping[str, torch.Tensor]


def unwrap(model: nn.Module) -> nn.Module:
    """The module whose parameter names a user sees: ``torch.compile`` wraps a model in an
    ``OptimizedModule`` that prefixes every name with ``_orig_mod.``."""
    return getattr(model, "_orig_mod", model)


def prunable(
    model: nn.Module, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None
) -> dict[str, nn.Parameter]:
    """The prunable set of ``model``: parameter name -> parameter (the CLI's rule).

    By default every Linear, Conv and ConvTranspose weight and the MultiheadAttention
    projection weights; ``include`` / ``exclude`` are shell-style globs over parameter
    names that replace / trim the default.

    >>> import torch, lprcausal as lpc
    >>> list(lpc.prunable(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(),
    ...                                       torch.nn.Linear(3, 2))))
    ['0.weight', '2.weight']
    """
    return prunable_parameters(unwrap(model), include, exclude)


def weights_of(
    model_or_params: ModelOrParams, names: Iterable[str] | None = None
) -> dict[str, torch.Tensor]:
    """Detached weights to prune: a module's prunable set (or its parameters ``names``, e.g.
    the names of a mask), or the mapping itself (restricted to ``names`` when given)."""
    if isinstance(model_or_params, nn.Module):
        if names is None:
            return {n: p.detach() for n, p in prunable(model_or_params).items()}
        available = dict(unwrap(model_or_params).named_parameters())
        source = "the model's parameters"
    elif isinstance(model_or_params, Mapping):
        available = dict(model_or_params)
        if names is None:
            names = list(available)
        source = "the weights given"
    else:
        raise LprError(
            f"model_or_params has type {type(model_or_params).__name__}: expected an "
            "nn.Module or a mapping from parameter names to tensors."
        )
    names = list(names)
    missing = [n for n in names if n not in available]
    if missing:
        raise LprError(
            f"names {format_names(missing)} are not in {source}: expected names from "
            f"{format_names(available)}."
        )
    for n in names:
        if not isinstance(available[n], torch.Tensor):
            raise LprError(
                f"weights for {n!r} have type {type(available[n]).__name__}: expected a tensor."
            )
    return {n: available[n].detach() for n in names}


def masked_parameters(
    module: nn.Module, masks: Mapping[str, torch.Tensor], hint: str = ""
) -> dict[str, nn.Parameter]:
    """The parameters of ``module`` that ``masks`` name, after checking that every name is
    one of its parameters and every mask a bool tensor of that parameter's shape.
    ``hint`` is added to the message for a name the module does not have."""
    params = dict(module.named_parameters())
    missing = [n for n in masks if n not in params]
    if missing:
        raise LprError(
            f"masks name {missing[:5]} which are not parameters of the model{hint}: expected "
            f"names from {list(params)[:8]}{' ...' if len(params) > 8 else ''}."
        )
    chosen = {n: params[n] for n in masks}
    check_masks_match(masks, chosen)
    return chosen
