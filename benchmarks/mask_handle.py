"""Per-step cost of ``lprcausal.apply_masks`` in a plain PyTorch training loop.

Run ``python benchmarks/mask_handle.py`` (``--quick`` for fewer steps). For each model
(LeNet-300-100 on 784 inputs, LeNet-5 on 28x28, ResNet-20 on 32x32 with ``--resnet``) and
optimizer (SGD with momentum, AdamW), it times a training step (forward, backward,
``optimizer.step()``) of the standard module on synthetic batches of 128, without masks
and with a handle holding 80%-sparse masks (the gradient hooks and the post-step
re-zeroing), and prints the median time per step of each and the added time per step
(absolute and as a fraction). Each figure is the median of ``--repeats`` interleaved
measurements of ``--steps`` steps, so a slow phase of a shared host hits both sides.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import lprcausal as lpc
from lprcausal.models import build_model

MODELS = {"lenet300": ("mlp", (1, 28, 28)), "lenet5": ("lenet5", (1, 28, 28)),
          "resnet20": ("resnet20", (3, 32, 32))}
OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01),
}


def time_steps(model, opt, x, y, steps: int) -> float:
    for _ in range(3):  # warm-up
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def measure(name: str, opt_name: str, steps: int, repeats: int, device: str) -> None:
    family, shape = MODELS[name]
    torch.manual_seed(0)
    x = torch.randn(128, *shape, device=device)
    y = torch.randint(0, 10, (128,), device=device)
    plain, masked = [], []
    for _ in range(repeats):
        for use_masks in (False, True):
            torch.manual_seed(0)
            model = build_model(family, shape, 10).to(device)
            handle = lpc.apply_masks(model, lpc.global_magnitude_masks(model, 0.8)) \
                if use_masks else None
            opt = OPTIMIZERS[opt_name](model.parameters())
            (masked if use_masks else plain).append(time_steps(model, opt, x, y, steps))
            if handle is not None:
                handle.remove()
    p, m = statistics.median(plain), statistics.median(masked)
    print(f"{name:9s} {opt_name:6s} {p * 1e3:9.3f} ms {m * 1e3:9.3f} ms "
          f"{(m - p) * 1e3:+8.3f} ms {(m - p) / p:+7.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 steps, 3 repeats")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resnet", action="store_true", help="also ResNet-20 (slow on CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps, repeats = (20, 3) if args.quick else (args.steps, args.repeats)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{steps} steps x {repeats} repeats, batch 128, masks at sparsity 0.8")
    print(f"{'model':9s} {'opt':6s} {'plain/step':>12s} {'masked/step':>12s} {'added':>11s} "
          f"{'ratio':>7s}")
    names = ["lenet300", "lenet5"] + (["resnet20"] if args.resnet else [])
    for name in names:
        for opt_name in OPTIMIZERS:
            measure(name, opt_name, steps, repeats, args.device)


if __name__ == "__main__":
    main()
