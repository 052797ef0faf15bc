"""One training step of K stacked MLP members, backpropagated by hand into fixed buffers.

An MLP (``[Linear -> ReLU] * n -> Linear``, :mod:`lprcausal.models.mlp`) is a chain of
batched GEMMs, so its forward and backward can be written out directly: per layer one
``bmm`` into a preallocated activation buffer, an in-place bias add and ReLU; backward
one ``bmm`` for the weight gradient (written straight into the stacked gradient
buffer), one ``sum`` for the bias gradient and one ``bmm`` plus an in-place ReLU
mask for the input gradient. Every buffer is allocated once per group, so a step
allocates nothing of the activations' size. On the CPU that matters more than it
looks: the autograd path allocates K x B x width tensors every step, and the page
faults of those fresh allocations cost as much as the GEMMs themselves (measured in
``benchmarks/``).

The arithmetic is the stock one (``F.linear``, ``F.relu``, ``F.cross_entropy`` with
mean reduction per member): members agree with a plain ``torch.optim`` loop up to
float rounding, which ``tests/test_engine.py`` checks in float64.
"""

from __future__ import annotations

import torch
from torch import nn

from lprcausal.models.mlp import MLP


def mlp_layers(template: nn.Module) -> list[str] | None:
    """The MLP's linear layer names in order, or None if ``template`` is not a plain MLP."""
    if type(template) is not MLP:
        return None
    names = [f"hidden.{i}" for i in range(len(template.hidden))] + ["fc"]
    if any(template.get_submodule(n).bias is None for n in names):
        return None
    return names


class MLPStep:
    """Loss and gradient of K MLP members on one batch, with no per-step allocation.

    ``weights`` / ``biases``: per layer ``[K, out, in]`` / ``[K, out]`` views of the
    stacked parameters; ``weight_grads`` / ``bias_grads``: views of the same shapes into
    the stacked gradient buffer, which :meth:`__call__` overwrites.
    """

    def __init__(
        self,
        weights: list[torch.Tensor],
        biases: list[torch.Tensor],
        weight_grads: list[torch.Tensor],
        bias_grads: list[torch.Tensor],
        batch_size: int,
    ):
        self.weights, self.biases = weights, biases
        self.weight_grads, self.bias_grads = weight_grads, bias_grads
        K = weights[0].shape[0]
        w = weights[0]
        # acts[i]: output of layer i (after ReLU for hidden layers; logits for the last).
        self.acts = [w.new_empty(K, batch_size, wi.shape[1]) for wi in weights]
        # grads[i]: gradient w.r.t. the output of layer i (reused in place for the ReLU).
        self.grads = [w.new_empty(K, batch_size, wi.shape[1]) for wi in weights]
        self.losses = w.new_empty(K)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member mean cross-entropy ``[K]`` of ``x`` ``[K, B, ...]``; fills the gradients."""
        K, B = y.shape
        h = x.reshape(K, B, -1)
        last = len(self.weights) - 1
        for i, (w, b, out) in enumerate(zip(self.weights, self.biases, self.acts, strict=True)):
            torch.bmm(h, w.transpose(1, 2), out=out)
            out.add_(b.unsqueeze(1))
            if i < last:
                out.clamp_min_(0)  # F.relu
            h = out
        logits = self.acts[last]
        # F.cross_entropy, mean over each member's batch; d(sum of losses) / d logits.
        log_p = torch.log_softmax(logits, dim=-1)
        picked = log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        torch.mean(picked, 1, out=self.losses).neg_()
        g = self.grads[last]
        torch.exp(log_p, out=g)
        g.scatter_add_(-1, y.unsqueeze(-1), g.new_full((K, B, 1), -1.0))
        g.div_(B)
        for i in range(last, -1, -1):
            below = x.reshape(K, B, -1) if i == 0 else self.acts[i - 1]
            torch.bmm(g.transpose(1, 2), below, out=self.weight_grads[i])
            torch.sum(g, 1, out=self.bias_grads[i])
            if i == 0:
                break
            g_below = self.grads[i - 1]
            torch.bmm(g, self.weights[i], out=g_below)
            # ReLU backward in place: zero where the layer's output was not positive.
            torch.ops.aten.threshold_backward.grad_input(g_below, below, 0.0, grad_input=g_below)
            g = g_below
        return self.losses
