"""A run's numbers do not depend on the group it trains in (CPU, float32, bitwise).

One run trained alone (K = 1, as ``fuse=False`` trains every run), in a group of 8
with group mates that differ in every per-member hyperparameter, and in chunks of 3
must give bitwise the same weights, rewind snapshot, losses and accuracies, for every
model family with a hand step (MLP, 1D CNN) or the autograd path (LeNet-5, a ResNet
with BatchNorm) and every optimizer. The hand-step families run on two intra-op
threads: with one, a lone GEMM and a batched one cannot split their work differently,
so the test would prove nothing. The autograd families differ by kernel (grouped vs
plain convolution) already on one thread, which spares the loaded test machine stalls.
"""

from __future__ import annotations

import pytest
import torch
from test_engine import init_state, random_mask, synthetic

from lprcausal.config import ModelConfig, TrainConfig
from lprcausal.train import EngineOptions, TrainJob, train_many

CPU = dict(device="cpu", progress=False)

# name -> (in_shape, widths, batch size): the CNN's first conv sums its weight gradient
# (default widths) over B * L_out = 2000 rows, long enough for a lone GEMM to split that sum over threads.
FAMILIES = {
    "mlp": ((1, 40), (64, 32), 64),
    "cnn1d": ((1, 40), None, 100),
    "lenet5": ((1, 28, 28), (3, 4, 12, 10), 8),
    "resnet8": ((3, 8, 8), (4, 6, 8), 8),
}
THREADS = {"mlp": 2, "cnn1d": 2, "lenet5": 1, "resnet8": 1}
OPTIMIZERS = {
    "sgd-momentum": dict(optimizer="sgd", momentum=0.9),
    "sgd-nesterov": dict(optimizer="sgd", momentum=0.9, nesterov=True),
    "adam": dict(optimizer="adam", lr=1e-3),
    "adamw": dict(optimizer="adamw", lr=1e-3),
}


@pytest.fixture
def threads(request):
    before = torch.get_num_threads()
    yield lambda n: torch.set_num_threads(n)
    torch.set_num_threads(before)


def _jobs(family: str, optimizer: str, data) -> list[TrainJob]:
    _, widths, batch = FAMILIES[family]
    model = ModelConfig(name=family, widths=widths)
    base = OPTIMIZERS[optimizer]
    jobs = []
    for k in range(8):
        train = TrainConfig(
            **{
                **base,
                "lr": base.get("lr", 0.05) * (1 + 0.1 * k),
                "weight_decay": 1e-3 * k,
                "batch_size": batch,
                "iterations": 5,
                "epochs": None,
                "schedule": "cosine" if k % 2 else "constant",
            }
        )
        mask = random_mask(model, data, k) if k % 3 else None
        jobs.append(TrainJob(model, train, init_state(model, data, k), data_seed=k, mask=mask,
                             capture_steps=(2,)))
    return jobs


def _bits(result) -> list:
    """Every number a run stores, floats as their bit patterns."""
    tensors = {**result.state, **{f"rewind/{n}": t for n, t in result.snapshots[2].items()}}
    as_int = {n: t.view(torch.int32) if t.dtype == torch.float32 else t
              for n, t in tensors.items()}
    return [as_int, result.metrics()]


def _same(a, b) -> bool:
    (ta, ma), (tb, mb) = a, b
    return ta.keys() == tb.keys() and all(torch.equal(ta[n], tb[n]) for n in ta) and ma == mb


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_run_is_bitwise_the_same_alone_in_a_group_of_8_and_in_chunks(family, optimizer, threads):
    threads(THREADS[family])
    in_shape, _, batch = FAMILIES[family]
    data = synthetic(in_shape, n_train=2 * batch, n_eval=24, n_classes=10)
    jobs = _jobs(family, optimizer, data)
    alone = train_many(jobs[:1], data, EngineOptions(fuse=False, **CPU))
    group = train_many(jobs, data, EngineOptions(fuse=True, **CPU))
    chunks = train_many(jobs[3:], data, EngineOptions(fuse=True, max_members=3, **CPU))
    assert [r.group_size for r in group] == [8] * 8
    # chunks of at most 3 in whole threads: 2 + 3 on two threads, 3 + 2 on one
    sizes = [2, 2, 3, 3, 3] if THREADS[family] == 2 else [3, 3, 3, 2, 2]
    assert [r.group_size for r in chunks] == sizes
    assert _same(_bits(alone[0]), _bits(group[0]))
    # member 3 is first of a chunk of 2 or 3 here, fourth of the group of 8 above
    assert _same(_bits(chunks[0]), _bits(group[3]))
    assert all(r.execution()["bitwise_as_alone"] for r in group)
