"""Training any ``nn.Module``: whether its runs fuse, and per-run random draws.

Every network trains through the same :class:`~lprcausal.train.stacked.StackedModel`
(autograd through the stock module or ``functional_call``; masks enforced by the fused
optimizer). A fused group runs its members one after another on the CPU (each exactly
as alone) and under ``torch.func.vmap`` on CUDA. Whether runs of a network may share a
group:

* the built-in models always can; they fuse on CUDA, and on the CPU unless they have
  2D convolutions (measured in ``benchmarks/``);
* a model given by import path is *probed* once per (model, input shape): two members
  with different weights run a training forward and backward and an eval forward under
  ``vmap``, and must reproduce what each computes alone. A model that draws random
  numbers in training (Dropout: a member's draws would depend on its group), that
  ``vmap`` cannot run, or whose stacked members differ from their single runs trains one
  run at a time; otherwise the built-ins' rule for the device decides (2D/3D and
  transposed convolutions: one at a time on the CPU).

:func:`fusion_choice` gives the decision with its reason (``study plan`` prints it);
:func:`run_random_state` gives each one-at-a-time run its own seeded generator, so
Dropout masks are reproducible and differ between runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from lprcausal.config import ModelConfig, derive_seed
from lprcausal.errors import LprError
from lprcausal.models import build_network

_SLOW_ON_CPU = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_PROBE_BATCH = 3


@dataclass(frozen=True)
class FusionChoice:
    """Whether runs of one model train fused, and why (one line, for ``study plan``)."""

    fused: bool
    reason: str

    def describe(self, k: int | None = None) -> str:
        if self.fused:
            return f"fused, K={k}" if k else "fused"
        return f"one at a time: {self.reason}"


def fusion_choice(
    model: ModelConfig,
    in_shape: tuple[int, ...],
    n_classes: int,
    device: torch.device,
    fuse: bool | str = "auto",
) -> FusionChoice:
    """Fuse the runs of ``model`` on ``device``? (``fuse``: the engine option)."""
    if fuse is False:
        return FusionChoice(False, "fusion turned off (--no-fuse)")
    if model.is_user:
        problem = stack_problem(model, tuple(in_shape), n_classes)
        if problem is not None:
            return FusionChoice(False, problem)
    if fuse is True or device.type != "cpu":
        return FusionChoice(True, "")
    slow = _slow_on_cpu(model, tuple(in_shape), n_classes)
    if slow:
        return FusionChoice(
            False, f"{slow} layers run faster one run at a time on the CPU"
        )
    return FusionChoice(True, "")


@lru_cache(maxsize=64)
def _slow_on_cpu(model: ModelConfig, in_shape: tuple, n_classes: int) -> str:
    # Built on the CPU, not under ``torch.device("meta")``: that context routes the
    # initializers through torch._refs, whose first use imports torch._dynamo (1-1.5 s).
    with torch.random.fork_rng(devices=[]):
        net = build_network(model, in_shape, n_classes)
    kinds = sorted({type(m).__name__ for m in net.modules() if isinstance(m, _SLOW_ON_CPU)})
    return "/".join(kinds)


@lru_cache(maxsize=64)
def stack_problem(model: ModelConfig, in_shape: tuple[int, ...], n_classes: int) -> str | None:
    """Why runs of ``model`` cannot be stacked, or None when they can (probed on the CPU)."""
    from lprcausal.train.stacked import StackedModel  # stacked imports this package's peers

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        nets = [build_network(model, in_shape, n_classes) for _ in range(2)]
        x = torch.randn(2, _PROBE_BATCH, *in_shape)
    drop = sorted({type(m).__name__ for m in nets[0].modules()
                   if isinstance(m, _DropoutNd) and m.p > 0})
    if drop:
        return (f"it draws random numbers in training ({', '.join(drop)}); each run keeps "
                "its own seeded draws")
    states = [{k: v.detach().clone() for k, v in n.state_dict().items()} for n in nets]
    cpu = torch.device("cpu")
    try:
        with warnings.catch_warnings():
            # vmap runs ops without a batching rule (CPU attention kernels) by a loop over
            # the members: correct, so not worth a warning per op
            warnings.filterwarnings("ignore", message="There is a performance drop")
            got = _run_fused(model, states, in_shape, n_classes, x)
        want = []
        for k in range(2):
            one = StackedModel(model, [states[k]], [None], in_shape, n_classes, cpu, torch.float32)
            want.append(_run_probe(one, x[k : k + 1]))
    except LprError:
        raise
    except Exception as exc:  # vmap / functional_call cannot run it
        text = " ".join(str(exc).split())[:160]
        return f"torch.func cannot stack it ({type(exc).__name__}: {text})"
    for k in range(2):
        for a, b in zip(want[k], got, strict=True):
            # float rounding differs between batched and plain kernels: compare on the
            # scale of the tensor, not element by element
            if (a[0] - b[k]).abs().max() > 1e-4 * a[0].abs().max() + 1e-6:
                return "stacked runs do not reproduce their single runs (checked on a probe batch)"
    return None


def _run_fused(model: ModelConfig, states, in_shape, n_classes, x) -> tuple[torch.Tensor, ...]:
    from lprcausal.train.stacked import StackedModel

    fused = StackedModel(model, states, [None, None], in_shape, n_classes, torch.device("cpu"),
                         torch.float32, vmapped=True)
    return _run_probe(fused, x)


def _run_probe(model, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Training logits, the flat gradient of their sum of squares, and eval logits."""
    model.template.train()
    logits = model.forward(x)
    model.backward(logits.pow(2).sum())
    grad = model.grad.clone()
    model.template.eval()
    with torch.no_grad():
        evaluated = model.forward(x)
    model.template.train()
    return logits.detach(), grad, evaluated


@contextmanager
def run_random_state(data_seeds: list[int], device: torch.device) -> Iterator[None]:
    """Seed torch's generators for a group of runs, restoring them afterwards.

    A run trained alone draws its Dropout masks (and any other random op in its forward)
    from a generator seeded from its data seed: reproducible, and different per run.
    Fused groups draw nothing (random models never fuse); they get the first member's seed.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        seed = derive_seed(data_seeds[0], "forward-randomness")
        torch.manual_seed(seed)
        yield
