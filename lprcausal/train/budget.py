"""How many runs fit in one fused group: a memory estimate per member against a budget.

On the CPU a second limit is the cache, not the memory: a fused step streams every
member's activations through the GEMMs several times, and once the group's activations
outgrow the last-level cache it slows down. Measured with the hand-written step on 2
cores (AMD EPYC, 32 MiB L3): the 1D CNN at batch 100 trains 450k samples/s at K = 10
against 316k at K = 111, the MNIST-1D MLP at batch 128 735k at K = 24-32 against 662k
at K = 64, the 1D CNN at batch 32 is best at K = 32; in each case the group's
activations (the estimate below) came to 10-17 MiB at the best K. So a CPU group holds
at most ``CPU_CACHE_BYTES`` of activations, and at least as many members as threads,
unless ``max_members`` asks for a size.
Group size never changes a run's numbers on the CPU, only the time.
"""

from __future__ import annotations

from functools import lru_cache

import psutil
import torch

from lprcausal.errors import LprError
from lprcausal.models import build_network

# Parameter-sized tensors per trainable parameter and member: weights, the gradient
# buffer, gradients autograd forms before they are copied into it, momentum / first
# moment, second moment, a temporary, and the keep-mask.
_PARAM_COPIES = 7
# Activations are kept for backward and their gradients are formed: about 3x forward.
_ACTIVATION_FACTOR = 3
# Activations of one CPU group (estimate below) at the measured sweet spot (docstring).
CPU_CACHE_BYTES = 12 * 2**20


@lru_cache(maxsize=64)
def activation_elements(model_spec, in_shape: tuple, n_classes: int) -> int:
    """Elements of all module outputs for one sample (a probe forward pass on the CPU)."""
    with torch.random.fork_rng(devices=[]):
        model = build_network(model_spec, in_shape, n_classes)
    total = 0

    def hook(_module, _inputs, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model.eval()
        model(torch.zeros(1, *in_shape))
    for h in handles:
        h.remove()
    return total


def member_bytes(job, data, itemsize: int = 4) -> int:
    """Estimated bytes one member of a fused group needs during training.

    ``itemsize`` is the bytes per element of the training dtype (4 for float32).
    """
    spec = job.model
    n_params = sum(t.numel() for t in job.init_state.values() if t.is_floating_point())
    act = activation_elements(spec, tuple(data.in_shape), data.n_classes)
    batch = job.train.batch_size
    sample = 1
    for d in data.in_shape:
        sample *= d
    return itemsize * (n_params * _PARAM_COPIES + batch * (act * _ACTIVATION_FACTOR + sample))


def cache_members(model_spec, in_shape: tuple, n_classes: int, batch_size: int,
                  device: torch.device, itemsize: int = 4) -> int | None:
    """Largest K whose activations stay within ``CPU_CACHE_BYTES`` on the CPU (None elsewhere)."""
    if torch.device(device).type != "cpu":
        return None
    act = activation_elements(model_spec, tuple(in_shape), n_classes)
    per_member = itemsize * batch_size * act * _ACTIVATION_FACTOR
    return max(torch.get_num_threads(), CPU_CACHE_BYTES // max(per_member, 1))


def member_limit(max_members: int | None, model_spec, in_shape: tuple, n_classes: int,
                 batch_size: int, device: torch.device, itemsize: int = 4) -> int | None:
    """The cap on K besides memory: ``max_members`` when asked for, else the cache budget
    on the CPU (None: no cap besides memory)."""
    if max_members is not None:
        return max_members
    return cache_members(model_spec, in_shape, n_classes, batch_size, device, itemsize)


def balanced_chunks(items: list, cap: int, multiple: int = 1) -> list[list]:
    """``items`` in order, in the fewest chunks of at most ``cap`` whose sizes are
    multiples of ``multiple`` but for the last, as even as that allows.

    ``multiple`` is the CPU's thread count for a batched step: its GEMMs hand each
    thread whole members, so a group of 9 on 2 threads takes as long as one of 10 (the
    1D CNN at batch 100: 2.45 ms against 2.56 ms a step; 11 members 3.30 ms, 12 3.27).
    With ``multiple = 1`` the sizes differ by at most one.
    """
    if not items:
        return []
    m = max(1, min(multiple, cap))
    full, rest = divmod(len(items), m)
    n = -(-len(items) // cap)
    while True:
        base, extra = divmod(full, n)
        sizes = [(base + (i < extra)) * m for i in range(n)]
        sizes[-1] += rest  # the smallest chunk takes the remainder
        if all(0 < size <= cap for size in sizes):  # every chunk, not just the last
            break
        n += 1
    out, start = [], 0
    for size in sizes:
        out.append(items[start : start + size])
        start += size
    return out


def thread_multiple(device: torch.device) -> int:
    """The group sizes that use every CPU thread (a multiple of the thread count), 1 elsewhere."""
    return torch.get_num_threads() if torch.device(device).type == "cpu" else 1


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: free GPU memory for CUDA, available RAM otherwise."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available)


def group_capacity(job, data, device: torch.device, options) -> int:
    """Largest K that fits ``options.memory_fraction`` of free memory and ``max_members``,
    or without ``max_members`` also the cache budget on the CPU."""
    itemsize = torch.empty((), dtype=options.dtype).element_size()
    need = member_bytes(job, data, itemsize)
    budget = int(available_bytes(device) * options.memory_fraction)
    if need > budget:
        raise LprError(
            f"One run of model {job.model.name!r} at batch_size = {job.train.batch_size} needs "
            f"about {need / 2**30:.2f} GiB, more than the memory budget of "
            f"{budget / 2**30:.2f} GiB ({options.memory_fraction:.0%} of free memory on {device}): "
            "expected a smaller batch size or a larger memory fraction."
        )
    cap = max(1, budget // need)
    limit = member_limit(options.max_members, job.model, tuple(data.in_shape), data.n_classes,
                         job.train.batch_size, device, itemsize)
    return int(cap if limit is None else min(cap, limit))
