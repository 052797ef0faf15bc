"""Throughput of the fused training engine against a plain per-run PyTorch loop.

Run ``python benchmarks/fused_training.py`` (``--quick`` for a short version;
``--device cuda`` on a GPU, ``--precision bf16`` for bf16 autocast there). Prints,
measured in this process on this machine:

(a) GEMM peak: GFLOP/s of a large square matmul (on CUDA in fp32 and in bf16);
(b) training throughput (samples/s, summed over the runs trained at once) of a plain
    per-run loop (the standard ``build_model`` module + ``torch.optim.SGD``, data on
    the device as tensors), of the engine at K = 1 and of the engine with K fused
    members, with the ratio to the plain loop (how much faster K runs finish);
(c) achieved GFLOP/s (all members together) and its fraction of the GEMM peak;
(d) the wall time of the quickstart study (``studies/quickstart.toml``, every run
    trained from scratch into a temporary store) with fusion on (the engine's
    default, ``fuse="auto"``) and off (one run at a time), and their ratio.

Training FLOPs per sample are 3x the forward FLOPs of the conv / linear layers
counted with forward hooks (for an MLP that is the usual 6 x weights). Engine
times are steady-state per step: the time of an (S + 2)-step run minus that of a
2-step run, divided by S, so group setup and the end-of-run evaluation cancel. Every
figure is the median of ``--repeats`` measurements. Inputs are synthetic tensors of
the right shapes; no dataset files are read. Run it on an otherwise idle machine:
other processes competing for the cores distort the numbers badly. On CUDA every timing
ends with a device synchronization, and the cases are the GPU-sized ones (ResNet-20 at
K = 8 and 32, VGG-11 and LeNet-5 at K = 16, the MNIST-1D MLP at K = 64).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lprcausal.config import ModelConfig, TrainConfig
from lprcausal.data import Dataset
from lprcausal.models import build_model
from lprcausal.study import Study
from lprcausal.train import EngineOptions, TrainJob, train_many

QUICKSTART = Path(__file__).resolve().parent.parent / "studies" / "quickstart.toml"


@dataclass(frozen=True)
class Case:
    label: str
    model: str
    in_shape: tuple[int, ...]
    widths: tuple[int, ...] | None
    steps: int  # S: the engine is timed at S + 2 and 2 steps
    ks: tuple[int, ...]


CASES = [
    Case("MNIST-1D MLP (40-300-100-10)", "mlp", (1, 40), (300, 100), 60, (4, 8, 16, 32, 64)),
    Case("MNIST-1D 1D CNN (3 x 25 ch)", "cnn1d", (1, 40), None, 40, (4, 16, 64)),
    Case("LeNet-300-100 (784 inputs)", "mlp", (1, 28, 28), (300, 100), 30, (4, 16, 64)),
    Case("LeNet-5 (1x28x28)", "lenet5", (1, 28, 28), None, 20, (4, 16)),
    Case("VGG-11 narrow (widths / 4)", "vgg11", (3, 32, 32), (16, 32, 64, 128, 128), 8, (8,)),
    Case("ResNet-20 (3x32x32)", "resnet20", (3, 32, 32), None, 2, (2, 4)),
]
# On a GPU the per-step cost of a small model is kernel launches, not FLOPs: longer
# measurements and the K that a GPU study would use.
CUDA_CASES = [
    Case("MNIST-1D MLP (40-300-100-10)", "mlp", (1, 40), (300, 100), 100, (16, 64)),
    Case("MNIST-1D 1D CNN (3 x 25 ch)", "cnn1d", (1, 40), None, 100, (16, 64)),
    Case("LeNet-5 (1x28x28)", "lenet5", (1, 28, 28), None, 60, (16,)),
    Case("VGG-11 (3x32x32)", "vgg11", (3, 32, 32), None, 20, (16,)),
    Case("ResNet-20 (3x32x32)", "resnet20", (3, 32, 32), None, 30, (8, 32)),
]
N_CLASSES = 10


class OutsideLoad:
    """Share of the machine's CPU time used by other processes since construction (Linux)."""

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float] | None:
        try:
            with open("/proc/stat") as f:
                fields = [float(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        own = sum(os.times()[:2])
        return busy / tick - own, sum(fields) / tick

    def fraction(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None or end[1] <= self.start[1]:
            return None
        return max(0.0, (end[0] - self.start[0]) / (end[1] - self.start[1]))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings on CUDA would measure launches otherwise)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_peak(n: int, repeats: int, device: torch.device, dtype=torch.float32) -> float:
    """GFLOP/s of an n x n matmul (median of ``repeats`` timings of 5 products)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(5):
            torch.mm(a, b, out=out)
        sync(device)
        times.append((time.perf_counter() - t0) / 5)
    return 2 * n**3 / statistics.median(times) / 1e9


def train_flops_per_sample(case: Case) -> float:
    """3 x the forward FLOPs (2 x MACs) of all conv / linear layers for one sample."""
    model = build_model(case.model, case.in_shape, N_CLASSES, widths=case.widths)
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Linear):
            total += 2 * output.numel() * module.in_features
        else:
            fan_in = module.in_channels // module.groups * module.weight[0, 0].numel()
            total += 2 * output.numel() * fan_in

    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    handles = [m.register_forward_hook(hook) for m in layers]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *case.in_shape))
    for h in handles:
        h.remove()
    return 3.0 * total


def synthetic(case: Case, n_train: int, batch_size: int) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train, *case.in_shape, generator=g)
    y = torch.randint(0, N_CLASSES, (n_train,), generator=g)
    xe, ye = x[:batch_size], y[:batch_size]
    return Dataset("synthetic", x, y, xe, ye, xe, ye, case.in_shape, N_CLASSES)


def plain_loop_seconds_per_step(
    case: Case, data: Dataset, batch_size: int, steps: int, precision: str = "fp32"
) -> float:
    """A standard per-run loop: module + torch.optim, batches gathered from device tensors
    (``data`` already on the device), bf16 autocast when asked."""
    device = data.x_train.device
    torch.manual_seed(0)
    model = build_model(case.model, case.in_shape, N_CLASSES, widths=case.widths)
    model = model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    spe = data.n_train // batch_size
    perm = torch.randperm(data.n_train, generator=g).to(device)
    bf16 = precision == "bf16"

    def step(i: int) -> None:
        nonlocal perm
        s = i % spe
        if s == 0:
            perm = torch.randperm(data.n_train, generator=g).to(device)
        idx = perm[s * batch_size : (s + 1) * batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(3):
        step(i)
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    sync(device)
    return (time.perf_counter() - t0) / steps


def engine_jobs(case: Case, k: int, batch_size: int, iterations: int) -> list[TrainJob]:
    jobs = []
    for member in range(k):
        torch.manual_seed(member)
        net = build_model(case.model, case.in_shape, N_CLASSES, widths=case.widths)
        train = TrainConfig(
            lr=0.01 * (1 + member / k),
            momentum=0.9,
            batch_size=batch_size,
            iterations=iterations,
            epochs=None,
        )
        state = {n: t.detach().clone() for n, t in net.state_dict().items()}
        jobs.append(TrainJob(ModelConfig(case.model, case.widths), train, state, data_seed=member))
    return jobs


def engine_seconds_per_step(
    case: Case, data: Dataset, k: int, batch_size: int, steps: int, options: EngineOptions
) -> float:
    """Steady-state seconds per fused step (all K members): (T(S + 2) - T(2)) / S."""

    options = dataclasses.replace(options, max_members=k)  # exactly K (no cache budget)

    def run(iterations: int) -> float:
        jobs = engine_jobs(case, k, batch_size, iterations)
        sync(data.x_train.device)
        t0 = time.perf_counter()
        train_many(jobs, data, options)  # ends by copying the states to the CPU: synchronized
        return time.perf_counter() - t0

    if options.compile:
        # Compilation differs between the two lengths (cache hits), so it does not cancel:
        # time the whole run, compilation included, which is what a user pays.
        return run(steps + 2) / (steps + 2)
    short, long = run(2), run(steps + 2)
    return max(long - short, 1e-9) / steps


def bench_case(case: Case, args, peak: float) -> list[tuple]:
    steps = max(2, case.steps // 2) if args.quick else case.steps
    ks = tuple(k for k in case.ks if k <= args.max_k)
    data = synthetic(case, batch_size=args.batch_size, n_train=args.batch_size * (steps + 2))
    # fuse=True: measure the K asked for, also where "auto" would not fuse (2D convs on CPU).
    options = EngineOptions(
        device=args.device,
        progress=False,
        compile=args.compile,
        fuse=True,
        precision=args.precision,
        cuda_graphs=False if args.cuda_graphs == "off" else "auto",
    )
    flops = train_flops_per_sample(case)
    B = args.batch_size
    # Warm the engine at every K (first-use costs of vmap, autograd.Function, the
    # allocator, and cuDNN's per-shape algorithm search), so no timed run pays them.
    for k in (1, *ks):
        train_many(engine_jobs(case, k, B, 2), data, options)
    on_device = data.to(torch.device(args.device))
    runners = [
        (
            "plain loop",
            1,
            lambda: plain_loop_seconds_per_step(case, on_device, B, steps, args.precision),
        )
    ]
    engines = [("engine", options)]
    if args.device != "cpu" and args.cuda_graphs == "both":
        engines.append(("no graphs", dataclasses.replace(options, cuda_graphs=False)))
    for name, opts in engines:
        for k in (1, *ks):
            runners.append(
                (name, k, lambda k=k, o=opts: engine_seconds_per_step(case, data, k, B, steps, o))
            )
    # Repeats are interleaved across runners, so a burst of outside load hits them alike.
    times: list[list[float]] = [[] for _ in runners]
    for _ in range(args.repeats):
        for i, (_, _, measure) in enumerate(runners):
            times[i].append(measure())
    out = []
    for (runner, k, _), t in zip(runners, times, strict=True):
        per_step = statistics.median(t)
        per_run = B * k / per_step  # samples/s summed over the K runs
        gflops = flops * B * k / per_step / 1e9
        # The ratio is taken within each round (plain and engine timed minutes apart at
        # most), then the median over rounds: robust to slow phases of a shared host.
        ratio = statistics.median(k * p / e for p, e in zip(times[0], t, strict=True))
        out.append((case.label, runner, k, per_run, ratio, gflops, gflops / peak))
    return out


def study_seconds(toml: Path, fuse: bool | str, root: Path, cache: Path) -> float:
    """Wall time of running a study from an empty store (data generation excluded)."""
    engine = EngineOptions(fuse=fuse, progress=False)
    study = Study.from_toml(
        toml, store=root / "runs", results=root / "results", cache_dir=cache, engine=engine
    )
    t0 = time.perf_counter()
    study.run(progress=False)
    return time.perf_counter() - t0


def bench_study(toml: Path, repeats: int) -> None:
    """(d): the quickstart study end to end with fusion on and off, interleaved."""
    print(f"(d) study {toml.name}, every run trained from scratch; fusion on vs off")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        Study.from_toml(toml, store=Path(tmp) / "warm", cache_dir=cache).check()  # make data
        times: dict[str, list[float]] = {"on": [], "off": []}
        for r in range(repeats):
            for label, fuse in (("on", "auto"), ("off", False)):
                times[label].append(study_seconds(toml, fuse, Path(tmp) / f"{label}{r}", cache))
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    print(f"    fusion off: {off:7.1f} s   fusion on: {on:7.1f} s   ratio: {off / on:.2f}x\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, repeats and K")
    parser.add_argument("--repeats", type=int, default=None, help="measurements per figure")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-k", type=int, default=64, help="largest K to run")
    parser.add_argument("--only", default="", help="run cases whose label contains this")
    parser.add_argument("--compile", action="store_true", help="EngineOptions(compile=True)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast (CUDA)"
    )
    parser.add_argument(
        "--cuda-graphs",
        choices=("auto", "off", "both"),
        default="both",
        help="engine rows with CUDA graphs (auto), without (off), or both rows (CUDA only)",
    )
    parser.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="torch.backends.cudnn.benchmark = True (cuDNN times its algorithms per shape)",
    )
    parser.add_argument(
        "--study",
        choices=("auto", "yes", "no"),
        default="auto",
        help="time the quickstart study fused vs unfused (auto: yes unless --quick/--only)",
    )
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.quick:
        args.max_k = min(args.max_k, 16)

    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available here")
    if args.precision == "bf16" and device.type != "cuda":
        parser.error("--precision bf16 needs --device cuda")
    load = OutsideLoad()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"{args.precision}"
    )
    if device.type == "cuda":
        print(
            f"GPU: {torch.cuda.get_device_name(device)}; TF32 in matmuls "
            f"{torch.backends.cuda.matmul.allow_tf32}, in cuDNN convolutions "
            f"{torch.backends.cudnn.allow_tf32}; cuDNN benchmark mode "
            f"{torch.backends.cudnn.benchmark}"
        )
    if args.compile:
        print("engine rows: torch.compile, whole runs timed with compilation included")
    n = 8192 if device.type == "cuda" else 1024 if args.quick else 2048
    peak = gemm_peak(n, max(3, args.repeats), device)
    print(f"(a) fp32 GEMM peak: {peak:.1f} GFLOP/s")
    if device.type == "cuda":
        bf16_peak = gemm_peak(n, max(3, args.repeats), device, torch.bfloat16)
        print(f"    bf16 GEMM peak: {bf16_peak:.1f} GFLOP/s")
        if args.precision == "bf16":
            peak = bf16_peak
        print(f"    (% peak below is of the {args.precision} peak)")
    print()
    header = (
        f"{'model':30s} {'runner':10s} {'K':>3s} {'samples/s':>14s} "
        f"{'x plain':>8s} {'GFLOP/s':>8s} {'% peak':>7s}"
    )
    print(header)
    print("-" * len(header))
    for case in CUDA_CASES if device.type == "cuda" else CASES:
        if args.only and args.only.lower() not in case.label.lower():
            continue
        rows = bench_case(case, args, peak)
        for label, runner, k, per_run, ratio, gflops, frac in rows:
            print(
                f"{label:30s} {runner:10s} {k:3d} {per_run:14,.0f} {ratio:8.2f} "
                f"{gflops:8.1f} {100 * frac:6.1f}%",
                flush=True,
            )
        plain_frac = rows[0][6]
        print(f"{'':30s} (at the GEMM peak a runner would be {1 / plain_frac:.2f}x plain)\n")
    default_study = not (args.quick or args.only or device.type == "cuda")
    if args.study == "yes" or (args.study == "auto" and default_study):
        bench_study(QUICKSTART, max(1, min(args.repeats, 2)))
    outside = load.fraction()
    if outside is not None:
        note = "  (over 5%: numbers are distorted, rerun idle)" if outside > 0.05 else ""
        print(f"CPU time used by other processes during the run: {100 * outside:.1f}%{note}")


if __name__ == "__main__":
    main()
