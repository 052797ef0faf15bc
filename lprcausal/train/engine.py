"""The training engine: a list of runs in, their results out.

Runs that share architecture, dataset, batch size, length and optimizer family are
trained together as K members of one stacked model (horizontal fusion): the model is
evaluated with ``torch.func.vmap`` over stacked parameters, so linear layers become
batched matmuls and convolutions grouped convolutions, BatchNorm keeps running
statistics per member, and the optimizer updates one flat parameter buffer. Every
member has its own initialization, data order, learning rate and schedule, weight
decay, momentum and mask, so a member trains exactly as it would alone (to float
rounding). K = 1 is the ordinary single-run case: there is no second training loop.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from lprcausal.data import Dataset, apply_crop_flip, crop_flip_params
from lprcausal.errors import LprError
from lprcausal.models import build_model
from lprcausal.train.budget import group_capacity
from lprcausal.train.jobs import TrainJob, TrainResult
from lprcausal.train.optim import FusedOptimizer

EVAL_CHUNK = 2048


@dataclass
class EngineOptions:
    """How the engine runs (none of this changes what a run computes, beyond float rounding).

    ``fuse``: train compatible runs together (False: one run at a time).
    ``max_members``: cap on K (None: as many as the memory budget allows).
    ``memory_fraction``: share of free RAM / GPU memory a group may plan to use.
    ``precision``: ``"fp32"``, or ``"bf16"`` autocast (CUDA only).
    ``dtype``: parameter dtype (``torch.float64`` for equivalence checks).
    """

    device: str | torch.device | None = None
    fuse: bool = True
    max_members: int | None = None
    memory_fraction: float = 0.5
    precision: str = "fp32"
    dtype: torch.dtype = torch.float32
    progress: bool = True


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when present (and not overridden), otherwise the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LprError(f"device = {str(device)!r} is not available: no CUDA device was found.")
    return dev


def group_key(job: TrainJob, n_train: int) -> tuple:
    """Runs with equal keys can be fused into one group."""
    t = job.train
    return (
        job.model,
        t.batch_size,
        t.total_steps(n_train),
        t.optimizer,
        t.nesterov,
        t.augment,
    )


def train_many(
    jobs: Sequence[TrainJob],
    data: Dataset,
    options: EngineOptions | None = None,
    on_result: Callable[[int, TrainResult], None] | None = None,
) -> list[TrainResult]:
    """Train every job and return results in the same order.

    ``on_result(i, result)`` is called as soon as job ``i`` finishes, so callers can
    store results group by group (a killed process loses at most the group in flight).
    """
    options = options or EngineOptions()
    device = pick_device(options.device)
    if options.precision not in ("fp32", "bf16"):
        raise LprError(f"precision = {options.precision!r} is not valid: expected 'fp32' or 'bf16'.")
    if options.precision != "fp32" and device.type != "cuda":
        raise LprError(
            f"precision = {options.precision!r} needs a CUDA device (device is {device}); "
            "use precision = 'fp32' on the CPU."
        )
    n_train = data.n_train
    for job in jobs:
        job.train.steps_per_epoch(n_train)  # batch size vs train set: clear error early
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, job in enumerate(jobs):
        groups[group_key(job, n_train)].append(i)
    data_dev = data.to(device)
    results: list[TrainResult | None] = [None] * len(jobs)
    for indices in groups.values():
        cap = 1 if not options.fuse else group_capacity(jobs[indices[0]], data_dev, device, options)
        for start in range(0, len(indices), cap):
            chunk = indices[start : start + cap]
            out = _train_group([jobs[i] for i in chunk], data_dev, device, options)
            for i, res in zip(chunk, out, strict=True):
                results[i] = res
                if on_result is not None:
                    on_result(i, res)
    return results  # type: ignore[return-value]


def _stack(states: list[dict[str, torch.Tensor]], names: list[str], device, dtype=None):
    out = {}
    for n in names:
        t = torch.stack([s[n] for s in states]).to(device)
        out[n] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    return out


class StackedModel:
    """K members of one architecture as stacked tensors plus a stateless template module."""

    def __init__(self, jobs: list[TrainJob], data: Dataset, device, dtype):
        spec = jobs[0].model
        self.template = build_model(spec.name, data.in_shape, data.n_classes, widths=spec.widths)
        self.template = self.template.to(device="meta", dtype=dtype)
        self.K = len(jobs)
        self.param_names = [n for n, _ in self.template.named_parameters()]
        self.buffer_names = [n for n, _ in self.template.named_buffers()]
        states = [job.init_state for job in jobs]
        missing = [n for n in self.param_names + self.buffer_names if n not in states[0]]
        if missing:
            raise LprError(
                f"The starting weights do not match model {spec.name!r}: missing {missing[:3]}."
            )
        stacked = _stack(states, self.param_names, device, dtype)
        self.shapes = {n: stacked[n].shape for n in self.param_names}
        self.sizes = [stacked[n].numel() for n in self.param_names]
        self.flat = torch.cat([stacked[n].reshape(-1) for n in self.param_names]).contiguous()
        self.buffers = _stack(states, self.buffer_names, device, dtype)
        # member index of every element of the flat buffer (layout: per param [K, n])
        member = torch.arange(self.K, device=device)
        self.member_of = torch.cat(
            [member.repeat_interleave(s // self.K) for s in self.sizes]
        )
        self.mask = self._stack_masks(jobs, device, dtype)
        if self.mask is not None:
            with torch.no_grad():
                self.flat.mul_(self.mask)
        self.flat.requires_grad_(True)

        def forward(params, buffers, x):
            return functional_call(self.template, (params, buffers), (x,))

        self.forward_each = vmap(forward, in_dims=(0, 0, 0))
        self.forward_shared = vmap(forward, in_dims=(0, 0, None))

    def _stack_masks(self, jobs, device, dtype) -> torch.Tensor | None:
        if all(job.mask is None for job in jobs):
            return None
        pieces = []
        for name in self.param_names:
            per = []
            for job in jobs:
                m = (job.mask or {}).get(name)
                shape = self.shapes[name][1:]
                if m is None:
                    per.append(torch.ones(shape, dtype=dtype))
                else:
                    if tuple(m.shape) != tuple(shape):
                        raise LprError(
                            f"The mask for {name!r} has shape {tuple(m.shape)}, expected "
                            f"{tuple(shape)} for this model."
                        )
                    per.append(m.to(dtype))
            pieces.append(torch.stack(per).reshape(-1))
        for job in jobs:
            extra = set(job.mask or {}) - set(self.param_names)
            if extra:
                raise LprError(
                    f"The mask names parameters the model does not have: {sorted(extra)[:3]}."
                )
        return torch.cat(pieces).to(device)

    def params(self) -> dict[str, torch.Tensor]:
        """Per-name stacked views ``[K, *shape]`` into the flat buffer (autograd-tracked)."""
        chunks = self.flat.split(self.sizes)
        return {n: c.view(self.shapes[n]) for n, c in zip(self.param_names, chunks, strict=True)}

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's ordinary ``state_dict`` (CPU copies)."""
        with torch.no_grad():
            p = self.params()
            state = {n: p[n][k].detach().cpu().clone() for n in self.param_names}
            state.update({n: self.buffers[n][k].cpu().clone() for n in self.buffer_names})
        return state

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, autocast) -> torch.Tensor:
        """Accuracy of every member on (x, y) in eval mode, as a [K] tensor."""
        if len(y) == 0:
            return torch.full((self.K,), float("nan"))
        self.template.eval()
        correct = torch.zeros(self.K, device=x.device, dtype=torch.float64)
        params = {n: v.detach() for n, v in self.params().items()}
        for i in range(0, len(y), EVAL_CHUNK):
            with autocast():
                out = self.forward_shared(params, self.buffers, x[i : i + EVAL_CHUNK])
            correct += (out.argmax(-1) == y[i : i + EVAL_CHUNK]).sum(-1)
        self.template.train()
        return (correct / len(y)).cpu()


class _Batches:
    """Per-member sample order (and augmentation) drawn epoch by epoch from per-run seeds."""

    def __init__(self, jobs: list[TrainJob], data: Dataset, device):
        self.data = data
        self.B = jobs[0].train.batch_size
        self.augment = jobs[0].train.augment
        self.n = data.n_train
        self.spe = self.n // self.B
        self.gens = [torch.Generator().manual_seed(job.data_seed) for job in jobs]
        self.device = device
        self.epoch_idx: torch.Tensor | None = None

    def new_epoch(self) -> None:
        perms, aug = [], []
        for g in self.gens:
            perms.append(torch.randperm(self.n, generator=g))
            if self.augment:
                aug.append(crop_flip_params(self.n, g))
        self.epoch_idx = torch.stack(perms)[:, : self.spe * self.B].to(self.device)
        if self.augment:
            self.aug = [torch.stack([a[j] for a in aug]).to(self.device) for j in range(3)]

    def batch(self, step_in_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.epoch_idx[:, step_in_epoch * self.B : (step_in_epoch + 1) * self.B]
        x = self.data.x_train[idx]
        if self.augment:
            K, B = idx.shape
            dy, dx, flip = (torch.gather(a, 1, idx).reshape(-1) for a in self.aug)
            x = apply_crop_flip(x.reshape(K * B, *x.shape[2:]), dy, dx, flip).reshape(x.shape)
        return x, self.data.y_train[idx]


def _train_group(jobs: list[TrainJob], data: Dataset, device, options: EngineOptions):
    t0 = time.perf_counter()
    model = StackedModel(jobs, data, device, options.dtype)
    K = model.K
    configs = [job.train for job in jobs]
    total = configs[0].total_steps(data.n_train)
    lr_table = torch.tensor(
        [[c.lr * f for f in c.lr_factors(data.n_train)] for c in configs],
        dtype=options.dtype,
        device=device,
    ).T.contiguous()
    opt = FusedOptimizer(configs, model.flat, model.member_of, model.mask, lr_table)
    batches = _Batches(jobs, data, device)
    spe = batches.spe
    captures = defaultdict(list)
    for k, job in enumerate(jobs):
        for s in job.capture_steps:
            if not 0 <= s <= total:
                raise LprError(
                    f"rewind point at step {s} is beyond the training length ({total} steps): "
                    f"expected a point between 0 and {total}."
                )
            captures[s].append(k)
    snapshots: list[dict[int, dict]] = [dict() for _ in jobs]
    use_bf16 = options.precision == "bf16"

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)

    train_loss: list[list[float]] = []
    val_acc: list[torch.Tensor] = []
    loss_sum = torch.zeros(K, device=device, dtype=torch.float64)
    steps_in_block = 0
    model.template.train()
    bar = _progress(total, jobs, options)
    for step in range(total):
        for k in captures.get(step, ()):
            snapshots[k][step] = model.member_state(k)
        if step % spe == 0:
            batches.new_epoch()
        x, y = batches.batch(step % spe)
        with autocast():
            out = model.forward_each(model.params(), model.buffers, x)
            losses = F.cross_entropy(
                out.flatten(0, 1).float(), y.flatten(), reduction="none"
            ).view(K, -1).mean(1)
        model.flat.grad = None
        losses.sum().backward()
        opt.step(model.flat.data, model.flat.grad)
        loss_sum += losses.detach().to(torch.float64)
        steps_in_block += 1
        if steps_in_block == spe or step == total - 1:
            train_loss.append((loss_sum / steps_in_block).cpu().tolist())
            val_acc.append(model.accuracy(data.x_val, data.y_val, autocast))
            loss_sum.zero_()
            steps_in_block = 0
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    for k in captures.get(total, ()):
        snapshots[k][total] = model.member_state(k)
    test_acc = model.accuracy(data.x_test, data.y_test, autocast)
    seconds = time.perf_counter() - t0
    results = []
    for k in range(K):
        losses_k = [row[k] for row in train_loss]
        diverged = not all(math.isfinite(v) for v in losses_k)
        vals = [float(v[k]) for v in val_acc]
        results.append(
            TrainResult(
                state=model.member_state(k),
                snapshots=snapshots[k],
                train_loss=losses_k,
                val_acc=[float("nan")] * len(vals) if diverged else vals,
                test_acc=float("nan") if diverged else float(test_acc[k]),
                diverged=diverged,
                steps=total,
                seconds=seconds / K,
                group_size=K,
            )
        )
    return results


def _progress(total: int, jobs: list[TrainJob], options: EngineOptions):
    if not options.progress:
        return None
    from tqdm.auto import tqdm

    label = jobs[0].label or "train"
    desc = label if len(jobs) == 1 else f"{label} (+{len(jobs) - 1} fused)"
    return tqdm(total=total, desc=desc, unit="step", leave=False, mininterval=0.5)


@torch.no_grad()
def evaluate_states(
    model_spec, states: list[dict[str, torch.Tensor]], data: Dataset, split: str = "test",
    device=None,
) -> list[float]:
    """Accuracy of ordinary state_dicts of one architecture on a split (eval mode, no training)."""
    device = pick_device(device)
    holders = [
        TrainJob(model=model_spec, train=None, init_state=s, data_seed=0)  # type: ignore[arg-type]
        for s in states
    ]
    data_dev = data.to(device)
    model = StackedModel(holders, data_dev, device, torch.float32)
    x, y = getattr(data_dev, f"x_{split}"), getattr(data_dev, f"y_{split}")
    return [float(a) for a in model.accuracy(x, y, nullcontext)]
