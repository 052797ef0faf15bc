"""Faster forwards for the layers of a stacked model (K members under ``vmap``).

:func:`prepare_template` swaps the ``forward`` of the template's ``nn.Linear`` and
``nn.Conv1d`` / BatchNorm modules; the math is unchanged (results equal the stock
layers up to float rounding), only how the K members' work is laid out:

* Linear: one ``bmm`` per layer plus an in-place bias add, and a backward that forms
  the weight gradient directly in the parameter's ``[K, out, in]`` layout, where
  ``vmap``'s generic rules go through ``baddbmm`` (a broadcast copy of the bias into
  the output first) and a transposed copy of the weight gradient. A weight
  that carries a ``grad_slot`` attribute (a tensor of its shape and strides, with a
  ``claimed`` flag) gets its gradient written there, so it lands in the stacked
  gradient buffer without a copy.
* Conv1d: im2col + one batched GEMM ``[B * L_out, k * C] @ [k * C, O]`` per layer
  instead of the grouped convolution ``vmap`` makes, which the CPU backends run slowly
  for the few channels of 1D signal models. Outputs are channels-last in memory
  (``[B, L, C]`` storage behind the logical ``[B, C, L]`` tensor), so the next
  convolution reads its windows without a transpose.
* BatchNorm: one ``batch_norm`` over ``K * C`` channels (member k's channel c is
  channel ``k * C + c``, with its own statistics, running buffers and affine), where
  ``vmap``'s rule normalizes first and applies the per-member scale and shift in two
  more passes over the activations.

Under autocast (bf16 on CUDA) Linear and Conv1d keep the stock forwards: autocast casts
the inputs of the ops it knows, and the hand-made backwards above, which write float32
gradients into float32 slots, would meet bf16 gradients.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


def _claim(slot: torch.Tensor | None) -> torch.Tensor | None:
    """The slot to write a gradient into, if no other use of the weight wrote it this pass.

    A module called twice per forward gets two gradients that autograd adds up; only the
    first may live in the slot (the owner resets ``claimed`` before each backward). The
    returned tensor is a fresh view, referenced by no one else, as autograd requires to
    hand a gradient back without copying it.
    """
    if slot is None or getattr(slot, "claimed", False):
        return None
    slot.claimed = True
    return slot.view(slot.shape)


class _StackedLinear(torch.autograd.Function):
    """``x`` ``[K, N, in]``, ``w`` ``[K, out, in]``, ``b`` ``[K, out]`` -> ``[K, N, out]``."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        ctx.grad_slot = getattr(w, "grad_slot", None)
        ctx.bias_slot = getattr(b, "grad_slot", None)
        out = torch.bmm(x, w.transpose(1, 2))
        # An in-place bias add after the GEMM is about twice as fast on the CPU as
        # baddbmm, which first broadcast-copies the bias into the output.
        return out if b is None else out.add_(b.unsqueeze(1))

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        gx = torch.bmm(grad, w) if need_x else None
        gw = None
        if need_w:
            gw = torch.bmm(grad.transpose(1, 2), x, out=_claim(ctx.grad_slot))
        gb = None
        if ctx.has_bias and need_b:
            gb = torch.sum(grad, 1, out=_claim(ctx.bias_slot))
        return gx, gw, gb


class _Linear(torch.autograd.Function):
    """``F.linear`` per member; under ``vmap`` it runs as one :class:`_StackedLinear`."""

    @staticmethod
    def forward(x, w, b):
        return F.linear(x, w, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, w, b = inputs
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        ctx.grad_slot = getattr(w, "grad_slot", None)
        ctx.bias_slot = getattr(b, "grad_slot", None)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        flat_grad = grad.reshape(-1, grad.shape[-1])
        gx = grad @ w if need_x else None
        gw = None
        if need_w:
            gw = torch.mm(flat_grad.t(), x.reshape(-1, x.shape[-1]), out=_claim(ctx.grad_slot))
        gb = None
        if ctx.has_bias and need_b:
            gb = torch.sum(flat_grad, 0, out=_claim(ctx.bias_slot))
        return gx, gw, gb

    @staticmethod
    def vmap(info, in_dims, x, w, b):
        K = info.batch_size
        x_dim, w_dim, b_dim = in_dims
        if w_dim is None:
            w = w.expand(K, *w.shape)
        elif w_dim != 0:
            w = w.movedim(w_dim, 0)  # (at 0, keep the tensor itself: it may carry grad_slot)
        if b is not None and b_dim is None:
            b = b.expand(K, *b.shape)
        elif b is not None and b_dim != 0:
            b = b.movedim(b_dim, 0)
        if x_dim is None:
            # One input for all members (evaluation): a single GEMM against all K weights.
            out = x @ w.reshape(-1, w.shape[-1]).t()
            if b is not None:
                out = out + b.reshape(-1)
            return out.view(*x.shape[:-1], K, w.shape[1]), x.dim() - 1
        x = x.movedim(x_dim, 0)
        lead = x.shape[:-1]
        out = _StackedLinear.apply(x.reshape(K, -1, x.shape[-1]), w, b)
        return out.view(*lead, w.shape[1]), 0


def _autocasting(x: torch.Tensor) -> bool:
    return torch.is_autocast_enabled(x.device.type)


def _linear_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    if _autocasting(x):
        return F.linear(x, self.weight, self.bias)
    return _Linear.apply(x, self.weight, self.bias)


class _Windows(torch.autograd.Function):
    """``x`` ``[N, L, C]`` -> ``[N, L_out, k, C]``: the ``k`` taps of every output position.

    The backward adds each tap's gradient back with ``k`` strided adds, much cheaper on
    the CPU than the generic ``unfold`` backward.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
        ctx.length = x.shape[1]
        ctx.geometry = (kernel, stride, padding)
        padded = F.pad(x, (0, 0, padding, padding))
        if x.shape[2] > 1:
            return padded.unfold(1, kernel, stride).transpose(2, 3).contiguous()
        # One channel: k strided slices copy faster than the transposed unfold.
        n_out = (padded.shape[1] - kernel) // stride + 1
        span = stride * (n_out - 1) + 1
        return torch.stack([padded[:, j : j + span : stride] for j in range(kernel)], dim=2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        kernel, stride, padding = ctx.geometry
        n, n_out, _, channels = grad.shape
        length = ctx.length
        dx = grad.new_zeros(n, length, channels)
        for j in range(kernel):
            # Output l reads input i = l * stride + j - padding; keep the i inside [0, L).
            first = max(0, -((j - padding) // stride))
            last = min(n_out, (length - 1 + padding - j) // stride + 1)
            if last <= first:
                continue
            start = first * stride + j - padding
            span = stride * (last - first - 1) + 1
            dx[:, start : start + span : stride] += grad[:, first:last, j]
        return dx, None, None, None


class _MemberWindows(torch.autograd.Function):
    """:class:`_Windows` of one member's ``[B, L, C]``; under ``vmap`` one call for all."""

    @staticmethod
    def forward(x, kernel, stride, padding):
        return _Windows.apply(x, kernel, stride, padding)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("the stacked im2col is differentiated through its vmap rule")

    @staticmethod
    def vmap(info, in_dims, x, kernel, stride, padding):
        x_dim = in_dims[0]
        x = x.expand(info.batch_size, *x.shape) if x_dim is None else x.movedim(x_dim, 0)
        lead = x.shape[:2]
        cols = _Windows.apply(x.reshape(-1, *x.shape[2:]), kernel, stride, padding)
        return cols.view(*lead, *cols.shape[1:]), 0


def _conv1d_forward(self: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``nn.Conv1d.forward`` as im2col + one matmul (zero padding, no groups/dilation)."""
    if _autocasting(x):
        return nn.Conv1d.forward(self, x)
    batch, channels, _ = x.shape
    kernel, stride, padding = self.kernel_size[0], self.stride[0], self.padding[0]
    cols = _MemberWindows.apply(x.transpose(1, 2), kernel, stride, padding)
    n_out = cols.shape[1]
    weight = self.weight.permute(0, 2, 1).reshape(self.out_channels, kernel * channels)
    out = _Linear.apply(cols.reshape(batch * n_out, kernel * channels), weight, self.bias)
    return out.view(batch, n_out, self.out_channels).transpose(1, 2)


class _BatchNorm(torch.autograd.Function):
    """``F.batch_norm`` per member; under ``vmap`` one call over ``K * C`` channels.

    Only the ``vmap`` path is used for training (a K = 1 group runs the stock module);
    the plain forward exists so the function is still callable outside ``vmap``.
    """

    @staticmethod
    def forward(x, mean, var, w, b, training, momentum, eps):
        return F.batch_norm(x, mean, var, w, b, training, momentum, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("the stacked BatchNorm is differentiated through its vmap rule")

    @staticmethod
    def vmap(info, in_dims, x, mean, var, w, b, training, momentum, eps):
        K = info.batch_size
        x_dim = in_dims[0]
        # [B, K, C, ...] -> [B, K * C, ...]: a view when x comes from a grouped conv.
        x = x.expand(K, *x.shape) if x_dim is None else x
        x = x.movedim(0 if x_dim is None else x_dim, 1)
        shape = x.shape
        x = x.reshape(shape[0], K * shape[2], *shape[3:])

        def per_channel(t, dim):
            if t is None:
                return None
            t = t.expand(K, *t.shape) if dim is None else t.movedim(dim, 0)
            return t.reshape(-1)  # a view of the stacked buffer: updates land there

        stats = [per_channel(t, d) for t, d in zip((mean, var, w, b), in_dims[1:5], strict=True)]
        out = F.batch_norm(x, *stats, training, momentum, eps)
        return out.view(shape), 1


def _batch_norm_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """``_BatchNorm.forward`` for tracked, affine, fixed-momentum BatchNorm (the default)."""
    self._check_input_dim(x)
    if self.training:
        self.num_batches_tracked.add_(1)
    return _BatchNorm.apply(
        x,
        self.running_mean,
        self.running_var,
        self.weight,
        self.bias,
        self.training,
        self.momentum,
        self.eps,
    )


def _default_batch_norm(module: nn.Module) -> bool:
    return (
        type(module) in (nn.BatchNorm1d, nn.BatchNorm2d)
        and module.affine
        and module.track_running_stats
        and module.momentum is not None
    )


def plain_conv1d(module: nn.Module) -> bool:
    """A Conv1d with zero padding, no groups and no dilation (the im2col-able kind)."""
    return (
        type(module) is nn.Conv1d
        and module.groups == 1
        and module.dilation == (1,)
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def prepare_template(model: nn.Module) -> nn.Module:
    """Switch ``model``'s plain Linear / Conv1d / BatchNorm modules to these forwards."""
    for module in model.modules():
        if type(module) is nn.Linear:
            module.forward = types.MethodType(_linear_forward, module)
        elif plain_conv1d(module):
            module.forward = types.MethodType(_conv1d_forward, module)
        elif _default_batch_norm(module):
            module.forward = types.MethodType(_batch_norm_forward, module)
    return model
