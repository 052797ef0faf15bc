"""The hand-written training step equals autograd on the stock module (float64, loss and grads)."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F

from lprcausal.config import ModelConfig
from lprcausal.models import build_model
from lprcausal.train.stacked import StackedModel

F64 = torch.float64


def member_states(model: ModelConfig, in_shape, K: int, n_classes: int) -> list[dict]:
    states = []
    for k in range(K):
        torch.manual_seed(k)
        net = build_model(model.name, in_shape, n_classes, widths=model.widths).to(F64)
        states.append({n: t.detach().clone() for n, t in net.state_dict().items()})
    return states


def stock_loss_and_grads(model, in_shape, n_classes, state, x, y):
    net = build_model(model.name, in_shape, n_classes, widths=model.widths).to(F64)
    net.load_state_dict(state)
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    return loss.item(), {n: p.grad for n, p in net.named_parameters()}


CASES = [
    (1, "mlp", (1, 12), (7,)),
    (3, "mlp", (1, 12), (9, 5)),
    (4, "mlp", (2, 3, 3), (6,)),
    (1, "cnn1d", (1, 24), (4, 5)),
    (3, "cnn1d", (1, 40), None),  # kernels 5, 3, 3; stride 2; padding 1
    (2, "cnn1d", (3, 17), (6, 2, 5)),  # several input channels, odd lengths
]


@pytest.mark.parametrize(("K", "name", "in_shape", "widths"), CASES)
def test_hand_step_gives_the_stock_loss_and_gradients(K, name, in_shape, widths):
    model, n_classes, B = ModelConfig(name, widths), 4, 10
    states = member_states(model, in_shape, K, n_classes)
    stacked = StackedModel(model, states, [None] * K, in_shape, n_classes, torch.device("cpu"), F64)
    step = stacked.hand_step(B)
    assert step is not None
    g = torch.Generator().manual_seed(0)
    x = torch.randn(K, B, *in_shape, generator=g, dtype=F64)
    y = torch.randint(0, n_classes, (K, B), generator=g)
    stacked.grad.fill_(float("nan"))  # every entry must be overwritten
    for _ in range(2):  # buffers are reused: a second call gives the same answer
        losses = step(x, y)
        for k in range(K):
            want_loss, want_grads = stock_loss_and_grads(
                model, in_shape, n_classes, states[k], x[k], y[k]
            )
            assert losses[k].item() == pytest.approx(want_loss, rel=1e-13)
            got = stacked.member_state(k)  # parameters unchanged by the step
            grads = dict(zip(stacked.param_names, stacked.grad[k].split(stacked.sizes), strict=True))
            for name, want in want_grads.items():
                torch.testing.assert_close(got[name], states[k][name], rtol=0, atol=0)
                torch.testing.assert_close(
                    grads[name].view(want.shape), want, rtol=0, atol=1e-13, msg=name
                )


@pytest.mark.parametrize(
    ("kernels", "stride", "padding"),
    # (first conv's kernel, later convs' kernel): the later ones form input gradients
    [((1, 4), 2, 0), ((2, 1), 3, 1), ((3, 2), 3, 0), ((3, 3), 1, 1), ((5, 5), 2, 2)],
)
def test_col2im_covers_every_kernel_stride_and_padding(kernels, stride, padding, monkeypatch):
    # The input gradient copies the first tap of each stride residue and adds the rest:
    # residues no tap reaches (stride > kernel) must come out zero, taps beyond the first
    # must land shifted by whole strides.
    from lprcausal.models import cnn1d

    monkeypatch.setattr(cnn1d, "STRIDE", stride)
    monkeypatch.setattr(cnn1d, "PADDING", padding)
    monkeypatch.setattr(cnn1d, "kernel_size", lambda i: kernels[min(i, 1)])
    model, in_shape, n_classes, B, K = ModelConfig("cnn1d", (3, 4)), (2, 23), 3, 5, 2
    states = member_states(model, in_shape, K, n_classes)
    stacked = StackedModel(model, states, [None] * K, in_shape, n_classes, torch.device("cpu"), F64)
    step = stacked.hand_step(B)
    assert step is not None
    g = torch.Generator().manual_seed(1)
    x = torch.randn(K, B, *in_shape, generator=g, dtype=F64)
    y = torch.randint(0, n_classes, (K, B), generator=g)
    for _ in range(2):
        for layer in step.layers:  # every position must be written: no stale values
            if hasattr(layer, "grad_padded"):
                layer.grad_padded.fill_(float("nan"))
        step(x, y)
        for k in range(K):
            _, want_grads = stock_loss_and_grads(model, in_shape, n_classes, states[k], x[k], y[k])
            grads = dict(zip(stacked.param_names, stacked.grad[k].split(stacked.sizes), strict=True))
            for name, want in want_grads.items():
                torch.testing.assert_close(
                    grads[name].view(want.shape), want, rtol=0, atol=1e-13, msg=name
                )


def test_dead_relu_units_pass_no_gradient():
    model, in_shape, n_classes, B = ModelConfig("mlp", (5,)), (1, 6), 3, 8
    (state,) = member_states(model, in_shape, 1, n_classes)
    state["hidden.0.bias"][:2] = -1e6  # units 0 and 1 never fire
    stacked = StackedModel(model, [state], [None], in_shape, n_classes, torch.device("cpu"), F64)
    x = torch.randn(1, B, *in_shape, dtype=F64)
    y = torch.randint(0, n_classes, (1, B))
    stacked.hand_step(B)(x, y)
    grads = dict(zip(stacked.param_names, stacked.grad[0].split(stacked.sizes), strict=True))
    hidden_w = grads["hidden.0.weight"].view(5, 6)
    assert torch.equal(hidden_w[:2], torch.zeros(2, 6, dtype=F64))
    assert torch.equal(grads["hidden.0.bias"][:2], torch.zeros(2, dtype=F64))
    assert torch.count_nonzero(hidden_w[2:]) > 0


@pytest.mark.parametrize(("K", "threads", "want"), [(1, 4, 1), (2, 4, 2), (3, 2, 2), (8, 4, 4)])
def test_a_step_of_k_members_runs_its_gemms_on_at_most_k_threads(K, threads, want, monkeypatch):
    # More threads than members would let a GEMM split one member's sums across threads,
    # and a run's bits would then depend on its group (seen on a 16-core Xeon).
    model, in_shape, n_classes, B = ModelConfig("cnn1d", (4, 5)), (1, 24), 4, 6
    states = member_states(model, in_shape, K, n_classes)
    stacked = StackedModel(model, states, [None] * K, in_shape, n_classes, torch.device("cpu"), F64)
    step = stacked.hand_step(B)
    seen = []
    bmm = torch.bmm

    def counting_bmm(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return bmm(*args, **kwargs)

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        monkeypatch.setattr(torch, "bmm", counting_bmm)
        step(torch.randn(K, B, *in_shape, dtype=F64), torch.randint(0, n_classes, (K, B)))
        step.forward(torch.randn(K, B, *in_shape, dtype=F64))
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    # the step: 3 forward + 5 backward (the first conv has no input gradient); then 3 forward
    assert len(seen) == 3 + 5 + 3
    assert set(seen) == {want}
    assert after == threads


@pytest.mark.parametrize(("name", "in_shape"), [("lenet5", (1, 28, 28)), ("resnet8", (3, 8, 8))])
def test_other_families_have_no_hand_step(name, in_shape):
    model = ModelConfig(name)
    states = member_states(model, in_shape, 2, 3)
    stacked = StackedModel(model, states, [None, None], in_shape, 3, torch.device("cpu"), F64)
    assert stacked.hand_step(4) is None


@pytest.mark.parametrize(("name", "in_shape"), [("mlp", (1, 12)), ("cnn1d", (2, 21))])
def test_accuracy_through_the_hand_forward_equals_the_module_forward(name, in_shape):
    model, n_classes, K = ModelConfig(name), 5, 3
    states = member_states(model, in_shape, K, n_classes)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(23, *in_shape, generator=g, dtype=F64)  # 23 = 2 batches of 8 + 7
    cpu = torch.device("cpu")
    plain = StackedModel(model, states, [None] * K, in_shape, n_classes, cpu, F64)
    hand = StackedModel(model, states, [None] * K, in_shape, n_classes, cpu, F64)
    hand.hand_step(8)
    with torch.no_grad():
        logits = plain.forward(x, shared=True)  # [K, 23, n_classes]
    y = logits.argmax(-1)[0]  # member 0 is right everywhere, the others partly
    want = plain.accuracy(x, y, nullcontext)
    got = hand.accuracy(x, y, nullcontext)
    assert want[0] == 1.0 and 0 < want[1:].min() < 1
    assert torch.equal(got, want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["mlp", "cnn1d"])
def test_hand_step_on_cuda_equals_the_cpu(name):
    in_shape, K, B, n_classes = (1, 40), 3, 16, 10
    model = ModelConfig(name)
    states = member_states(model, in_shape, K, n_classes)
    x = torch.randn(K, B, *in_shape, dtype=F64)
    y = torch.randint(0, n_classes, (K, B))
    out = {}
    for dev in ("cpu", "cuda"):
        stacked = StackedModel(model, states, [None] * K, in_shape, n_classes, torch.device(dev), F64)
        losses = stacked.hand_step(B)(x.to(dev), y.to(dev))
        out[dev] = (losses.cpu(), stacked.grad.cpu())
    torch.testing.assert_close(out["cuda"][0], out["cpu"][0], rtol=0, atol=1e-12)
    torch.testing.assert_close(out["cuda"][1], out["cpu"][1], rtol=0, atol=1e-12)
