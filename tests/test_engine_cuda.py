"""The fused training engine on CUDA (every test is skipped without a GPU).

In float64 a fused member on the GPU must match the plain ``torch.optim`` run on the CPU
as closely as the CPU engine does. In float32 the GPU libraries choose kernels by shape
(cuBLAS / cuDNN), so a member of a K-group and the same run alone agree to float32
rounding, not bit for bit; TF32 is turned off for that comparison, since it would trade
the precision of every product for speed. Masks stay exactly zero in float32 and under
bf16 autocast, and bf16 autocast really trains.
"""

from __future__ import annotations

import pytest
import torch
from test_engine import (
    FAMILIES,
    SGD_MEMBERS,
    assert_states_close,
    make_jobs,
    reference,
    synthetic,
)

from lprcausal.config import ModelConfig, TrainConfig
from lprcausal.data import Dataset
from lprcausal.models import build_model
from lprcausal.pipeline import Context, FindRun, ensure_evals, ensure_finds
from lprcausal.train import EngineOptions, TrainJob, train_many

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA_F64 = EngineOptions(device="cuda", dtype=torch.float64, progress=False, fuse=True)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fused_members_on_cuda_match_plain_torch_optim_runs_in_float64(family):
    in_shape, widths = FAMILIES[family]
    data = synthetic(in_shape)
    model = ModelConfig(name=family, widths=widths)
    jobs = make_jobs(model, data, SGD_MEMBERS)
    results = train_many(jobs, data, CUDA_F64)
    assert [r.group_size for r in results] == [3, 3, 3]
    for job, res in zip(jobs, results, strict=True):
        assert all(t.device.type == "cpu" for t in res.state.values())
        assert_states_close(res.state, reference(job, data), atol=1e-9)
        for name, m in (job.mask or {}).items():
            assert torch.all(res.state[name][~m] == 0), name


# Short runs: over many steps float32 rounding differences grow chaotically (BatchNorm on
# batches of 8 most of all), which says nothing about the engine.
FP32_MEMBERS = [
    dict(lr=0.05, momentum=0.9, weight_decay=5e-4, iterations=16),
    dict(lr=0.1, momentum=0.0, iterations=16),
    dict(lr=0.03, momentum=0.5, schedule="cosine", iterations=16),
]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_member_fused_on_cuda_equals_it_trained_alone_to_float32_rounding(family, no_tf32):
    in_shape, widths = FAMILIES[family]
    data = synthetic(in_shape)
    model = ModelConfig(name=family, widths=widths)
    jobs = make_jobs(model, data, FP32_MEMBERS)
    options = EngineOptions(device="cuda", progress=False, fuse=True)
    fused = train_many(jobs, data, options)
    alone = train_many(jobs, data, EngineOptions(device="cuda", progress=False, fuse=False))
    assert [r.group_size for r in alone] == [1, 1, 1]
    for f, a in zip(fused, alone, strict=True):
        assert_states_close(f.state, a.state, atol=1e-4)
        assert f.train_loss == pytest.approx(a.train_loss, abs=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("family", ["mlp", "cnn1d", "resnet8"])
def test_masks_stay_exactly_zero_on_cuda(family, precision):
    in_shape, widths = FAMILIES[family]
    data = synthetic(in_shape)
    model = ModelConfig(name=family, widths=widths)
    jobs = make_jobs(model, data, SGD_MEMBERS, masks=(True, True, True))
    options = EngineOptions(device="cuda", progress=False, precision=precision)
    for job, res in zip(jobs, train_many(jobs, data, options), strict=True):
        assert not res.diverged
        assert all(torch.isfinite(t).all() for t in res.state.values() if t.is_floating_point())
        for name, m in job.mask.items():
            assert torch.all(res.state[name][~m] == 0), name
            assert torch.count_nonzero(res.state[name][m]) > 0.9 * m.sum(), name


def learnable(in_shape, n_classes=4, n_train=512, n_eval=256, seed=0) -> Dataset:
    """Noise plus a fixed pattern per class: a network can learn to tell them apart."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(n_classes, *in_shape, generator=g)

    def part(n):
        y = torch.randint(0, n_classes, (n,), generator=g)
        return torch.randn(n, *in_shape, generator=g) + 0.5 * patterns[y], y

    (xt, yt), (xv, yv), (xs, ys) = part(n_train), part(n_eval), part(n_eval)
    return Dataset("learnable", xt, yt, xv, yv, xs, ys, tuple(in_shape), n_classes)


@pytest.mark.parametrize("family", ["mlp", "resnet8"])
def test_bf16_autocast_trains_like_fp32_on_cuda(family):
    in_shape, widths = FAMILIES[family]
    data = learnable(in_shape)
    model = ModelConfig(name=family, widths=widths)
    accs = {}
    for precision in ("fp32", "bf16"):
        jobs = []
        for seed in range(2):
            torch.manual_seed(seed)
            net = build_model(family, in_shape, data.n_classes, widths=widths)
            train = TrainConfig(lr=0.05, momentum=0.9, batch_size=32, epochs=8)
            jobs.append(TrainJob(model, train, dict(net.state_dict()), data_seed=seed))
        options = EngineOptions(device="cuda", progress=False, precision=precision)
        results = train_many(jobs, data, options)
        for res in results:
            assert not res.diverged
            assert res.train_loss[-1] < 0.6 * res.train_loss[0]
        accs[precision] = [res.test_acc for res in results]
    chance = 1 / data.n_classes
    assert min(accs["bf16"]) > chance + 0.3
    assert accs["bf16"] == pytest.approx(accs["fp32"], abs=0.1)


def test_find_and_eval_on_cuda_store_cpu_tensors_and_record_the_device(tmp_path, data_cache):
    from conftest import tiny_find, tiny_train

    from lprcausal.config import EvalSpec

    ctx = Context.at(
        tmp_path / "runs", cache_dir=data_cache, engine=EngineOptions(progress=False, device="cuda")
    )
    [find_id] = ensure_finds(ctx, [tiny_find()])
    run = FindRun(ctx.store, find_id)
    assert run.record["provenance"]["device"].startswith("cuda")
    mask = run.mask(0.8)
    n = sum(m.numel() for m in mask.values())
    assert sum(int((~m).sum()) for m in mask.values()) == round(0.8 * n)
    assert all(m.device.type == "cpu" for m in mask.values())
    [eval_id] = ensure_evals(ctx, [EvalSpec(find=find_id, sparsity=0.8, train=tiny_train())])
    assert eval_id in ctx.store.run_ids()
