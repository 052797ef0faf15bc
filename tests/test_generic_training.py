"""Training any nn.Module: masks exactly zero under every optimizer, seeded Dropout,
and the automatic fuse / one-at-a-time choice with its reason."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_DATA
from user_code import PLUGIN_MODEL

from lprcausal.config import Kwargs, ModelConfig, TrainConfig
from lprcausal.pipeline import initial_state
from lprcausal.pruning import global_magnitude_masks
from lprcausal.train import EngineOptions, TrainJob, train_many
from lprcausal.train.generic import fusion_choice, stack_problem
from lprcausal.usercode import resolve_model

OPTIMIZERS = [
    dict(optimizer="sgd", momentum=0.9),
    dict(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=1e-3),
    dict(optimizer="adam", lr=0.01),
    dict(optimizer="adamw", lr=0.01, weight_decay=0.1),
]


def plugin(tmp_path, **kwargs) -> ModelConfig:
    (tmp_path / "nets.py").write_text(PLUGIN_MODEL)
    return resolve_model(ModelConfig(name="nets.py:build", kwargs=Kwargs.of(kwargs)), tmp_path)


@pytest.fixture
def data(ctx):
    return ctx.dataset(TINY_DATA)


def jobs_for(model, data, trains, seeds, mask_sparsity=0.5):
    jobs = []
    for train, seed in zip(trains, seeds, strict=True):
        init = initial_state(model, data, seed)
        names = ["embed.weight", "attn.in_proj_weight", "attn.out_proj.weight",
                 "mlp.0.weight", "mlp.3.weight", "head.weight"]
        mask = global_magnitude_masks({n: init[n] for n in names}, mask_sparsity)
        jobs.append(TrainJob(model=model, train=train, init_state=init, data_seed=seed,
                             mask=mask))
    return jobs


@pytest.mark.slow
@pytest.mark.parametrize("dropout", [0.0, 0.2], ids=["fusable", "dropout"])
def test_200_steps_of_every_optimizer_keep_masked_weights_exactly_zero(tmp_path, data, dropout):
    model = plugin(tmp_path, dropout=dropout)
    trains = [TrainConfig(lr=o.pop("lr", 0.05), batch_size=8, iterations=200, epochs=None, **o)
              for o in [dict(x) for x in OPTIMIZERS]]
    # the dropout-free model trains two runs per optimizer stacked (fusion forced on)
    copies = 1 if dropout else 2
    jobs = jobs_for(model, data, trains * copies, list(range(4 * copies)))
    results = train_many(jobs, data, EngineOptions(progress=False, device="cpu", fuse=True))
    for job, res in zip(jobs, results, strict=True):
        assert res.group_size == (1 if dropout else 2)
        assert not res.diverged
        for name, keep in job.mask.items():
            assert int((res.state[name][~keep] != 0).sum()) == 0, (job.train.optimizer, name)
            if keep.any():  # and the kept ones train
                assert not torch.equal(res.state[name][keep], job.init_state[name][keep])
        # norms and biases train (they are not prunable)
        assert not torch.equal(res.state["norm.weight"], job.init_state["norm.weight"])
        assert not torch.equal(res.state["bn.running_mean"], job.init_state["bn.running_mean"])


def test_dropout_is_seeded_per_run(tmp_path, data):
    model = plugin(tmp_path, dropout=0.5)
    train = TrainConfig(lr=0.05, batch_size=32, iterations=5, epochs=None)
    opts = EngineOptions(progress=False, device="cpu")
    init = initial_state(model, data, 0)
    same = [TrainJob(model=model, train=train, init_state=init, data_seed=s) for s in (7, 7, 8)]
    a, b, c = train_many(same, data, opts)
    again = train_many(same[:1], data, opts)[0]
    assert torch.equal(a.state["head.weight"], b.state["head.weight"])
    assert torch.equal(a.state["head.weight"], again.state["head.weight"])
    assert not torch.equal(a.state["head.weight"], c.state["head.weight"])


def test_fused_plugin_runs_equal_their_single_runs(tmp_path, data):
    model = plugin(tmp_path)
    # SGD: Adam would blow float rounding of the zero gradients (a conv bias before
    # BatchNorm, the attention key bias) up to +-lr, in fused and single runs alike
    train = TrainConfig(optimizer="sgd", lr=0.05, batch_size=32, iterations=20, epochs=None)
    jobs = jobs_for(model, data, [train, train], [0, 1])
    fused = train_many(jobs, data, EngineOptions(progress=False, device="cpu", fuse=True))
    alone = train_many(jobs, data, EngineOptions(progress=False, device="cpu", fuse=False))
    assert [r.group_size for r in fused] == [2, 2] and [r.group_size for r in alone] == [1, 1]
    # on the CPU a fused group runs its members one after another: bitwise equal
    for f, a in zip(fused, alone, strict=True):
        for name in a.state:
            assert torch.equal(f.state[name], a.state[name]), name
        assert f.test_acc == a.test_acc


def test_fusion_choice_says_which_and_why(tmp_path):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    plain = plugin(tmp_path)
    dropout = plugin(tmp_path, dropout=0.1)
    assert stack_problem(plain, (1, 40), 10) is None
    assert "Dropout" in stack_problem(dropout, (1, 40), 10)
    assert fusion_choice(dropout, (1, 40), 10, cuda).describe(4) == (
        "one at a time: it draws random numbers in training (Dropout); each run keeps its "
        "own seeded draws")
    assert fusion_choice(plain, (1, 40), 10, cuda).describe(16) == "fused, K=16"
    assert fusion_choice(plain, (1, 40), 10, cpu).describe(2) == "fused, K=2"
    assert fusion_choice(plain, (1, 40), 10, cpu, fuse=False).describe() == (
        "one at a time: fusion turned off (--no-fuse)")
    mlp = ModelConfig(name="lprcausal.models.factories:mlp")
    assert fusion_choice(resolve_model(mlp), (1, 40), 10, cpu).fused
    conv2d = resolve_model(ModelConfig(name="lprcausal.models.factories:lenet5"))
    choice = fusion_choice(conv2d, (1, 28, 28), 10, cpu)
    assert choice.describe() == "one at a time: Conv2d layers run faster one run at a time on the CPU"
    assert not fusion_choice(ModelConfig(name="resnet20"), (3, 32, 32), 10, cpu).fused


DATA_DEPENDENT = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(40, 10)

    def forward(self, x):
        x = x.flatten(1)
        if x.sum().item() > 0:  # data-dependent Python control flow: vmap cannot run it
            x = -x
        return self.fc(x)


def build(in_shape, n_classes):
    return Net()
"""


def test_a_model_vmap_cannot_run_trains_one_at_a_time_and_says_why(tmp_path, data):
    (tmp_path / "branchy.py").write_text(DATA_DEPENDENT)
    model = resolve_model(ModelConfig(name="branchy.py:build"), tmp_path)
    choice = fusion_choice(model, (1, 40), 10, torch.device("cuda"))
    assert not choice.fused
    assert choice.reason.startswith("torch.func cannot stack it (RuntimeError: ")
    train = TrainConfig(lr=0.05, batch_size=32, iterations=3, epochs=None)
    jobs = [TrainJob(model=model, train=train, init_state=initial_state(model, data, s),
                     data_seed=s) for s in (0, 1)]
    results = train_many(jobs, data, EngineOptions(progress=False, device="cpu", fuse=True))
    assert [r.group_size for r in results] == [1, 1]
