"""The engine's stacked layer forwards equal the stock layers (float64, values and grads)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

from lprcausal.config import ModelConfig
from lprcausal.models import build_model
from lprcausal.train.engine import member_losses
from lprcausal.train.layers import prepare_template
from lprcausal.train.stacked import StackedModel

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The models here are tiny: a second thread only adds synchronization, which turns
    # into long stalls when other processes compete for the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def stacked_params(module: nn.Module, K: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        n: (p.detach() + 0.1 * torch.randn(K, *p.shape, generator=g, dtype=F64)).requires_grad_()
        for n, p in module.named_parameters()
    }


def outputs_and_grads(module, params, x, in_dims):
    def fn(p, xx):
        return functional_call(module, p, (xx,))

    out = vmap(fn, in_dims=in_dims)(params, x)
    inputs = [*params.values(), *([x] if x.requires_grad else [])]
    return out, torch.autograd.grad(out.square().sum(), inputs)


def assert_same_as_stock(stock: nn.Module, x: torch.Tensor, K: int, in_dims=(0, 0)):
    fast = prepare_template(copy.deepcopy(stock))
    params = stacked_params(stock, K)
    want, want_grads = outputs_and_grads(stock, params, x, in_dims)
    got, got_grads = outputs_and_grads(fast, params, x, in_dims)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_stock_linear_for_stacked_and_shared_inputs(bias):
    stock = nn.Linear(5, 3, bias=bias).to(F64)
    x = torch.randn(4, 6, 2, 5, dtype=F64, requires_grad=True)
    assert_same_as_stock(stock, x, K=4)
    assert_same_as_stock(stock, torch.randn(6, 5, dtype=F64), K=4, in_dims=(0, None))


def test_linear_matches_stock_linear_without_vmap():
    stock = nn.Linear(5, 3).to(F64)
    fast = prepare_template(copy.deepcopy(stock))
    x = torch.randn(7, 5, dtype=F64, requires_grad=True)
    want, got = stock(x), fast(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    want_grads = torch.autograd.grad(want.square().sum(), [x, *stock.parameters()])
    got_grads = torch.autograd.grad(got.square().sum(), [x, *fast.parameters()])
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("channels", "length", "kernel", "stride", "padding"),
    [(1, 40, 5, 2, 1), (3, 10, 3, 2, 1), (2, 9, 3, 1, 0), (2, 7, 2, 3, 2), (1, 5, 1, 1, 0)],
)
def test_conv1d_as_gemm_matches_stock_conv1d(channels, length, kernel, stride, padding):
    stock = nn.Conv1d(channels, 4, kernel, stride=stride, padding=padding).to(F64)
    x = torch.randn(3, 2, channels, length, dtype=F64, requires_grad=True)
    assert_same_as_stock(stock, x, K=3)


def test_conv1d_with_groups_or_dilation_keeps_the_stock_forward():
    grouped = nn.Conv1d(4, 4, 3, groups=2)
    dilated = nn.Conv1d(4, 4, 3, dilation=2)
    prepare_template(grouped)
    prepare_template(dilated)
    assert "forward" not in vars(grouped) and "forward" not in vars(dilated)


def test_linear_weight_gradients_land_in_the_gradient_buffer_without_a_copy():
    spec = ModelConfig(name="mlp", widths=(6,))
    states = []
    for seed in range(3):
        torch.manual_seed(seed)
        states.append(build_model("mlp", (1, 5), 3, widths=(6,)).state_dict())
    cpu = torch.device("cpu")
    model = StackedModel(spec, states, [None] * 3, (1, 5), 3, cpu, F64, vmapped=True)
    x = torch.randn(3, 4, 1, 5, dtype=F64)
    y = torch.randint(0, 3, (3, 4))
    loss = member_losses(model.forward(x), y).sum()
    leaves = [leaf for leaf, _ in model._pairs]
    direct = torch.autograd.grad(loss, leaves, retain_graph=True)
    for (_, slot), g in zip(model._pairs, direct, strict=True):
        assert g.data_ptr() == slot.data_ptr()
    want = [g.clone() for g in direct]
    grad = model.backward(loss)
    for (_, slot), w in zip(model._pairs, want, strict=True):
        assert torch.equal(slot, w)
    assert grad.shape == model.flat.shape


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_stock_batch_norm_and_updates_each_members_buffers(training):
    K = 3
    stock = nn.BatchNorm2d(4).to(F64).train(training)
    fast = prepare_template(copy.deepcopy(stock)).train(training)
    params = stacked_params(stock, K)
    g = torch.Generator().manual_seed(2)
    buffers = {
        "running_mean": torch.randn(K, 4, generator=g, dtype=F64),
        "running_var": torch.rand(K, 4, generator=g, dtype=F64) + 0.5,
        "num_batches_tracked": torch.zeros(K, dtype=torch.int64),
    }
    x = torch.randn(K, 5, 4, 3, 3, dtype=F64, requires_grad=True)
    results = []
    for module in (stock, fast):
        bufs = {n: b.clone() for n, b in buffers.items()}

        def fn(p, b, xx, module=module):
            return functional_call(module, (p, b), (xx,))

        out = vmap(fn)(params, bufs, x)
        grads = torch.autograd.grad(out.square().sum(), [*params.values(), x])
        results.append((out, grads, bufs))
    (want, want_grads, want_bufs), (got, got_grads, got_bufs) = results
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for name in buffers:
        torch.testing.assert_close(got_bufs[name], want_bufs[name], rtol=0, atol=1e-12)
    assert torch.equal(got_bufs["num_batches_tracked"], torch.full((K,), int(training)))


class _Twice(nn.Module):
    """One linear layer applied twice: its weight gets two gradients to add up."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(torch.relu(self.lin(x)))


def test_layer_called_twice_gets_the_sum_of_both_gradients_in_its_slot():
    K = 2
    stock = _Twice().to(F64)
    fast = prepare_template(copy.deepcopy(stock))
    params = stacked_params(stock, K)
    for p in params.values():
        p.grad_slot = torch.full_like(p, float("nan"))
    x = torch.randn(K, 3, 4, dtype=F64)
    want, want_grads = outputs_and_grads(stock, params, x, (0, 0))
    got, got_grads = outputs_and_grads(fast, params, x, (0, 0))
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "name, in_shape, widths",
    [("mlp", (1, 20), (16, 12)), ("cnn1d", (1, 24), (6, 5)), ("resnet8", (3, 8, 8), (4, 6, 8))],
)
def test_stacked_step_under_bf16_autocast_gives_float32_gradients_near_the_fp32_ones(
    name, in_shape, widths
):
    # The engine's bf16 precision (CUDA) is autocast around the same stacked forward; the
    # CPU's bf16 autocast exercises the same layer code, so a dtype clash shows up here too.
    K, n_classes = 3, 4
    states = []
    for k in range(K):
        torch.manual_seed(k)
        states.append(build_model(name, in_shape, n_classes, widths=widths).state_dict())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(K, 8, *in_shape, generator=g)
    y = torch.randint(0, n_classes, (K, 8), generator=g)
    grads = {}
    for bf16 in (False, True):
        model = StackedModel(
            ModelConfig(name, widths), states, [None] * K, in_shape, n_classes,
            torch.device("cpu"), torch.float32, vmapped=True,  # the layer code CUDA runs
        )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            losses = member_losses(model.forward(x), y)
        grads[bf16] = model.backward(losses.sum()).clone()
    assert grads[True].dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: gradients off by a few percent of their norm (a wrong
    # weight or layout would be off by about 100%).
    assert torch.linalg.norm(grads[True] - grads[False]) < 0.1 * torch.linalg.norm(grads[False])
    assert not torch.equal(grads[True], grads[False])  # bf16 really was used
