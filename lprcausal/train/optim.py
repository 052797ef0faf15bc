"""A fused optimizer update over the flat parameter buffer of K stacked runs.

All trainable parameters of all K members live in one flat tensor; every
hyperparameter that may differ per member (lr, weight decay, momentum, betas) is
expanded once into a tensor of the same length, so a whole update is a handful of
in-place vector operations, whatever the number of layers or members. The update
follows ``torch.optim.SGD`` / ``Adam`` / ``AdamW`` step for step (same operation
order), so a K = 1 group reproduces a plain ``torch.optim`` loop to float rounding.

Masks: the gradient is multiplied by the mask before it enters the optimizer state
and the weights are multiplied by it after the update, so pruned weights, their
gradients and their momentum/Adam moments all stay exactly zero.
"""

from __future__ import annotations

import torch

from lprcausal.config import TrainConfig


class FusedOptimizer:
    """SGD (momentum, nesterov) or Adam/AdamW for a flat parameter tensor of K members.

    ``member_of`` gives, for each element of the flat tensor, the member it belongs to.
    ``mask`` is a float tensor like ``flat`` (1 = trainable, 0 = pruned).
    ``lr_table`` is ``[steps, K]``: the learning rate of each member at each step.
    """

    def __init__(
        self,
        configs: list[TrainConfig],
        flat: torch.Tensor,
        member_of: torch.Tensor,
        mask: torch.Tensor | None,
        lr_table: torch.Tensor,
    ):
        kinds = {(c.optimizer, c.nesterov) for c in configs}
        if len(kinds) != 1:
            raise ValueError(f"members of one fused group must share the optimizer, got {kinds}")
        (self.kind, self.nesterov), = kinds
        dev, dt = flat.device, flat.dtype
        self.member_of = member_of

        def per_member(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, device=dev, dtype=dt)[member_of]

        self.weight_decay = per_member([c.weight_decay for c in configs])
        self.any_decay = any(c.weight_decay for c in configs)
        self.mask = mask
        self.lr_table = lr_table
        self.step_count = 0
        self.buf = torch.zeros_like(flat)
        self.tmp = torch.empty_like(flat)
        self.lr_flat = torch.empty_like(flat)
        if self.kind == "sgd":
            self.momentum = per_member([c.momentum for c in configs])
            self.any_momentum = any(c.momentum for c in configs)
        else:
            self.beta1 = torch.tensor([c.beta1 for c in configs], device=dev, dtype=torch.float64)
            self.beta2 = torch.tensor([c.beta2 for c in configs], device=dev, dtype=torch.float64)
            self.one_minus_b1 = per_member([1 - c.beta1 for c in configs])
            self.one_minus_b2 = per_member([1 - c.beta2 for c in configs])
            self.b1 = per_member([c.beta1 for c in configs])
            self.b2 = per_member([c.beta2 for c in configs])
            self.eps = per_member([c.eps for c in configs])
            self.exp_avg_sq = torch.zeros_like(flat)
            self.denom = torch.empty_like(flat)

    @torch.no_grad()
    def step(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        """Apply one update in place to ``flat`` given its gradient ``grad`` (consumed)."""
        t = self.step_count
        torch.index_select(self.lr_table[t], 0, self.member_of, out=self.lr_flat)
        if self.mask is not None:
            grad.mul_(self.mask)
        if self.kind == "sgd":
            self._sgd(flat, grad)
        else:
            self._adam(flat, grad, t + 1)
        if self.mask is not None:
            flat.mul_(self.mask)
        self.step_count += 1

    def _sgd(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        if self.any_decay:
            grad.addcmul_(self.weight_decay, flat)
        if self.any_momentum:
            self.buf.mul_(self.momentum).add_(grad)
            if self.nesterov:
                grad.addcmul_(self.momentum, self.buf)
                direction = grad
            else:
                direction = self.buf
        else:
            direction = grad
        flat.addcmul_(self.lr_flat, direction, value=-1)

    def _adam(self, flat: torch.Tensor, grad: torch.Tensor, step: int) -> None:
        if self.any_decay:
            if self.kind == "adamw":
                # decoupled decay: p *= 1 - lr * wd
                torch.mul(self.lr_flat, self.weight_decay, out=self.tmp)
                flat.sub_(flat * self.tmp)
            else:
                grad.addcmul_(self.weight_decay, flat)
        self.buf.mul_(self.b1).addcmul_(self.one_minus_b1, grad)
        self.exp_avg_sq.mul_(self.b2).addcmul_(self.one_minus_b2 * grad, grad)
        bc1 = (1 - self.beta1**step).to(flat.dtype)[self.member_of]
        bc2_sqrt = (1 - self.beta2**step).sqrt().to(flat.dtype)[self.member_of]
        torch.sqrt(self.exp_avg_sq, out=self.denom)
        self.denom.div_(bc2_sqrt).add_(self.eps)
        torch.div(self.lr_flat, bc1, out=self.tmp)
        flat.addcdiv_(self.tmp * self.buf, self.denom, value=-1)
