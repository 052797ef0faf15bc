"""One training step of K stacked ReLU chains, backpropagated by hand into fixed buffers.

The MLP (``[Linear -> ReLU] * n -> Linear``) and the 1D CNN (``[Conv1d -> ReLU] * n ->
flatten -> Linear``) are chains of batched GEMMs, so their forward and backward can be
written out directly. Per layer and step:

* Linear: one ``bmm`` into the next layer's input buffer, an in-place bias add and
  ReLU; backward one ``bmm`` for the weight gradient (into a contiguous buffer, then
  copied into the stacked gradient buffer), one ``sum`` for the bias and one ``bmm``
  for the input gradient, with the ReLU mask applied in place.
* Conv1d (zero padding, no groups or dilation): the input lives channels-last inside a
  zero-padded buffer; im2col is one strided copy of its windows (taps-major, whole
  channel vectors), then one ``bmm`` ``[K, B * L_out, k * C] @ [K, k * C, O]``. The
  ReLU writes straight into the next layer's input buffer (the next padded buffer, or
  the classifier's channels-last features, whose weight columns are reordered to match
  the stock ``flatten``). Backward: the weight gradient is one ``bmm`` against the
  saved windows; the input gradient one ``bmm`` plus ``k`` strided copies and adds (col2im).

Every member's arithmetic is independent of the group it trains in: the same ``bmm``
per layer whatever K, reductions only within a member. A batched GEMM with at least as
many members as threads runs each member's product on one thread, while a product
given several threads may be split across them and its sums split differently (a
16-core Xeon gave a group of two other last bits than the run alone). So on the CPU a step
of K members runs on at most K threads (a lone run on one): a run's numbers are then
bitwise the same alone or in any group.

Every buffer is allocated once per group, so a step allocates nothing of the
activations' size. On the CPU that matters: the autograd path allocates K x B x width
tensors every step, and the page faults of those fresh allocations cost about as much
as the GEMMs themselves (measured in ``benchmarks/``).

The arithmetic is the stock one (``F.linear``, ``F.conv1d``, ``F.relu``,
``F.cross_entropy`` with mean reduction per member): members agree with a plain
``torch.optim`` loop up to float rounding (``tests/test_engine_hand_step.py`` checks
the loss and every gradient against autograd on the stock module in float64).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from lprcausal.models.cnn1d import CNN1d
from lprcausal.models.mlp import MLP
from lprcausal.train.layers import plain_conv1d

_relu_backward = torch.ops.aten.threshold_backward.grad_input


def chain_layers(template: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The (name, module) chain of a plain MLP or 1D CNN, or None for other models."""
    if type(template) is MLP:
        layers = [(f"hidden.{i}", m) for i, m in enumerate(template.hidden)]
    elif type(template) is CNN1d:
        layers = [(f"convs.{i}", m) for i, m in enumerate(template.convs)]
        if not all(plain_conv1d(m) for _, m in layers):
            return None
    else:
        return None
    layers.append(("fc", template.fc))
    if any(type(m) not in (nn.Linear, nn.Conv1d) or m.bias is None for _, m in layers):
        return None
    return layers


@contextmanager
def _at_most_threads(cap: int | None) -> Iterator[None]:
    """Run the block on at most ``cap`` intra-op threads (None: no cap; the count is restored)."""
    threads = torch.get_num_threads()
    if cap is None or threads <= cap:
        yield
        return
    torch.set_num_threads(cap)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _Relaid:
    """A weight used in a column order other than the stored one.

    Stored ``[K, O, b, a]``; the GEMMs use ``[K, O, a * b]`` with columns in ``(a, b)``
    order (a 1D conv's taps-major windows, or channels-last features). The used copy is
    refreshed from the stored weight before each forward, and the gradient computed in
    the used order is copied back into the stored gradient slot: copies of the weight's
    size, which is small next to the activations.
    """

    def __init__(self, w: torch.Tensor, gw: torch.Tensor, a: int, b: int):
        K, n_out = w.shape[:2]
        self.a, self.b = a, b
        self.w4, self.gw4 = w.view(K, n_out, b, a), gw.view(K, n_out, b, a)
        self.w = w.new_empty(K, n_out, a * b)
        self.gw = torch.empty_like(self.w)

    def stored(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` ``[K, O, a * b]`` (used order; any strides) as a ``[K, O, b, a]`` view."""
        return t.unflatten(2, (self.a, self.b)).transpose(2, 3)

    def refresh(self) -> None:
        self.stored(self.w).copy_(self.w4)

    def store_grad(self, t: torch.Tensor) -> None:
        self.gw4.copy_(self.stored(t))


class _Dense:
    """A linear layer: reads ``[K, B, in]``, writes ``dest`` ``[K, B, out]`` (contiguous).

    ``features``: ``(C, L)`` when the input is a conv's channels-last output, whose
    features the stock ``flatten`` orders ``(C, L)``: the weight's columns are used in
    ``(L, C)`` order instead (see :class:`_Relaid`).
    """

    def __init__(self, w, b, gw, gb, B: int, first: bool, relu: bool, features=None):
        self.b, self.gb, self.relu = b, gb, relu
        self.relaid = None if features is None else _Relaid(w, gw, features[1], features[0])
        self.w = w if self.relaid is None else self.relaid.w
        # The weight gradient is formed in a contiguous buffer of its own, then copied to
        # its slot: a GEMM into the strided slot of a K >= 2 group takes another kernel
        # path than into a K = 1 slot (contiguous), which would change a run's bits.
        self.gw_slot = gw
        self.gw = w.new_empty(w.shape) if self.relaid is None else self.relaid.gw
        K, _, n_in = w.shape
        # The first layer reads the batch itself; later ones their own input buffer.
        self.input = None if first else w.new_empty(K, B, n_in)
        self.grad_input = None if first else torch.empty_like(self.input)
        self.dest: torch.Tensor | None = None  # set by wire(): the next layer's input

    def wire(self, dest: torch.Tensor) -> None:
        assert dest.is_contiguous()
        self.dest = dest

    def forward(self, x: torch.Tensor | None) -> None:
        if self.relaid is not None:
            self.relaid.refresh()
        self.x = self.input if x is None else x
        torch.bmm(self.x, self.w.transpose(1, 2), out=self.dest)
        self.dest.add_(self.b.unsqueeze(1))
        if self.relu:
            self.dest.clamp_min_(0)

    def backward(self, g: torch.Tensor) -> torch.Tensor | None:
        """``g``: gradient w.r.t. ``dest`` (consumed); returns the one w.r.t. the input."""
        if self.relu:
            _relu_backward(g, self.dest, 0.0, grad_input=g)
        torch.bmm(g.transpose(1, 2), self.x, out=self.gw)
        if self.relaid is not None:
            self.relaid.store_grad(self.gw)
        else:
            self.gw_slot.copy_(self.gw)
        torch.sum(g, 1, out=self.gb)
        if self.grad_input is None:
            return None
        return torch.bmm(g, self.w, out=self.grad_input)


# Below this many columns (C * k), the weight gradient of a conv is formed transposed:
# MKL runs [C * k, B * L] @ [B * L, O] several times faster than [O, B * L] @ [B * L, C * k]
# when C * k is tiny (the first conv of a 1-channel signal).
_NARROW = 16


class _Conv:
    """A Conv1d + ReLU layer: input channels-last ``[K, B, L, C]`` inside a padded buffer.

    im2col windows are laid out taps-major (``[k, C]`` per output position, C
    contiguous), so both the window copy and col2im move whole channel vectors.
    """

    def __init__(self, w, b, gw, gb, module: nn.Conv1d, B: int, length: int, first: bool):
        K, n_out, C, k = w.shape
        s, p = module.stride[0], module.padding[0]
        self.k, self.s, self.p, self.C, self.O = k, s, p, C, n_out
        self.relaid = _Relaid(w, gw, k, C)
        self.b, self.gb = b, gb
        self.L_out = (length + 2 * p - k) // s + 1
        self.padded = w.new_zeros(K, B, length + 2 * p, C)
        self.input = self.padded[:, :, p : p + length]
        self.cols = w.new_empty(K, B * self.L_out, k * C)
        self.z = w.new_empty(K, B * self.L_out, n_out)
        self.gw_t = w.new_empty(K, k * C, n_out) if k * C < _NARROW else None
        self.first = first
        if not first:
            self.grad_padded = torch.empty_like(self.padded)
            self.grad_cols = torch.empty_like(self.cols)
        self.dest: torch.Tensor | None = None
        self.shape = (K, B, self.L_out, n_out)

    def wire(self, dest: torch.Tensor) -> None:
        self.dest = dest

    def forward(self, _x: torch.Tensor | None) -> None:
        K, B = self.padded.shape[:2]
        self.relaid.refresh()
        windows = self.padded.unfold(2, self.k, self.s)  # [K, B, L_out, C, k]
        self.cols.view(K, B, self.L_out, self.k, self.C).copy_(windows.transpose(-1, -2))
        torch.bmm(self.cols, self.relaid.w.transpose(1, 2), out=self.z)
        self.z.add_(self.b.unsqueeze(1))
        torch.clamp_min(self.z.view(self.shape), 0, out=self.dest)

    def backward(self, g: torch.Tensor) -> torch.Tensor | None:
        gz = self.z  # the pre-activations are no longer needed: reuse their buffer
        _relu_backward(g, self.dest, 0.0, grad_input=gz.view(self.shape))
        if self.gw_t is not None:
            torch.bmm(self.cols.transpose(1, 2), gz, out=self.gw_t)
            self.relaid.store_grad(self.gw_t.transpose(1, 2))
        else:
            torch.bmm(gz.transpose(1, 2), self.cols, out=self.relaid.gw)
            self.relaid.store_grad(self.relaid.gw)
        torch.sum(gz, 1, out=self.gb)
        if self.first:
            return None
        torch.bmm(gz, self.relaid.w, out=self.grad_cols)
        K, B = self.padded.shape[:2]
        taps = self.grad_cols.view(K, B, self.L_out, self.k, self.C)
        gp, s, n = self.grad_padded, self.s, self.L_out
        # Output l read padded position l * s + j. Positions of one residue r = j mod s
        # take taps r, r + s, ... at offsets 0, 1, ...: the first tap is copied in, the
        # others added, and only positions no first tap covers are zeroed.
        for r in range(s):
            positions = gp[:, :, r::s]
            if r >= self.k:
                positions.zero_()
                continue
            positions[:, :, :n].copy_(taps[:, :, :, r])
            positions[:, :, n:].zero_()
            for t, j in enumerate(range(r + s, self.k, s), start=1):
                positions[:, :, t : t + n].add_(taps[:, :, :, j])
        return gp[:, :, self.p : self.p + self.input.shape[2]]


class HandStep:
    """Loss and gradient of K chain members on one batch, with no per-step allocation.

    ``params`` / ``grads``: per-name ``[K, *shape]`` views of the stacked parameters and
    of the gradient buffer, which :meth:`__call__` overwrites.
    """

    def __init__(
        self,
        layers: list[tuple[str, nn.Module]],
        params: dict[str, torch.Tensor],
        grads: dict[str, torch.Tensor],
        in_shape: tuple[int, ...],
        batch_size: int,
    ):
        B = batch_size
        self.layers: list[_Dense | _Conv] = []
        length = in_shape[-1]
        for i, (name, module) in enumerate(layers):
            w, b = params[f"{name}.weight"], params[f"{name}.bias"]
            gw, gb = grads[f"{name}.weight"], grads[f"{name}.bias"]
            last = i == len(layers) - 1
            if isinstance(module, nn.Conv1d):
                layer = _Conv(w, b, gw, gb, module, B, length, first=i == 0)
                length = layer.L_out
            else:
                prev = self.layers[-1] if self.layers else None
                features = (prev.O, prev.L_out) if isinstance(prev, _Conv) else None
                layer = _Dense(w, b, gw, gb, B, first=i == 0, relu=not last, features=features)
            self.layers.append(layer)
        fc = params[f"{layers[-1][0]}.weight"]
        K = fc.shape[0]
        self.logits = fc.new_empty(K, B, fc.shape[1])
        for prev, nxt in zip(self.layers, self.layers[1:], strict=False):
            # A conv feeding the classifier writes channels-last features, [K, B, L, C].
            prev.wire(nxt.input.view(prev.shape) if isinstance(prev, _Conv) else nxt.input)
        self.layers[-1].wire(self.logits)
        self.losses = self.logits.new_empty(K)
        self.minus_one = self.logits.new_full((K, B, 1), -1.0)  # the one-hot's scatter source
        self.batch_size = B
        # No more threads than members, so that no member's GEMM is split over threads.
        self.thread_cap = K if fc.device.type == "cpu" else None

    def forward(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Logits ``[K, B, n_classes]`` (a buffer overwritten by the next call).

        ``x`` is ``[K, B, ...]``, or ``[B, ...]`` for one batch seen by every member
        (``shared``). Training mode equals eval mode for these models (no BatchNorm or
        dropout), and the gradient buffer is not touched.
        """
        with torch.no_grad(), _at_most_threads(self.thread_cap):
            return self._forward(x, shared)

    def _forward(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        first = self.layers[0]
        K, B = self.logits.shape[:2]
        if shared:
            x = x.unsqueeze(0).expand(K, *x.shape)
        if isinstance(first, _Conv):
            first.input.copy_(x.transpose(-1, -2))  # [K, B, C, L] -> channels-last
        first.forward(x.reshape(K, B, -1))
        for layer in self.layers[1:]:
            layer.forward(None)  # reads its input buffer, written by the layer before
        return self.logits

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member mean cross-entropy ``[K]`` of ``x`` ``[K, B, ...]``; fills the gradients."""
        with torch.no_grad(), _at_most_threads(self.thread_cap):
            return self._step(x, y)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        K, B = y.shape
        self._forward(x, False)
        log_p = torch.log_softmax(self.logits, dim=-1)
        picked = log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        torch.mean(picked, 1, out=self.losses).neg_()
        # d(sum of the members' mean losses) / d logits = (softmax - onehot) / B.
        g = torch.exp(log_p, out=log_p)
        g.scatter_add_(-1, y.unsqueeze(-1), self.minus_one)
        g.div_(B)
        for i in range(len(self.layers) - 1, -1, -1):
            g = self.layers[i].backward(g)
            if g is not None and isinstance(self.layers[i - 1], _Conv):
                g = g.view(self.layers[i - 1].shape)
        return self.losses
