"""Bridge to ``torch.nn.utils.prune``, the reparametrization most pruning code reads.

``to_torch_prune`` installs ``prune.custom_from_mask`` on each masked parameter (the module
then holds ``<name>_orig`` and the buffer ``<name>_mask``); ``from_torch_prune`` reads those
buffers back into our name-keyed bool masks. The round trip is exact.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils import prune

from lprcausal.api.weights import masked_parameters, unwrap
from lprcausal.errors import LprError
from lprcausal.pruning import Masks


def _split(name: str) -> tuple[str, str]:
    module_name, _, attr = name.rpartition(".")
    return module_name, attr


def to_torch_prune(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """Install ``prune.custom_from_mask`` for every mask on ``model`` (in place); return it.

    >>> import torch, lprcausal as lpc
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    >>> masks = lpc.global_magnitude_masks(net, 0.5)
    >>> _ = lpc.to_torch_prune(net, masks)
    >>> sorted(b for b, _ in net.named_buffers())
    ['0.weight_mask']
    >>> torch.equal(lpc.from_torch_prune(net)["0.weight"], masks["0.weight"])
    True
    """
    module = unwrap(model)
    params = masked_parameters(module, masks, " (already reparametrized by torch.nn.utils.prune?)")
    for name, m in masks.items():
        module_name, attr = _split(name)
        owner = module.get_submodule(module_name)
        prune.custom_from_mask(owner, attr, m.to(params[name].device))
    return model


def from_torch_prune(model: nn.Module) -> Masks:
    """Masks from every ``torch.nn.utils.prune`` reparametrization on ``model``: the
    ``<name>_mask`` buffer of each ``<name>_orig`` parameter, keyed by the original
    parameter name (``fc.weight``), in module order; ``True`` where the buffer is nonzero.
    """
    module = unwrap(model)
    out: Masks = {}
    for module_name, owner in module.named_modules():
        prefix = f"{module_name}." if module_name else ""
        own_params = dict(owner.named_parameters(recurse=False))
        for buf_name, buf in owner.named_buffers(recurse=False):
            if buf_name.endswith("_mask") and f"{buf_name[:-5]}_orig" in own_params:
                out[f"{prefix}{buf_name[:-5]}"] = buf.detach() != 0
    if not out:
        raise LprError(
            "the model has no torch.nn.utils.prune reparametrization (no '<name>_mask' buffer "
            "beside a '<name>_orig' parameter): expected a model pruned with torch.nn.utils.prune."
        )
    return out
