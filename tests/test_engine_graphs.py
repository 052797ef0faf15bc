"""CUDA graphs: the training step captured once and replayed must train as the eager step.

The optimizer's per-step hyperparameters come from fixed buffers under a graph; on the
CPU that path is checked bitwise against the table view it replaces. On CUDA (tests
skipped without a GPU) graphed runs match eager ones to float32 rounding for every
family, optimizer and schedule, keep masks exactly zero, update BatchNorm statistics,
and a step that cannot be captured falls back to the eager step with a warning.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from test_engine import (
    ADAM_MEMBERS,
    FAMILIES,
    NESTEROV_MEMBERS,
    SGD_MEMBERS,
    assert_states_close,
    make_jobs,
    synthetic,
    train,
)
from torch import nn

from lprcausal.config import ModelConfig
from lprcausal.errors import LprError
from lprcausal.train import EngineOptions, TrainJob, train_many
from lprcausal.train.optim import FusedOptimizer

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

OPTIMIZERS = {
    "sgd": SGD_MEMBERS,
    "nesterov": NESTEROV_MEMBERS,
    "adam": [dict(m, optimizer="adam") for m in ADAM_MEMBERS],
    "adamw": [dict(m, optimizer="adamw") for m in ADAM_MEMBERS],
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_static_rows_give_the_table_views_bit_for_bit(optimizer):
    configs = [train(**m) for m in OPTIMIZERS[optimizer]]
    K, P, n_train, steps = len(configs), 37, 64, 50
    g = torch.Generator().manual_seed(0)
    start = torch.randn(K, P, generator=g)
    keep = (torch.rand(K, P, generator=g) < 0.6).float()
    grads = [torch.randn(K, P, generator=g) for _ in range(steps)]
    flats = []
    for static in (False, True):
        flat = start * keep
        opt = FusedOptimizer(configs, flat, keep, n_train)
        if static:
            opt.use_static_rows()
        for grad in grads:
            if static:
                opt.load_rows()
                opt.update(flat, grad.clone())
                opt.advance()
            else:
                opt.step(flat, grad.clone())
        assert opt.t == steps
        flats.append(flat)
    assert torch.equal(flats[0], flats[1])
    assert torch.all(flats[1][keep == 0] == 0)


def test_cuda_graphs_option_is_checked():
    with pytest.raises(LprError, match=r"cuda_graphs = 'yes' is not valid"):
        EngineOptions(cuda_graphs="yes")
    data = synthetic((1, 20))
    jobs = make_jobs(ModelConfig(name="mlp", widths=(8,)), data, SGD_MEMBERS[:1], masks=(False,))
    with pytest.raises(LprError, match="cuda_graphs = true needs a CUDA device"):
        train_many(jobs, data, EngineOptions(device="cpu", cuda_graphs=True, progress=False))


def graphed_and_eager(jobs, data, **options):
    """The jobs trained with CUDA graphs (a capture that fails is an error here) and without."""
    out = []
    for graphs in (True, False):
        opts = EngineOptions(device="cuda", progress=False, fuse=True, cuda_graphs=graphs,
                             **options)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="CUDA graph capture failed")
            out.append(train_many(jobs, data, opts))
    return out


@needs_cuda
@pytest.mark.parametrize("family", list(FAMILIES))
def test_graphed_step_trains_as_the_eager_step(family, no_tf32):
    in_shape, widths = FAMILIES[family]
    data = synthetic(in_shape)
    model = ModelConfig(name=family, widths=widths)
    jobs = make_jobs(model, data, [dict(m, iterations=16) for m in SGD_MEMBERS])
    graphed, eager = graphed_and_eager(jobs, data)
    for g, e, job in zip(graphed, eager, jobs, strict=True):
        assert_states_close(g.state, e.state, atol=1e-5)
        assert g.train_loss == pytest.approx(e.train_loss, abs=1e-5)
        assert g.val_acc == pytest.approx(e.val_acc, abs=1e-9)
        for name, m in (job.mask or {}).items():
            assert torch.all(g.state[name][~m] == 0), name
        moved = [n for n in g.state if "running_mean" in n]
        assert all(not torch.equal(g.state[n], job.init_state[n]) for n in moved)


@needs_cuda
@pytest.mark.parametrize("optimizer", ["nesterov", "adam", "adamw"])
def test_graphed_step_follows_every_optimizer_and_schedule(optimizer, no_tf32):
    data = synthetic((3, 8, 8))
    model = ModelConfig(name="resnet8", widths=(4, 6, 8))
    members = [dict(m, iterations=48) for m in OPTIMIZERS[optimizer]]
    jobs = make_jobs(model, data, members, masks=(True,) * len(members))
    graphed, eager = graphed_and_eager(jobs, data)
    for g, e in zip(graphed, eager, strict=True):
        assert_states_close(g.state, e.state, atol=1e-4)


@needs_cuda
def test_graphed_bf16_step_keeps_masks_at_zero():
    in_shape, widths = FAMILIES["resnet8"]
    data = synthetic(in_shape)
    model = ModelConfig(name="resnet8", widths=widths)
    jobs = make_jobs(model, data, SGD_MEMBERS, masks=(True, True, True))
    graphed, eager = graphed_and_eager(jobs, data, precision="bf16")
    for g, e, job in zip(graphed, eager, jobs, strict=True):
        assert not g.diverged
        assert g.train_loss == pytest.approx(e.train_loss, abs=2e-2)
        for name, m in job.mask.items():
            assert torch.all(g.state[name][~m] == 0), name


class Syncing(nn.Module):
    """A forward that reads a value back to the host: no CUDA graph can capture it."""

    def __init__(self, in_shape=(1, 20), n_classes=4):
        super().__init__()
        self.fc = nn.Linear(in_shape[-1], n_classes)

    def forward(self, x):
        x = x.flatten(1)
        if x.abs().max().item() > 1e9:
            x = x / 1e9
        return self.fc(x)


@needs_cuda
def test_a_step_that_cannot_be_captured_trains_eagerly_with_a_warning(no_tf32):
    data = synthetic((1, 20))
    torch.manual_seed(0)
    state = {k: v.detach().clone() for k, v in Syncing().state_dict().items()}
    model = ModelConfig(name="test_engine_graphs:Syncing")
    jobs = [TrainJob(model=model, train=train(**SGD_MEMBERS[0]), init_state=state, data_seed=1)]
    graphs = EngineOptions(device="cuda", progress=False, cuda_graphs=True)
    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed.*synchroniz"):
        (graphed,) = train_many(jobs, data, graphs)
    (eager,) = train_many(jobs, data, dataclasses.replace(graphs, cuda_graphs=False))
    assert_states_close(graphed.state, eager.state, atol=1e-6)
    assert graphed.train_loss == pytest.approx(eager.train_loss, abs=1e-6)
