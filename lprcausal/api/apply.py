"""Keep masks applied to a live ``nn.Module`` through a user's own optimizer and loop.

Mechanism (two parts, both removed by :meth:`MaskHandle.remove`):

1. a gradient hook on each masked parameter sets the gradient of pruned entries to 0
   before it is accumulated into ``.grad``. Pruned weights therefore never enter a
   gradient norm (so ``clip_grad_norm_`` sees only the live network), and the momentum
   buffers / Adam moments of pruned weights stay exactly 0;
2. a global optimizer post-step hook (``torch.optim.optimizer.register_optimizer_step_post_hook``)
   writes 0 into the pruned entries after *every* optimizer step. With (1), SGD (with
   momentum, Nesterov, L2 decay), Adam and AdamW (decoupled decay multiplies 0 by
   ``1 - lr * wd``) already leave them at 0; (2) guarantees it for any update rule
   (e.g. one that adds noise) and for steps that GradScaler does run.

Cost per optimizer step: one multiplication by a 0/1 mask over the gradients and one
over the weights of the prunable set (see ``benchmarks/mask_handle.py``). A ``torch.compile``d model works:
its parameters are the original module's, so the hooks see them. What the hooks cannot
see: a ``load_state_dict`` or in-place write to the weights outside an optimizer step
(call :meth:`MaskHandle.enforce` after one).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from lprcausal.api.weights import masked_parameters, unwrap


class MaskHandle:
    """Masks held on a model; see :func:`apply_masks`. ``masks`` are on the params' devices."""

    def __init__(self, model: nn.Module, masks: Mapping[str, torch.Tensor]):
        module = unwrap(model)
        params = masked_parameters(module, masks)
        self.model = module
        self.masks = {n: m.to(params[n].device) for n, m in masks.items()}
        self._params = params
        self._dropped = {n: ~m for n, m in self.masks.items()}
        # Multiplying by a float 0/1 mask is several times faster than masked_fill on the
        # CPU; like the engine, a pruned entry of a non-finite gradient becomes NaN, which
        # only a diverging step produces (GradScaler then skips the step).
        self._keep = {n: m.to(params[n].dtype) for n, m in self.masks.items()}
        self._hooks = [
            p.register_hook(lambda g, keep=self._keep[n]: g * keep)
            for n, p in self._params.items()
        ]
        if self.masks:
            self._hooks.append(register_optimizer_step_post_hook(self._after_step))
        self.enforce()

    @torch.no_grad()
    def _after_step(self, optimizer, args, kwargs) -> None:
        for n, p in self._params.items():
            p.mul_(self._keep[n])

    @torch.no_grad()
    def enforce(self) -> None:
        """Write exactly 0 into every pruned weight now (and into its ``.grad`` if present)."""
        for n, p in self._params.items():
            p.masked_fill_(self._dropped[n], 0)
            if p.grad is not None:
                p.grad.masked_fill_(self._dropped[n], 0)

    @property
    def active(self) -> bool:
        return bool(self._hooks)

    def remove(self) -> None:
        """Stop enforcing the masks (the weights stay as they are now)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def __enter__(self) -> MaskHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> MaskHandle:
    """Zero the pruned weights of ``model`` now and keep them exactly 0 through every
    optimizer step until ``handle.remove()`` (or the end of a ``with`` block).

    ``masks`` maps parameter names of ``model`` to bool tensors of their shapes (True =
    kept); an empty mapping gives a handle that does nothing (a dense run). Works with
    any ``torch.optim`` optimizer, gradient clipping, GradScaler and ``torch.compile``;
    see the module docstring for how.

    >>> import torch, lprcausal as lpc
    >>> net = torch.nn.Linear(3, 2)
    >>> handle = lpc.apply_masks(net, lpc.global_magnitude_masks(net, 0.5))
    >>> opt = torch.optim.AdamW(net.parameters(), lr=0.1, weight_decay=0.1)
    >>> for _ in range(3):
    ...     opt.zero_grad(); net(torch.randn(4, 3)).square().sum().backward(); opt.step()
    >>> int((net.weight == 0).sum())
    3
    >>> handle.remove()
    """
    return MaskHandle(model, masks)
