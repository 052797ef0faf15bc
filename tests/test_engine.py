"""The fused training engine against a plain per-run ``torch.optim`` loop.

Every model family trains K members that differ in lr, weight decay, momentum,
schedule and mask; each member must match the same run trained alone by a standard
``build_model`` module with ``torch.optim`` on the same batches. Everything runs in
float64, where fused and plain agree to ~1e-10 or better after 56 steps (float32
would leave ~1e-6 of rounding noise between two correct implementations).
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from lprcausal.config import Kwargs, ModelConfig, TrainConfig
from lprcausal.data import Dataset, apply_crop_flip, crop_flip_params
from lprcausal.errors import LprError
from lprcausal.models import build_model, prunable_names
from lprcausal.pruning import global_magnitude_masks
from lprcausal.train import EngineOptions, TrainJob, budget, evaluate_states, train_many
from lprcausal.train.budget import (
    CPU_CACHE_BYTES,
    activation_elements,
    balanced_chunks,
    cache_members,
)
from lprcausal.train.engine import _train_group
from lprcausal.train.stacked import StackedModel

F64 = EngineOptions(device="cpu", dtype=torch.float64, progress=False, fuse=True)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The models here are tiny: a second thread only adds synchronization, which turns
    # into long stalls when other processes compete for the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


STEPS = 56  # 7 epochs of 8 batches of 8 samples
ATOL = 1e-10

FAMILIES = {
    "mlp": ((1, 20), (16, 12)),
    "cnn1d": ((1, 24), (6, 5)),
    "lenet5": ((1, 28, 28), (3, 4, 12, 10)),
    "resnet8": ((3, 8, 8), (4, 6, 8)),
    "vgg11": ((3, 32, 32), (2, 3, 4, 4, 4)),
}


def synthetic(in_shape, n_train=64, n_eval=16, n_classes=4, seed=0) -> Dataset:
    """Random inputs and labels, built directly (no files)."""
    g = torch.Generator().manual_seed(seed)

    def part(n):
        x = torch.randn(n, *in_shape, generator=g)
        return x, torch.randint(0, n_classes, (n,), generator=g)

    (xt, yt), (xv, yv), (xs, ys) = part(n_train), part(n_eval), part(n_eval)
    return Dataset("synthetic", xt, yt, xv, yv, xs, ys, tuple(in_shape), n_classes)


def init_state(model: ModelConfig, data: Dataset, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = build_model(model.name, data.in_shape, data.n_classes, widths=model.widths)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def random_mask(model: ModelConfig, data: Dataset, seed: int, keep=0.5) -> dict[str, torch.Tensor]:
    net = build_model(model.name, data.in_shape, data.n_classes, widths=model.widths)
    g = torch.Generator().manual_seed(seed)
    params = dict(net.named_parameters())
    return {n: torch.rand(params[n].shape, generator=g) < keep for n in prunable_names(net)}


def train(**kw) -> TrainConfig:
    base = dict(batch_size=8, iterations=STEPS, epochs=None)
    return TrainConfig(**{**base, **kw})


# Three SGD members that differ in everything a member may differ in.
SGD_MEMBERS = [
    dict(lr=0.05, momentum=0.9, weight_decay=5e-4),
    dict(lr=0.1, momentum=0.0, schedule="step", milestones=("20it", "40it"), gamma=0.3),
    dict(lr=0.03, momentum=0.5, weight_decay=1e-3, schedule="cosine", warmup="10it"),
]


def make_jobs(model, data, members, masks=(False, True, True), capture=()):
    return [
        TrainJob(
            model=model,
            train=train(**m),
            init_state=init_state(model, data, seed=k),
            data_seed=100 + k,
            mask=random_mask(model, data, seed=k) if masked else None,
            capture_steps=capture,
        )
        for k, (m, masked) in enumerate(zip(members, masks, strict=True))
    ]


def reference(job: TrainJob, data: Dataset, stop: int | None = None) -> dict[str, torch.Tensor]:
    """One run with a standard module and torch.optim, batches drawn like the engine's."""
    c, dt = job.train, torch.float64
    model = build_model(job.model.name, data.in_shape, data.n_classes, widths=job.model.widths)
    model = model.to(dt)
    model.load_state_dict(job.init_state)
    keep = {n: m.to(dt) for n, m in (job.mask or {}).items()}
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, m in keep.items():
            params[n].mul_(m)
    if c.optimizer == "sgd":
        opt = torch.optim.SGD(
            model.parameters(),
            lr=c.lr,
            momentum=c.momentum,
            nesterov=c.nesterov,
            weight_decay=c.weight_decay,
        )
    else:
        cls = torch.optim.Adam if c.optimizer == "adam" else torch.optim.AdamW
        opt = cls(
            model.parameters(),
            lr=c.lr,
            betas=(c.beta1, c.beta2),
            eps=c.eps,
            weight_decay=c.weight_decay,
        )
    n, B = data.n_train, c.batch_size
    spe, total = n // B, c.total_steps(n)
    lrs = [c.lr * f for f in c.lr_factors(n)]
    g = torch.Generator().manual_seed(job.data_seed)
    model.train()
    for step in range(total if stop is None else stop):
        s = step % spe
        if s == 0:
            perm = torch.randperm(n, generator=g)
            if c.augment:
                dy, dx, flip = crop_flip_params(n, g)
        idx = perm[s * B : (s + 1) * B]
        x, y = data.x_train[idx].to(dt), data.y_train[idx]
        if c.augment:
            x = apply_crop_flip(x, dy[idx], dx[idx], flip[idx])
        for group in opt.param_groups:
            group["lr"] = lrs[step]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for name, m in keep.items():
            params[name].grad.mul_(m)
        opt.step()
        with torch.no_grad():
            for name, m in keep.items():
                params[name].mul_(m)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_states_close(got: dict, want: dict, atol: float = ATOL) -> None:
    assert got.keys() == want.keys()
    for name in want:
        if want[name].is_floating_point():
            torch.testing.assert_close(got[name], want[name], rtol=0, atol=atol, msg=name)
        else:
            assert torch.equal(got[name], want[name]), name


def prunable_weights(model: ModelConfig, data: Dataset, state: dict) -> dict:
    net = build_model(model.name, data.in_shape, data.n_classes, widths=model.widths)
    return {n: state[n] for n in prunable_names(net)}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fused_members_match_plain_torch_optim_runs(family):
    in_shape, widths = FAMILIES[family]
    data = synthetic(in_shape)
    model = ModelConfig(name=family, widths=widths)
    jobs = make_jobs(model, data, SGD_MEMBERS)
    results = train_many(jobs, data, F64)
    assert [r.group_size for r in results] == [3, 3, 3]
    for job, res in zip(jobs, results, strict=True):
        want = reference(job, data)
        assert_states_close(res.state, want)
        assert not res.diverged
        for name, m in (job.mask or {}).items():
            assert torch.all(res.state[name][~m] == 0), name
        got_masks = global_magnitude_masks(prunable_weights(model, data, res.state), 0.5)
        want_masks = global_magnitude_masks(prunable_weights(model, data, want), 0.5)
        for name in want_masks:
            assert torch.equal(got_masks[name], want_masks[name]), name


ADAM_MEMBERS = [
    dict(lr=3e-3, weight_decay=1e-2),
    dict(lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6, schedule="cosine"),
    dict(lr=5e-3, weight_decay=1e-3, schedule="step", milestones=("30it",), warmup="8it"),
]
NESTEROV_MEMBERS = [
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    dict(lr=0.02, momentum=0.6, nesterov=True, schedule="cosine"),
]


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "nesterov"])
def test_fused_adam_adamw_and_nesterov_match_torch_optim(optimizer):
    data = synthetic((1, 20))
    model = ModelConfig(name="mlp", widths=(16, 12))
    if optimizer == "nesterov":
        members, masks = NESTEROV_MEMBERS, (True, False)
    else:
        members = [dict(m, optimizer=optimizer) for m in ADAM_MEMBERS]
        masks = (False, True, True)
    jobs = make_jobs(model, data, members, masks)
    for job, res in zip(jobs, train_many(jobs, data, F64), strict=True):
        assert_states_close(res.state, reference(job, data))


@pytest.mark.parametrize("family", ["cnn1d", "resnet8"])
def test_member_trained_in_a_group_equals_member_trained_alone(family):
    in_shape, widths = FAMILIES[family]
    data = synthetic(in_shape)
    model = ModelConfig(name=family, widths=widths)
    jobs = make_jobs(model, data, SGD_MEMBERS)
    fused = train_many(jobs, data, F64)
    alone = train_many(jobs, data, EngineOptions(**{**vars(F64), "fuse": False}))
    assert [r.group_size for r in alone] == [1, 1, 1]
    for f, a in zip(fused, alone, strict=True):
        assert_states_close(f.state, a.state, atol=1e-12)
        assert f.train_loss == pytest.approx(a.train_loss, abs=1e-12)
        assert f.val_acc == a.val_acc
        assert f.test_acc == a.test_acc


def test_same_jobs_twice_give_bit_identical_results():
    data = synthetic((3, 8, 8))
    model = ModelConfig(name="resnet8", widths=(4, 6, 8))
    jobs = make_jobs(model, data, SGD_MEMBERS[:2], masks=(False, True))
    options = EngineOptions(device="cpu", progress=False, fuse=True)
    first, second = train_many(jobs, data, options), train_many(jobs, data, options)
    assert first[0].group_size == 2
    for a, b in zip(first, second, strict=True):
        for name in a.state:
            assert torch.equal(a.state[name], b.state[name]), name
        assert a.train_loss == b.train_loss


def test_diverging_member_is_flagged_and_leaves_the_others_unchanged():
    data = synthetic((1, 20))
    model = ModelConfig(name="mlp", widths=(16, 12))
    jobs = make_jobs(model, data, SGD_MEMBERS)
    huge = TrainJob(
        model=model,
        train=train(lr=1e150, momentum=0.9),
        init_state=init_state(model, data, seed=9),
        data_seed=7,
    )
    with_it = train_many([jobs[0], huge, *jobs[1:]], data, F64)
    without = train_many(jobs, data, F64)
    bad = with_it[1]
    assert bad.diverged
    assert all(math.isnan(v) for v in bad.val_acc) and math.isnan(bad.test_acc)
    assert not math.isfinite(bad.train_loss[-1])
    for got, want in zip([with_it[0], *with_it[2:]], without, strict=True):
        assert not got.diverged
        assert_states_close(got.state, want.state, atol=1e-12)
        assert got.test_acc == want.test_acc


def test_capture_steps_snapshot_the_state_before_that_step():
    data = synthetic((1, 20))
    model = ModelConfig(name="mlp", widths=(16, 12))
    jobs = make_jobs(model, data, SGD_MEMBERS, capture=(0, 20, STEPS))
    results = train_many(jobs, data, F64)
    for job, res in zip(jobs, results, strict=True):
        assert sorted(res.snapshots) == [0, 20, STEPS]
        assert_states_close(res.snapshots[0], reference(job, data, stop=0), atol=0)
        assert_states_close(res.snapshots[20], reference(job, data, stop=20))
        assert_states_close(res.snapshots[STEPS], res.state, atol=0)


def test_augmented_training_matches_reference_crop_flip():
    data = synthetic((3, 32, 32), n_train=32)
    model = ModelConfig(name="mlp", widths=(8,))
    members = [dict(lr=0.01, augment=True), dict(lr=0.02, momentum=0.5, augment=True)]
    jobs = make_jobs(model, data, members, masks=(False, True))
    plain = train_many(make_jobs(model, data, [dict(lr=0.01)], masks=(False,)), data, F64)
    results = train_many(jobs, data, F64)
    for job, res in zip(jobs, results, strict=True):
        assert_states_close(res.state, reference(job, data))
    # Augmentation really changed what member 0 saw.
    assert not torch.allclose(results[0].state["fc.weight"], plain[0].state["fc.weight"])


def test_incompatible_runs_train_in_separate_groups_and_max_members_chunks():
    data = synthetic((1, 20))
    model = ModelConfig(name="mlp", widths=(16, 12))
    state = init_state(model, data, 0)

    def job(**kw):
        return TrainJob(model=model, train=train(**kw), init_state=state, data_seed=1)

    jobs = [job(), job(batch_size=16), job(lr=0.2), job(iterations=8), job(lr=0.3)]
    results = train_many(jobs, data, EngineOptions(device="cpu", progress=False, max_members=2))
    assert [r.group_size for r in results] == [2, 1, 2, 1, 1]
    assert [r.steps for r in results] == [STEPS, STEPS, STEPS, 8, STEPS]


def test_fusing_runs_of_different_architectures_is_refused_not_split():
    data = synthetic((1, 20))
    small, large = ModelConfig("mlp", (16, 12)), ModelConfig("mlp", (16, 13))
    jobs = [
        TrainJob(m, train(), init_state(m, data, 0), data_seed=1) for m in (small, large)
    ]
    with pytest.raises(ValueError, match=r"must share architecture.*widths=\(16, 12\)"):
        _train_group(jobs, data, torch.device("cpu"), F64)


def test_auto_fusion_on_the_cpu_skips_models_with_2d_convolutions():
    auto = EngineOptions(device="cpu", progress=False)
    for family, fused in [("mlp", 2), ("cnn1d", 2), ("lenet5", 1), ("resnet8", 1)]:
        in_shape, widths = FAMILIES[family]
        data = synthetic(in_shape)
        model = ModelConfig(name=family, widths=widths)
        jobs = make_jobs(model, data, [dict(iterations=2)] * 2, masks=(False, False))
        assert [r.group_size for r in train_many(jobs, data, auto)] == [fused, fused], family


def test_deciding_whether_to_fuse_does_not_import_the_compiler():
    # A model probed under torch.device("meta") sent its initializers through torch._refs,
    # which imports torch._dynamo: 1-1.5 s added to every command that plans training.
    code = (
        "import sys, torch; from lprcausal.config import ModelConfig; "
        "from lprcausal.train.generic import fusion_choice; "
        "print(fusion_choice(ModelConfig('lenet5'), (1, 28, 28), 10, torch.device('cpu')).fused, "
        "'torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_group_that_does_not_fit_the_memory_budget_raises_with_the_size_needed():
    data = synthetic((1, 20))
    model = ModelConfig(name="mlp", widths=(16, 12))
    jobs = make_jobs(model, data, SGD_MEMBERS[:1], masks=(False,))
    options = EngineOptions(device="cpu", progress=False, memory_fraction=1e-12)
    with pytest.raises(LprError, match=r"needs about .* GiB.*memory budget"):
        train_many(jobs, data, options)


def test_balanced_chunks_are_as_few_as_the_cap_allows_and_differ_by_at_most_one():
    chunks = balanced_chunks(list(range(111)), 12)
    assert [len(c) for c in chunks] == [12] + [11] * 9
    assert sum(chunks, []) == list(range(111))
    assert balanced_chunks([1, 2, 3], 8) == [[1, 2, 3]]
    assert balanced_chunks([], 4) == []


def test_chunks_for_a_threaded_step_are_multiples_of_the_thread_count_but_for_the_last():
    # 111 runs, cap 12, 2 threads: 56 two-member units, the fewest possible; the odd run
    # goes to the last chunk (unit-free sizes 12 + 11 * 9 would cost 60 units).
    chunks = balanced_chunks(list(range(111)), 12, 2)
    assert [len(c) for c in chunks] == [12] * 5 + [10] * 4 + [11]
    assert sum(chunks, []) == list(range(111))
    assert [len(c) for c in balanced_chunks(list(range(7)), 3, 2)] == [2, 2, 3]
    assert [len(c) for c in balanced_chunks(list(range(13)), 4, 4)] == [4, 4, 4, 1]
    # a cap below the multiple: plain balanced chunks of the cap
    assert [len(c) for c in balanced_chunks(list(range(5)), 3, 4)] == [3, 2]
    assert [len(c) for c in balanced_chunks(list(range(11)), 11, 2)] == [11]


def test_no_chunk_is_larger_than_the_cap_whatever_the_thread_multiple():
    # 6 runs, cap 3, 2 threads: three chunks of 2, not 4 + 2 (a chunk over the cap)
    assert [len(c) for c in balanced_chunks(list(range(6)), 3, 2)] == [2, 2, 2]
    assert [len(c) for c in balanced_chunks(list(range(10)), 5, 2)] == [4, 4, 2]
    for n in range(1, 40):
        for cap in range(1, 13):
            for multiple in range(1, 6):
                sizes = [len(c) for c in balanced_chunks(list(range(n)), cap, multiple)]
                assert sum(sizes) == n and max(sizes) <= cap, (n, cap, multiple, sizes)


def test_a_cpu_group_holds_at_most_the_cache_budget_of_activations(monkeypatch):
    # The 1D CNN of MNIST-1D: 860 activation elements per sample (probe), x3 for backward.
    model, per_member = ModelConfig("cnn1d"), 4 * 100 * 860 * 3
    assert activation_elements(model, (1, 40), 10) == 860
    assert cache_members(model, (1, 40), 10, 100, torch.device("cpu")) == CPU_CACHE_BYTES // per_member
    assert cache_members(model, (1, 40), 10, 100, torch.device("meta")) is None
    monkeypatch.setattr(budget, "CPU_CACHE_BYTES", per_member)  # one member's worth
    assert cache_members(model, (1, 40), 10, 100, torch.device("cpu")) == torch.get_num_threads()
    # the engine splits a group of five into balanced groups of the cap
    in_shape, widths = FAMILIES["cnn1d"]
    data, small = synthetic(in_shape), ModelConfig("cnn1d", widths)
    per_small = 4 * 8 * activation_elements(small, in_shape, data.n_classes) * 3
    monkeypatch.setattr(budget, "CPU_CACHE_BYTES", 2 * per_small)  # two members (one thread)
    jobs = make_jobs(small, data, [dict(iterations=2)] * 5, masks=(False,) * 5)
    results = train_many(jobs, data, EngineOptions(device="cpu", progress=False))
    assert [r.group_size for r in results] == [2, 2, 2, 2, 1]


@pytest.mark.parametrize(
    ("n_runs", "sizes"),
    [
        # 7 runs: groups of 2, 2, 3 (not 3, 2, 2, with a thread idle for one member of
        # each group of 3 but the last)
        (7, [2, 2, 2, 2, 3, 3, 3]),
        # 6 runs: groups of 2, never one of 4 over the cap
        (6, [2] * 6),
    ],
)
def test_the_engine_sizes_cpu_groups_in_whole_threads_within_max_members(n_runs, sizes):
    in_shape, widths = FAMILIES["mlp"]
    data, model = synthetic(in_shape), ModelConfig("mlp", widths)
    jobs = make_jobs(model, data, [dict(iterations=2)] * n_runs, masks=(False,) * n_runs)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # max_members 3 on 2 threads
    try:
        results = train_many(jobs, data, EngineOptions(device="cpu", progress=False, max_members=3))
    finally:
        torch.set_num_threads(threads)
    assert [r.group_size for r in results] == sizes


def test_mask_of_the_wrong_shape_is_rejected():
    data = synthetic((1, 20))
    model = ModelConfig(name="mlp", widths=(16, 12))
    jobs = make_jobs(model, data, SGD_MEMBERS[:1], masks=(False,))
    jobs[0].mask = {"fc.weight": torch.ones(3, 3, dtype=torch.bool)}
    with pytest.raises(LprError, match="fc.weight"):
        train_many(jobs, data, F64)


def test_evaluate_states_gives_each_states_test_accuracy():
    data = synthetic((1, 20), n_eval=40)
    model = ModelConfig(name="mlp", widths=(16, 12))
    states = [init_state(model, data, seed) for seed in range(3)]
    net = build_model("mlp", data.in_shape, data.n_classes, widths=(16, 12)).eval()
    want = []
    for state in states:
        net.load_state_dict(state)
        with torch.no_grad():
            want.append((net(data.x_test).argmax(1) == data.y_test).double().mean().item())
    assert evaluate_states(model, states, data, "test", "cpu") == pytest.approx(want, abs=1e-12)


def _conv_layouts(model: ModelConfig, family: str) -> list[tuple[bool, bool]]:
    """(weight, input) channels-last? for every Conv2d call of one member's forward."""
    in_shape, _ = FAMILIES[family]
    data = synthetic(in_shape)
    states = [init_state(ModelConfig(family, FAMILIES[family][1]), data, k) for k in range(2)]
    stacked = StackedModel(model, states, [None, None], in_shape, data.n_classes,
                           torch.device("cpu"), torch.float64)
    seen = []

    def hook(module, args):
        # stride 1 along channels: channels-last, also for a single channel
        seen.append((module.weight.stride()[1] == 1, args[0].stride()[1] == 1))

    convs = [m for m in stacked.template.modules() if isinstance(m, torch.nn.Conv2d)]
    handles = [m.register_forward_pre_hook(hook) for m in convs]
    try:
        out = stacked.forward_member(1, data.x_train[:8].double())
    finally:
        for h in handles:
            h.remove()
    assert len(seen) == len(convs)
    # the gradient still reaches member 1's slots of the buffer; member 0's row is untouched
    stacked.grad[0].fill_(float("nan"))
    stacked.backward(F.cross_entropy(out, data.y_train[:8]), member=1)
    assert torch.count_nonzero(stacked.grad[1]) > 0 and stacked.grad[0].isnan().all()
    return seen


@pytest.mark.parametrize("family", ["lenet5", "resnet8", "vgg11"])
def test_2d_convs_run_channels_last_member_by_member_on_the_cpu(family):
    # oneDNN's NHWC kernels are the fast ones on the CPU (benchmarks/).
    layouts = _conv_layouts(ModelConfig(family, FAMILIES[family][1]), family)
    assert all(w and x for w, x in layouts)


def test_a_model_given_by_import_path_keeps_its_layout():
    # its forward may view() its input, which channels-last strides would break
    widths = list(FAMILIES["lenet5"][1])
    model = ModelConfig("lprcausal.models.factories:lenet5", kwargs=Kwargs.of({"widths": widths}))
    layouts = _conv_layouts(model, "lenet5")
    assert not any(w for w, _ in layouts) and not layouts[-1][1]
