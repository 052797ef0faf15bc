"""K runs of one architecture held as one stacked model.

All trainable parameters of the K members live in one ``[K, P]`` tensor ``flat``: row
k is member k's parameters, concatenated in ``named_parameters`` order. Member-major
rows make every per-member optimizer hyperparameter a ``[K, 1]`` broadcast and a
member's state one contiguous row.

The members are evaluated in one of two ways:

* **Member by member** (the CPU, and any K = 1 group): the stock module runs once per
  member with its parameters and buffers bound to views of the stacked tensors. Every
  member then does exactly the arithmetic of a run trained alone (same kernels, same
  shapes, same reduction order), so its numbers are bitwise identical whatever group
  it trains in. On the CPU this costs nothing for 2D convolutions (grouped convolutions
  are slower there than separate ones); MLPs and 1D CNNs keep their batched speed
  through the hand-written step (:mod:`lprcausal.train.hand_step`), which is
  member-invariant by its own construction.
* **Vmapped** (CUDA, or ``torch.compile``): ``torch.func.vmap`` over ``functional_call``
  of a stateless template, so linear layers become batched matmuls (and 1D
  convolutions batched GEMMs, see :mod:`lprcausal.train.layers`; 2D ones grouped
  convolutions), while BatchNorm keeps per-member running statistics in stacked
  buffers. Members agree with runs trained alone to float rounding, not bitwise.

Member by member on the CPU, the built-in models with 2D convolutions run channels-last:
the batch and each conv weight are handed to the module in ``channels_last`` memory
format (a copy of the weight inside the graph, so gradients still reach the stored
view), and oneDNN then takes its NHWC kernels. Same math, other float rounding than
NCHW, and 1.2-1.6x faster per run on 2 cores (LeNet-5, VGG-11, ResNet-20; ``benchmarks/``).

Training differentiates per-parameter leaf views of ``flat``; their gradients are
gathered in the ``[K, P]`` buffer ``grad`` laid out like ``flat``. Vmapped linear
layers write their weight gradients straight into it (see
:mod:`lprcausal.train.layers`); any other gradient is copied in by
:meth:`StackedModel.backward`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.func import functional_call, vmap

from lprcausal.config import ModelConfig
from lprcausal.errors import LprError
from lprcausal.models import build_network
from lprcausal.train.hand_step import HandStep, chain_layers
from lprcausal.train.layers import prepare_template

EVAL_CHUNK = 2048


class StackedModel:
    """K members of one architecture: ``flat`` ``[K, P]`` parameters plus stacked buffers.

    ``states`` are ordinary ``state_dict``s (one per member); ``masks`` map parameter
    names to bool tensors (True = kept) or are None. ``keep`` is the float ``[K, P]``
    mask (None when no member has one); ``flat`` is masked on construction.
    ``direct_grads=False`` turns off the linear layers' writes into ``grad`` (for
    ``torch.compile``, which traces the backward ahead of time). ``vmapped``: evaluate
    the members under ``vmap`` (None: when K > 1 on a non-CPU device); otherwise member
    by member, each bitwise as it would train alone.
    """

    def __init__(
        self,
        spec: ModelConfig,
        states: Sequence[dict[str, torch.Tensor]],
        masks: Sequence[dict[str, torch.Tensor] | None],
        in_shape: tuple[int, ...],
        n_classes: int,
        device: torch.device,
        dtype: torch.dtype,
        direct_grads: bool = True,
        vmapped: bool | None = None,
    ):
        with torch.random.fork_rng(devices=[]):  # the template's values are never used
            template = build_network(spec, tuple(in_shape), n_classes)
        self.in_shape = tuple(in_shape)
        self.template = template.to(device="meta", dtype=dtype)
        self.K = len(states)
        if vmapped is None:
            vmapped = self.K > 1 and torch.device(device).type != "cpu"
        self.vmapped = vmapped and self.K > 1
        if self.vmapped:
            prepare_template(self.template)
        self.param_names = [n for n, _ in self.template.named_parameters()]
        self.buffer_names = [n for n, _ in self.template.named_buffers()]
        self._hand: HandStep | None = None  # set by hand_step(); also used for accuracy
        meta = dict(self.template.named_parameters())
        self.shapes = [tuple(meta[n].shape) for n in self.param_names]
        self.sizes = [meta[n].numel() for n in self.param_names]
        _check_states(spec.name, states, self.param_names + self.buffer_names, meta)
        rows = [torch.cat([s[n].reshape(-1).to(dtype) for n in self.param_names]) for s in states]
        self.flat = torch.stack(rows).to(device)
        self.buffers = {}
        for n in self.buffer_names:
            t = torch.stack([s[n] for s in states])
            self.buffers[n] = (t.to(dtype) if t.is_floating_point() else t).to(device)
        self.keep = self._keep_mask(masks, device, dtype)
        if self.keep is not None:
            self.flat.mul_(self.keep)
        self.grad = torch.zeros_like(self.flat)
        if self.vmapped:
            self.leaves = self._views(self.flat)
            slots = self._views(self.grad)
            self._pairs = [(self.leaves[n], slots[n]) for n in self.param_names]
        else:
            # One set of leaves per member: member k's gradient is its own graph's.
            self.members = [self._member_views(self.flat, k) for k in range(self.K)]
            self._member_pairs = [
                [(self.members[k][n], slot) for n, slot in self._member_views(self.grad, k).items()]
                for k in range(self.K)
            ]
            self._pairs = [pair for pairs in self._member_pairs for pair in pairs]
        for leaf, slot in self._pairs:
            leaf.requires_grad_(True)
            if direct_grads:
                leaf.grad_slot = slot
        self._bound = -1  # the member whose tensors the template holds (member by member)
        # 4D parameters (2D conv weights) used channels-last, member by member on the CPU.
        self._nhwc = []
        if not self.vmapped and torch.device(device).type == "cpu" and not spec.is_user:
            self._nhwc = [n for n, shape in zip(self.param_names, self.shapes, strict=True)
                          if len(shape) == 4]

        def forward(params, buffers, x):
            return functional_call(self.template, (params, buffers), (x,))

        self._forward_each = vmap(forward, in_dims=(0, 0, 0))
        self._forward_shared = vmap(forward, in_dims=(0, 0, None))

    def _member_views(self, rows: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        """Per-name views of row k of a ``[K, P]`` tensor, in each parameter's shape."""
        chunks = rows[k].split(self.sizes)
        return {
            n: c.view(shape)
            for n, c, shape in zip(self.param_names, chunks, self.shapes, strict=True)
        }

    def _bind_member(self, k: int) -> torch.nn.Module:
        """The template with member k's parameters and buffers bound to it."""
        if self._bound != k:
            for n in self.param_names:
                _bind(self.template, n, self.members[k][n], parameter=True)
            for n in self.buffer_names:
                _bind(self.template, n, self.buffers[n][k], parameter=False)
            self._bound = k
        return self.template

    def _keep_mask(self, masks, device, dtype) -> torch.Tensor | None:
        if all(m is None for m in masks):
            return None
        known = set(self.param_names)
        rows = []
        for mask in masks:
            mask = mask or {}
            extra = sorted(set(mask) - known)
            if extra:
                raise LprError(
                    f"The mask names parameters the model does not have: {extra[:3]}; "
                    f"expected names among {self.param_names[:4]}..."
                )
            pieces = []
            for name, shape, size in zip(self.param_names, self.shapes, self.sizes, strict=True):
                m = mask.get(name)
                if m is None:
                    pieces.append(torch.ones(size, dtype=dtype))
                    continue
                if tuple(m.shape) != shape:
                    raise LprError(
                        f"The mask for {name!r} has shape {tuple(m.shape)}: expected {shape} "
                        "(the parameter's shape in this model)."
                    )
                pieces.append(m.detach().reshape(-1).to(device="cpu", dtype=torch.bool).to(dtype))
            rows.append(torch.cat(pieces))
        return torch.stack(rows).to(device)

    def _views(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-name ``[K, *shape]`` views into a ``[K, P]`` tensor."""
        chunks = rows.split(self.sizes, dim=1)
        return {
            n: c.view(self.K, *shape)
            for n, c, shape in zip(self.param_names, chunks, self.shapes, strict=True)
        }

    def hand_step(self, batch_size: int) -> HandStep | None:
        """A hand-written training step for this architecture, if it has one.

        MLPs and 1D CNNs have one: it computes what :meth:`forward` + :meth:`backward`
        of the mean cross-entropy would, into buffers allocated once (see
        :mod:`lprcausal.train.hand_step`). Other models return None.
        """
        layers = chain_layers(self.template)
        if layers is None:
            return None
        params, grads = self._views(self.flat), self._views(self.grad)
        self._hand = HandStep(layers, params, grads, self.in_shape, batch_size)
        return self._hand

    def forward(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Logits ``[K, B, n_classes]``; ``x`` is ``[K, B, ...]``, or ``[B, ...]`` if ``shared``."""
        if not self.vmapped:
            return torch.stack(
                [self.forward_member(k, x if shared else x[k]) for k in range(self.K)]
            )
        fn = self._forward_shared if shared else self._forward_each
        return fn(self.leaves, self.buffers, x)

    def forward_member(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Member k's logits ``[B, n_classes]`` for ``x`` ``[B, ...]`` (member by member only)."""
        module = self._bind_member(k)
        if self._nhwc:
            # ``to`` also copies a tensor whose strides fit both formats (one channel), so
            # oneDNN sees channels-last strides. A fresh copy per call: part of its graph.
            # Only these slots change per call; the member's other views stay bound.
            for n in self._nhwc:
                weight = self.members[k][n].to(memory_format=torch.channels_last)
                _bind(module, n, weight, parameter=True)
            if x.dim() == 4:
                x = x.to(memory_format=torch.channels_last)
        return module(x)

    def backward(self, loss: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """Differentiate ``loss`` into ``grad`` (``[K, P]``) and return it.

        ``member``: ``loss`` is member k's alone (member by member only), and only row k of
        ``grad`` is overwritten; otherwise every row is.
        """
        pairs = self._pairs if member is None else self._member_pairs[member]
        leaves = []
        for leaf, slot in pairs:
            leaves.append(leaf)
            slot.claimed = False
        # autograd.grad hands gradients back as produced (no ``.grad`` layout contract), so
        # the ones already written into their slot need no copy.
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        for (_, slot), g in zip(pairs, grads, strict=True):
            if g is None:
                slot.zero_()  # a parameter the forward did not use
            elif g.data_ptr() != slot.data_ptr() or g.stride() != slot.stride():
                slot.copy_(g)
        return self.grad

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's ordinary ``state_dict`` (CPU copies, in the training dtype)."""
        with torch.no_grad():
            chunks = self.flat[k].split(self.sizes)
            state = {
                n: c.view(shape).to("cpu", copy=True)
                for n, c, shape in zip(self.param_names, chunks, self.shapes, strict=True)
            }
            state.update({n: self.buffers[n][k].to("cpu", copy=True) for n in self.buffer_names})
        return state

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, autocast: Callable) -> torch.Tensor:
        """Accuracy of every member on ``(x, y)`` in eval mode, as a float64 ``[K]`` CPU tensor."""
        if len(y) == 0:
            return torch.full((self.K,), float("nan"), dtype=torch.float64)
        correct = torch.zeros(self.K, device=x.device, dtype=torch.int64)
        if self._hand is not None:
            # The hand-written forward, in chunks of its batch size (the last one padded).
            B = self._hand.batch_size
            for i in range(0, len(y), B):
                xc, yc = x[i : i + B], y[i : i + B]
                if len(yc) < B:
                    xc = torch.cat([xc, xc.new_zeros(B - len(yc), *xc.shape[1:])])
                out = self._hand.forward(xc, shared=True)[:, : len(yc)]
                correct += (out.argmax(-1) == yc).sum(-1)
            return (correct.double() / len(y)).cpu()
        self.template.eval()
        try:
            for i in range(0, len(y), EVAL_CHUNK):
                with autocast():
                    out = self.forward(x[i : i + EVAL_CHUNK], shared=True)
                correct += (out.argmax(-1) == y[i : i + EVAL_CHUNK]).sum(-1)
        finally:
            self.template.train()
        return (correct.double() / len(y)).cpu()


def _bind(module: torch.nn.Module, name: str, tensor: torch.Tensor, parameter: bool) -> None:
    """Make ``tensor`` the module's parameter / buffer ``name`` (no copy, no re-registration)."""
    owner_name, _, attr = name.rpartition(".")
    owner = module.get_submodule(owner_name)
    if parameter:
        owner._parameters[attr] = tensor
    else:
        owner._buffers[attr] = tensor


def _check_states(model: str, states, names: list[str], meta: dict) -> None:
    for state in states:
        missing = [n for n in names if n not in state]
        if missing:
            raise LprError(
                f"The starting weights do not match model {model!r}: missing {missing[:3]}; "
                "expected a full state_dict of that model."
            )
        for n, p in meta.items():
            if tuple(state[n].shape) != tuple(p.shape):
                raise LprError(
                    f"The starting weight {n!r} has shape {tuple(state[n].shape)}: expected "
                    f"{tuple(p.shape)} for model {model!r}."
                )
