"""A fused optimizer update over the ``[K, P]`` parameters of K stacked runs.

Row k of the parameter tensor is member k. Every hyperparameter that may differ per
member (lr and its schedule, weight decay, momentum, betas, eps) is a ``[K, 1]``
tensor that broadcasts over the row, and the per-step values (scheduled lr, Adam's
bias corrections) are tabulated once for the whole run, so one update is a handful of
whole-tensor operations whatever the number of layers or members, with no per-step
host work or host-to-device copies. The arithmetic follows ``torch.optim.SGD`` /
``Adam`` / ``AdamW`` (single-tensor path) operation by operation, so each member
reproduces a plain ``torch.optim`` loop up to float rounding.

Per-step values are read through :meth:`FusedOptimizer.row`: normally a view of the
table at step ``t``; after :meth:`FusedOptimizer.use_static_rows` (a CUDA graph replays
one captured step, so it needs the same addresses every step) from buffers that
:meth:`FusedOptimizer.load_rows` fills before each replay. Both read the same values.

Masks: the weights are masked once when the group is built, and every gradient is
multiplied by the keep-mask before it enters the optimizer. A pruned weight then has
zero gradient, zero weight-decay term and zero momentum / Adam moments, so every
update leaves it exactly zero without masking the weights again (one pass saved).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from lprcausal.config import TrainConfig


@lru_cache(maxsize=256)
def _lr_schedule(config: TrainConfig, n_train: int) -> tuple[float, ...]:
    # Computed once per distinct config: members of a sweep often share schedules.
    return tuple(config.lr * f for f in config.lr_factors(n_train))


class FusedOptimizer:
    """SGD (momentum, nesterov) or Adam / AdamW for ``[K, P]`` parameters.

    ``configs`` are the K members' hyperparameters (one optimizer family and nesterov
    setting for all); ``keep`` is the float ``[K, P]`` mask or None; ``n_train`` sizes
    the schedules. ``step(flat, grad)`` updates ``flat`` in place and consumes ``grad``.
    """

    def __init__(
        self,
        configs: list[TrainConfig],
        flat: torch.Tensor,
        keep: torch.Tensor | None,
        n_train: int,
    ):
        kinds = {(c.optimizer, c.nesterov) for c in configs}
        if len(kinds) != 1:
            raise ValueError(f"members of one fused group must share the optimizer, got {kinds}")
        ((self.kind, self.nesterov),) = kinds
        self.keep = keep
        self.t = 0
        self._static: dict[str, torch.Tensor] | None = None
        dev, dt = flat.device, flat.dtype
        f64 = torch.float64

        def column(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=f64).view(-1, 1).to(device=dev, dtype=dt)

        lr = torch.tensor([_lr_schedule(c, n_train) for c in configs], dtype=f64).T  # [T, K]
        wd = [c.weight_decay for c in configs]
        self.weight_decay = column(wd) if any(wd) else None
        if self.kind == "sgd":
            self.neg_lr = (-lr).unsqueeze(-1).to(device=dev, dtype=dt)
            mom = [c.momentum for c in configs]
            self.momentum = column(mom) if any(mom) else None
            self.buf = torch.zeros_like(flat) if any(mom) else None
            return
        steps = torch.arange(1, lr.shape[0] + 1, dtype=f64).view(-1, 1)
        beta1 = torch.tensor([c.beta1 for c in configs], dtype=f64)
        beta2 = torch.tensor([c.beta2 for c in configs], dtype=f64)
        # torch.optim.Adam: step_size = lr / (1 - beta1**t); denom uses sqrt(1 - beta2**t).
        self.neg_step_size = (-lr / (1 - beta1**steps)).unsqueeze(-1).to(device=dev, dtype=dt)
        self.bc2_sqrt = (1 - beta2**steps).sqrt().unsqueeze(-1).to(device=dev, dtype=dt)
        if self.kind == "adamw" and self.weight_decay is not None:
            self.decay = (1 - lr * torch.tensor(wd, dtype=f64)).unsqueeze(-1).to(dev, dt)
        self.one_minus_beta1 = column([1 - c.beta1 for c in configs])
        self.beta2 = column([c.beta2 for c in configs])
        self.one_minus_beta2 = column([1 - c.beta2 for c in configs])
        self.eps = column([c.eps for c in configs])
        self.exp_avg = torch.zeros_like(flat)
        self.exp_avg_sq = torch.zeros_like(flat)
        self.tmp = torch.empty_like(flat)

    def row(self, name: str) -> torch.Tensor:
        """The ``[K, 1]`` value of the per-step table ``name`` at the current step."""
        if self._static is not None:
            return self._static[name]
        return getattr(self, name)[self.t]

    def use_static_rows(self) -> None:
        """Read per-step values from buffers with fixed addresses (see :meth:`load_rows`)."""
        names = [n for n in ("neg_lr", "neg_step_size", "bc2_sqrt", "decay") if hasattr(self, n)]
        self._static = {n: getattr(self, n)[0].clone() for n in names}

    def load_rows(self) -> None:
        """Copy step ``t``'s row of every per-step table into its static buffer."""
        for name, buf in (self._static or {}).items():
            buf.copy_(getattr(self, name)[self.t])

    def step(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        """Apply one update in place to ``flat`` given its gradient ``grad`` (consumed)."""
        self.update(flat, grad)
        self.advance()

    def advance(self) -> None:
        """On to the next step's hyperparameters."""
        self.t += 1

    @torch.no_grad()
    def update(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        """:meth:`step` without advancing the step counter ``t`` (a CUDA graph's body)."""
        if self.keep is not None:
            grad.mul_(self.keep)
        if self.kind == "sgd":
            self._sgd(flat, grad)
        else:
            self._adam(flat, grad)

    def _sgd(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        if self.weight_decay is not None:
            grad.addcmul_(flat, self.weight_decay)  # grad + wd * p
        direction = grad
        if self.momentum is not None:
            # buf = momentum * buf + grad; the zero-initialized buffer makes step 1 buf = grad.
            torch.addcmul(grad, self.buf, self.momentum, out=self.buf)
            if self.nesterov:
                grad.addcmul_(self.buf, self.momentum)
            else:
                direction = self.buf
        flat.addcmul_(direction, self.row("neg_lr"))

    def _adam(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        if self.weight_decay is not None:
            if self.kind == "adamw":
                flat.mul_(self.row("decay"))  # decoupled: p *= 1 - lr * wd
            else:
                grad.addcmul_(flat, self.weight_decay)
        self.exp_avg.lerp_(grad, self.one_minus_beta1)
        torch.mul(grad, self.one_minus_beta2, out=self.tmp)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(self.tmp, grad)  # b2 * v + (1 - b2) * g * g
        denom = torch.sqrt(self.exp_avg_sq, out=self.tmp)
        denom.div_(self.row("bc2_sqrt")).add_(self.eps)
        torch.div(self.exp_avg, denom, out=denom)
        flat.addcmul_(denom, self.row("neg_step_size"))
