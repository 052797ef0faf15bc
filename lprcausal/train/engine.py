"""The training engine: a list of runs in, their results out.

Runs that share architecture, dataset, batch size, length, optimizer family and
augmentation are trained together as K members of one stacked model (horizontal
fusion, see :mod:`lprcausal.train.stacked`). Every member has its own
initialization, data order, learning rate and schedule, weight decay, momentum and
mask. On the CPU a member's numbers are bitwise those of the run trained alone,
whatever its group (K, group mates, chunking): each member runs the arithmetic of a
lone run (see :mod:`lprcausal.train.stacked`). On CUDA (and under ``torch.compile``)
members are vmapped and agree with lone runs to float rounding. K = 1 is the
ordinary single-run case: there is no second training loop.

Each step computes the members' losses and gradients either by autograd through the
stacked model, or, for the ReLU chains with a hand-written step (MLPs, 1D CNNs; see
:mod:`lprcausal.train.hand_step`), by explicit backpropagation into buffers allocated
once; then one fused optimizer update (:mod:`lprcausal.train.optim`). On CUDA the
whole step is captured once as a CUDA graph and replayed (:mod:`lprcausal.train.graphed`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lprcausal.config import ModelConfig
from lprcausal.data import Dataset
from lprcausal.errors import LprError, bad_value
from lprcausal.train.batches import MemberBatches
from lprcausal.train.budget import balanced_chunks, group_capacity, thread_multiple
from lprcausal.train.generic import fusion_choice, run_random_state, stack_problem
from lprcausal.train.graphed import GraphedStep
from lprcausal.train.jobs import TrainJob, TrainResult
from lprcausal.train.optim import FusedOptimizer
from lprcausal.train.stacked import StackedModel


@dataclass
class EngineOptions:
    """How the engine runs (on the CPU none of this but ``dtype`` and ``compile`` changes a
    run's bits; on CUDA the group changes float rounding).

    ``device``: ``None`` / ``"auto"`` picks CUDA when present, else the CPU.
    ``fuse``: ``"auto"`` trains compatible runs together where that is faster: always
    on CUDA; on the CPU except for models with 2D convolutions, whose grouped
    convolutions run slower per member than separate runs there (measured in
    ``benchmarks/``). ``True`` always fuses, ``False`` trains one run at a time. Models
    given by import path fuse only where :mod:`lprcausal.train.generic` finds that they
    stack exactly and that it pays; otherwise they train one at a time, whatever ``fuse``.
    ``max_members``: cap on K (None: as many as the memory budget allows and, on the CPU,
    as keep a group's activations in the cache; see :mod:`lprcausal.train.budget`).
    ``memory_fraction``: share of free RAM / GPU memory a group may plan to use.
    ``precision``: ``"fp32"``, or ``"bf16"`` autocast (CUDA only).
    ``dtype``: parameter dtype (``torch.float64`` for equivalence checks).
    ``compile``: ``torch.compile`` the forward + loss of each group (off by default:
    compiling costs tens of seconds per group shape and pays off only for long runs).
    Compilation and bf16 use the autograd path, also for models with a hand step.
    ``cuda_graphs``: on CUDA, capture each group's training step as a CUDA graph and
    replay it (see :mod:`lprcausal.train.graphed`). ``"auto"``: for the built-in models
    (not under ``compile``); ``True`` also for models given by import path; ``False``: never.
    """

    device: str | torch.device | None = None
    fuse: bool | str = "auto"
    max_members: int | None = None
    memory_fraction: float = 0.5
    precision: str = "fp32"
    dtype: torch.dtype = torch.float32
    progress: bool = True
    compile: bool = False
    cuda_graphs: bool | str = "auto"

    def __post_init__(self):
        _check_options(self)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when present (and not overridden), otherwise the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise LprError(
            f"device = {str(device)!r} is not a device: expected 'auto', 'cpu', 'cuda' or "
            "'cuda:N'."
        ) from None
    if dev.type not in ("cpu", "cuda"):
        raise LprError(
            f"device = {str(device)!r} is not supported: expected 'auto', 'cpu', 'cuda' or "
            "'cuda:N'."
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LprError(f"device = {str(device)!r} is not available: no CUDA device was found.")
    return dev


def group_key(job: TrainJob, n_train: int) -> tuple:
    """Runs with equal keys can be fused into one group."""
    t = job.train
    return (job.model, t.batch_size, t.total_steps(n_train), t.optimizer, t.nesterov, t.augment)


def _check_device(options: EngineOptions, device: torch.device) -> None:
    if options.precision != "fp32" and device.type != "cuda":
        raise LprError(
            f"precision = {options.precision!r} needs a CUDA device (device is {device}); "
            "use precision = 'fp32' on the CPU."
        )
    if options.cuda_graphs is True and device.type != "cuda":
        raise LprError(
            f"cuda_graphs = true needs a CUDA device (device is {device}); use 'auto' or "
            "false on the CPU."
        )


def _check_options(options: EngineOptions) -> None:
    """Value checks of :class:`EngineOptions`, made when it is built (before any training)."""
    if options.precision not in ("fp32", "bf16"):
        raise bad_value("precision", options.precision, "'fp32' or 'bf16'")
    if not 0 < options.memory_fraction <= 1:
        raise bad_value("memory_fraction", options.memory_fraction, "a fraction in (0, 1]")
    if options.cuda_graphs not in (True, False, "auto"):
        raise bad_value("cuda_graphs", options.cuda_graphs, "true, false or 'auto'")
    if options.fuse not in (True, False, "auto"):
        raise bad_value("fuse", options.fuse, "true, false or 'auto'")
    if options.max_members is not None and (
        not isinstance(options.max_members, int) or options.max_members < 1
    ):
        raise bad_value("max_members", options.max_members, "a positive integer or None")


def train_many(
    jobs: Sequence[TrainJob],
    data: Dataset,
    options: EngineOptions | None = None,
    on_result: Callable[[int, TrainResult], None] | None = None,
) -> list[TrainResult]:
    """Train every job and return results in the same order.

    Compatible jobs (same :func:`group_key`) are fused, in chunks of at most the
    memory-budget capacity (on the CPU, sizes in multiples of the thread count but for
    the last). ``on_result(i, result)`` is called as soon as job ``i``
    finishes, so callers can store results group by group (a killed process loses at
    most the group in flight).
    """
    options = options or EngineOptions()
    device = pick_device(options.device)
    _check_device(options, device)
    n_train = data.n_train
    for job in jobs:
        job.train.check_fits(n_train)  # batch size, warmup vs train set: clear error early
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, job in enumerate(jobs):
        groups[group_key(job, n_train)].append(i)
    data_dev = _on_device(data, device, options.dtype)
    results: list[TrainResult | None] = [None] * len(jobs)
    for indices in groups.values():
        cap = group_capacity(jobs[indices[0]], data_dev, device, options)
        model = jobs[indices[0]].model
        if not fusion_choice(model, data.in_shape, data.n_classes, device, options.fuse).fused:
            cap = 1
        for chunk in balanced_chunks(indices, cap, thread_multiple(device)):
            group = [jobs[i] for i in chunk]
            with run_random_state([job.data_seed for job in group], device):
                out = _train_group(group, data_dev, device, options)
            for i, res in zip(chunk, out, strict=True):
                results[i] = res
                if on_result is not None:
                    on_result(i, res)
    return results  # type: ignore[return-value]


def _on_device(data: Dataset, device: torch.device, dtype: torch.dtype) -> Dataset:
    """``data`` on ``device`` with inputs in the training dtype (labels untouched)."""
    moved = data.to(device)
    if moved.x_train.dtype == dtype:
        return moved
    inputs = {f"x_{p}": getattr(moved, f"x_{p}").to(dtype) for p in ("train", "val", "test")}
    return dataclasses.replace(moved, **inputs)


def member_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each member: logits ``[K, B, C]``, labels ``[K, B]`` -> ``[K]``."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    # [K, C, B] is cross_entropy's (N, C, d) layout: far faster on the CPU than flattening
    # K * B rows of a few classes each.
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)


def _captures(jobs: list[TrainJob], total: int) -> dict[int, list[int]]:
    captures: dict[int, list[int]] = defaultdict(list)
    for k, job in enumerate(jobs):
        for s in job.capture_steps:
            if not 0 <= s <= total:
                raise LprError(
                    f"rewind point at step {s} is beyond the training length ({total} steps): "
                    f"expected a point between 0 and {total}."
                )
            captures[s].append(k)
    return captures


def _loss_function(model: StackedModel, options: EngineOptions) -> Callable:
    """The members' losses ``[K]`` of a batch through the autograd path (compiled if asked)."""

    def losses(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return member_losses(model.forward(x), y)

    if not options.compile:
        return losses
    # Compiled per group; the thread count in force now is the one the kernels use.
    return torch.compile(losses, dynamic=False)


def _member_by_member(
    model: StackedModel, x: torch.Tensor, y: torch.Tensor, autocast: Callable
) -> torch.Tensor:
    """Each member's loss and gradient exactly as its run alone computes them, one member
    at a time: only one member's activations are alive at once."""
    out = []
    for k in range(model.K):
        with autocast():
            loss = member_losses(model.forward_member(k, x[k]).unsqueeze(0), y[k : k + 1])
        model.backward(loss.sum(), member=k)
        out.append(loss.detach())
    return torch.cat(out)


def _train_group(jobs: list[TrainJob], data: Dataset, device, options: EngineOptions):
    keys = {group_key(job, data.n_train) for job in jobs}
    if len(keys) > 1:
        # train_many only fuses runs with equal keys: reaching this is a programming error.
        raise ValueError(
            "Runs fused into one group must share architecture, batch size, number of "
            "steps, optimizer family and augmentation; got "
            + " vs ".join(sorted(repr(k) for k in keys))
        )
    t0 = time.perf_counter()
    model = StackedModel(
        jobs[0].model,
        [job.init_state for job in jobs],
        [job.mask for job in jobs],
        data.in_shape,
        data.n_classes,
        device,
        options.dtype,
        direct_grads=not options.compile,
        # torch.compile traces the vmapped model; otherwise the device decides.
        vmapped=True if options.compile else None,
    )
    K = model.K
    configs = [job.train for job in jobs]
    total = configs[0].total_steps(data.n_train)
    opt = FusedOptimizer(configs, model.flat, model.keep, data.n_train)
    batches = MemberBatches(
        [job.data_seed for job in jobs], data, configs[0].batch_size, configs[0].augment
    )
    spe = batches.steps_per_epoch
    captures = _captures(jobs, total)
    snapshots: list[dict[int, dict]] = [{} for _ in jobs]
    use_bf16 = options.precision == "bf16"
    graphs = _use_graphs(options, device, jobs[0].model)

    def autocast():
        # A CUDA graph must not keep autocast's cached weight casts from capture.
        return torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=use_bf16, cache_enabled=not graphs
        )

    loss_fn = _loss_function(model, options)
    # MLPs and 1D CNNs train by a hand-written step (same math, no per-step allocations);
    # autocast and torch.compile need the autograd path.
    hand = None
    if options.precision == "fp32" and not options.compile:
        hand = model.hand_step(configs[0].batch_size)

    def forward_backward(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The members' losses; their gradients land in ``model.grad``."""
        if hand is not None:
            return hand(x, y)
        if not model.vmapped and not options.compile:
            return _member_by_member(model, x, y, autocast)
        with autocast():
            losses = loss_fn(x, y)
        model.backward(losses.sum())
        return losses

    def update(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One step without advancing the optimizer's counter (the graph's body)."""
        losses = forward_backward(x, y)
        opt.update(model.flat, model.grad)
        return losses

    def eager_step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        losses = forward_backward(x, y)
        opt.step(model.flat, model.grad)
        return losses

    step_fn = eager_step
    if graphs:
        opt.use_static_rows()
        step_fn = GraphedStep(
            update, forward_backward, list(model.buffers.values()), opt.load_rows, opt.advance
        )
    train_loss: list[list[float]] = []
    val_acc: list[torch.Tensor] = []
    loss_sum = torch.zeros(K, device=device, dtype=torch.float64)
    in_block = 0
    model.template.train()
    bar = _progress(total, jobs, options)
    for step in range(total):
        for k in captures.get(step, ()):
            snapshots[k][step] = model.member_state(k)
        if step % spe == 0:
            batches.new_epoch()
        x, y = batches.batch(step % spe)
        losses = step_fn(x, y)
        loss_sum += losses.detach()
        in_block += 1
        if in_block == spe or step == total - 1:
            train_loss.append((loss_sum / in_block).cpu().tolist())
            val_acc.append(model.accuracy(data.x_val, data.y_val, autocast))
            loss_sum.zero_()
            in_block = 0
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
                bitwise_as_alone=device.type == "cpu" and not model.vmapped,
            )
        )
    return results


def _use_graphs(options: EngineOptions, device: torch.device, model: ModelConfig) -> bool:
    if device.type != "cuda" or options.compile or options.cuda_graphs is False:
        return False
    return options.cuda_graphs is True or not model.is_user


def _progress(total: int, jobs: list[TrainJob], options: EngineOptions):
    if not options.progress:
        return None
    from tqdm.auto import tqdm

    label = jobs[0].label or "train"
    desc = label if len(jobs) == 1 else f"{label} (+{len(jobs) - 1} fused)"
    return tqdm(total=total, desc=desc, unit="step", leave=False, mininterval=0.5)


@torch.no_grad()
def evaluate_states(
    model_spec: ModelConfig,
    states: list[dict[str, torch.Tensor]],
    data: Dataset,
    split: str = "test",
    device: str | torch.device | None = None,
) -> list[float]:
    """Accuracy of ordinary state_dicts of one architecture on a split (eval mode, no training)."""
    if split not in ("train", "val", "test"):
        raise bad_value("split", split, "'train', 'val' or 'test'")
    if not states:
        return []
    device = pick_device(device)
    data_dev = data.to(device)
    x, y = getattr(data_dev, f"x_{split}"), getattr(data_dev, f"y_{split}")
    if model_spec.is_user and stack_problem(model_spec, tuple(data.in_shape), data.n_classes):
        groups = [[s] for s in states]  # a model that does not stack: one at a time
    else:
        groups = [list(states)]
    out: list[float] = []
    for group in groups:
        model = StackedModel(
            model_spec,
            group,
            [None] * len(group),
            data.in_shape,
            data.n_classes,
            device,
            torch.float32,
        )
        out += [float(a) for a in model.accuracy(x, y, nullcontext)]
    return out
