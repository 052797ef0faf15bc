"""Specification of the model zoo: shapes, sizes, prunable order, init, fusion, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from lprcausal.errors import LprError
from lprcausal.models import MODELS, build_model, layer_table, prunable_names

NATURAL_SHAPE = {
    "mlp": (1, 28, 28),
    "cnn1d": (1, 40),
    "lenet5": (1, 28, 28),
    "resnet20": (3, 32, 32),
    "resnet32": (3, 32, 32),
    "resnet56": (3, 32, 32),
    "vgg11": (3, 32, 32),
    "vgg16": (3, 32, 32),
}

# Small members of every family for the fusion tests (structure is what matters there).
FUSION_CASES = {
    "mlp": ("mlp", (1, 40), (16, 8)),
    "cnn1d": ("cnn1d", (1, 40), (5, 6, 7)),
    "lenet5": ("lenet5", (1, 28, 28), (3, 4, 12, 8)),
    "resnet": ("resnet8", (3, 32, 32), (4, 8, 8)),
    "vgg11": ("vgg11", (3, 32, 32), (4, 8, 8, 16, 16)),
    "vgg16": ("vgg16", (3, 32, 32), (4, 4, 8, 8, 8)),
}
K = 3
BATCH = 2

CUDA = pytest.param(
    "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def linear_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def conv_bn_params(c_in: int, c_out: int, k: int) -> int:
    """Bias-free conv plus BatchNorm scale and shift."""
    return c_in * c_out * k * k + 2 * c_out


def resnet_params(n: int, in_channels: int, n_classes: int) -> int:
    total = conv_bn_params(in_channels, 16, 3)
    c_in = 16
    for stage, c_out in enumerate((16, 32, 64)):
        for j in range(n):
            total += conv_bn_params(c_in, c_out, 3) + conv_bn_params(c_out, c_out, 3)
            if stage > 0 and j == 0:
                total += conv_bn_params(c_in, c_out, 1)  # projection shortcut
            c_in = c_out
    return total + linear_params(64, n_classes)


# ---------------------------------------------------------------- shapes and sizes


def test_models_lists_the_named_architectures():
    assert MODELS == (
        "mlp",
        "cnn1d",
        "lenet5",
        "resnet20",
        "resnet32",
        "resnet56",
        "vgg11",
        "vgg16",
    )


@pytest.mark.parametrize("name", MODELS)
def test_output_is_batch_by_n_classes_on_natural_input(name):
    shape = NATURAL_SHAPE[name]
    model = build_model(name, shape, 7)
    assert model(torch.randn(BATCH, *shape)).shape == (BATCH, 7)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_lenet5_output_shape_on_both_image_sizes(shape):
    assert build_model("lenet5", shape, 10)(torch.randn(BATCH, *shape)).shape == (BATCH, 10)


def test_mlp_param_count_on_mnist1d_is_lenet_300_100():
    expected = linear_params(40, 300) + linear_params(300, 100) + linear_params(100, 10)
    assert n_params(build_model("mlp", (1, 40), 10)) == expected


def test_mlp_param_count_on_mnist_is_lenet_300_100():
    expected = linear_params(784, 300) + linear_params(300, 100) + linear_params(100, 10)
    assert n_params(build_model("mlp", (1, 28, 28), 10)) == expected


def test_mlp_widths_override_hidden_sizes():
    expected = linear_params(40, 7) + linear_params(7, 10)
    assert n_params(build_model("mlp", (1, 40), 10, widths=(7,))) == expected


def test_cnn1d_param_count_matches_mnist1d_paper_geometry():
    # lengths 40 -> 19 -> 10 -> 5, so the classifier sees 25 * 5 features.
    convs = (1 * 25 * 5 + 25) + 2 * (25 * 25 * 3 + 25)
    assert n_params(build_model("cnn1d", (1, 40), 10)) == convs + linear_params(125, 10)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_lenet5_param_count(shape):
    channels = shape[0]
    convs = (channels * 6 * 25 + 6) + (6 * 16 * 25 + 16)
    fcs = linear_params(16 * 5 * 5, 120) + linear_params(120, 84) + linear_params(84, 10)
    assert n_params(build_model("lenet5", shape, 10)) == convs + fcs


def test_resnet20_param_count():
    expected = resnet_params(3, in_channels=3, n_classes=10)
    assert n_params(build_model("resnet20", (3, 32, 32), 10)) == expected
    assert 0.26e6 < expected < 0.28e6  # the paper's "0.27M"


def test_vgg11_param_count():
    plan = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512)] + [(512, 512)] * 3
    expected = sum(conv_bn_params(a, b, 3) for a, b in plan) + linear_params(512, 10)
    assert n_params(build_model("vgg11", (3, 32, 32), 10)) == expected


@pytest.mark.parametrize("depth", [8, 14, 20, 32, 56])
def test_resnet_depth_counts_convs_and_fc_but_not_projections(depth):
    model = build_model(f"resnet{depth}", (3, 32, 32), 10)
    names = prunable_names(model)
    projections = [n for n in names if "shortcut" in n]
    assert len(projections) == 2
    assert len(names) - len(projections) == depth


# ---------------------------------------------------------------- prunable set


def test_mlp_prunable_names_in_forward_order():
    model = build_model("mlp", (1, 40), 10)
    assert prunable_names(model) == ["hidden.0.weight", "hidden.1.weight", "fc.weight"]


def test_mlp_exclude_first_drops_input_layer():
    model = build_model("mlp", (1, 40), 10)
    assert prunable_names(model, exclude_first=True) == ["hidden.1.weight", "fc.weight"]


def test_mlp_exclude_last_drops_classifier():
    model = build_model("mlp", (1, 40), 10)
    assert prunable_names(model, exclude_last=True) == ["hidden.0.weight", "hidden.1.weight"]


def resnet20_expected_names() -> list[str]:
    names = ["conv1.weight"]
    for stage in (1, 2, 3):
        for j in range(3):
            block = f"layer{stage}.{j}"
            names += [f"{block}.conv1.weight", f"{block}.conv2.weight"]
            if stage > 1 and j == 0:
                names.append(f"{block}.shortcut.conv.weight")
    return [*names, "fc.weight"]


def test_resnet20_prunable_names_in_forward_order_with_shortcut_after_conv2():
    assert prunable_names(build_model("resnet20", (3, 32, 32), 10)) == resnet20_expected_names()


def test_resnet20_exclude_first_drops_stem_conv():
    names = prunable_names(build_model("resnet20", (3, 32, 32), 10), exclude_first=True)
    assert names == resnet20_expected_names()[1:]


def test_resnet20_exclude_last_drops_fc():
    names = prunable_names(build_model("resnet20", (3, 32, 32), 10), exclude_last=True)
    assert names == resnet20_expected_names()[:-1]


def test_exclude_both_keeps_the_middle():
    model = build_model("mlp", (1, 40), 10)
    assert prunable_names(model, exclude_first=True, exclude_last=True) == ["hidden.1.weight"]


@pytest.mark.parametrize("name", MODELS)
def test_prunable_names_follow_the_order_layers_run_in(name):
    shape = NATURAL_SHAPE[name]
    model = build_model(name, shape, 10)
    called: list[str] = []
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            module.register_forward_hook(lambda *_, n=module_name: called.append(f"{n}.weight"))
    model(torch.randn(BATCH, *shape))
    assert prunable_names(model) == called


@pytest.mark.parametrize("name", MODELS)
def test_prunable_names_are_state_dict_weights_of_conv_and_linear_only(name):
    model = build_model(name, NATURAL_SHAPE[name], 10)
    state = model.state_dict()
    expected = [
        f"{m}.weight"
        for m, module in model.named_modules()
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear))
    ]
    names = prunable_names(model)
    assert names == expected
    assert all(n in state for n in names)


def test_layer_table_rows_for_mlp():
    model = build_model("mlp", (1, 40), 10)
    assert layer_table(model, prunable_names(model)) == [
        {"name": "hidden.0.weight", "shape": (300, 40), "n_params": 12000},
        {"name": "hidden.1.weight", "shape": (100, 300), "n_params": 30000},
        {"name": "fc.weight", "shape": (10, 100), "n_params": 1000},
    ]


def test_layer_table_works_on_meta_model():
    model = build_model("lenet5", (1, 28, 28), 10).to("meta")
    rows = layer_table(model, ["conv2.weight"])
    assert rows == [{"name": "conv2.weight", "shape": (16, 6, 5, 5), "n_params": 2400}]


def test_layer_table_rejects_unknown_name():
    model = build_model("mlp", (1, 40), 10)
    with pytest.raises(LprError, match="'conv9.weight'"):
        layer_table(model, ["conv9.weight"])


# ---------------------------------------------------------------- initialization


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_gives_identical_state_dict(name):
    torch.manual_seed(3)
    a = build_model(name, NATURAL_SHAPE[name], 10).state_dict()
    torch.manual_seed(3)
    b = build_model(name, NATURAL_SHAPE[name], 10).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", MODELS)
def test_different_seed_gives_different_weights(name):
    torch.manual_seed(3)
    a = build_model(name, NATURAL_SHAPE[name], 10)
    torch.manual_seed(4)
    b = build_model(name, NATURAL_SHAPE[name], 10)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(not torch.equal(sa[k], sb[k]) for k in prunable_names(a))


def test_init_zero_biases_and_unit_batchnorm():
    model = build_model("resnet8", (3, 32, 32), 10)
    assert torch.equal(model.fc.bias, torch.zeros(10))
    assert torch.equal(model.bn1.weight, torch.ones(16))
    assert torch.equal(model.bn1.bias, torch.zeros(16))


def test_init_is_kaiming_normal_fan_in():
    torch.manual_seed(0)
    weight = build_model("mlp", (1, 40), 10, widths=(4000,)).hidden[0].weight
    # std = sqrt(2 / fan_in) = sqrt(2 / 40); 160k draws pin it to well under 1%.
    assert abs(weight.std().item() / (2 / 40) ** 0.5 - 1) < 0.01


# ---------------------------------------------------------------- horizontal fusion


def make_members(case: str, device: str) -> list[nn.Module]:
    name, shape, widths = FUSION_CASES[case]
    members = []
    for seed in range(K):
        torch.manual_seed(seed)
        members.append(build_model(name, shape, 5, widths=widths).double().to(device))
    return members


def fused_forward(members: list[nn.Module], x: torch.Tensor):
    """Stack members' state, run them as one vmapped functional call; return out, state."""
    params, buffers = stack_module_state(members)
    base = copy.deepcopy(members[0]).to("meta")

    def call(p, b, xb):
        return functional_call(base, (p, b), (xb,))

    return vmap(call)(params, buffers, x), params, buffers


def member_inputs(case: str, device: str) -> torch.Tensor:
    _, shape, _ = FUSION_CASES[case]
    torch.manual_seed(100)
    return torch.randn(K, BATCH, *shape, dtype=torch.float64, device=device)


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("case", FUSION_CASES)
def test_fused_train_forward_matches_members_outputs_and_running_stats(case, device):
    members = make_members(case, device)
    x = member_inputs(case, device)
    out, _, buffers = fused_forward(members, x)  # stacks state before members update theirs
    for k, member in enumerate(members):
        close(out[k], member(x[k]))
        for name, buf in member.named_buffers():
            close(buffers[name][k], buf)
    # BatchNorm really moved the stacked stats (else comparing them would prove little).
    means = [v for n, v in buffers.items() if n.endswith("running_mean")]
    assert all(m.abs().sum() > 0 for m in means)


@pytest.mark.parametrize("case", FUSION_CASES)
def test_fused_eval_forward_matches_members(case):
    members = make_members(case, "cpu")
    x = member_inputs(case, "cpu")
    for member in members:
        member(x[0])  # one train step so running stats differ from their initial values
        member.eval()
    out, _, buffers = fused_forward(members, x)
    for k, member in enumerate(members):
        close(out[k], member(x[k]))
        for name, buf in member.named_buffers():
            close(buffers[name][k], buf)


@pytest.mark.parametrize("case", FUSION_CASES)
def test_fused_gradients_match_member_gradients(case):
    members = make_members(case, "cpu")
    x = member_inputs(case, "cpu")
    out, params, _ = fused_forward(members, x)
    out.sum().backward()
    for k, member in enumerate(members):
        member(x[k]).sum().backward()
        for name, p in member.named_parameters():
            close(params[name].grad[k], p.grad)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", ["vgg19", "resnet", "resnet21", "resnet2", "ResNet20", ""])
def test_unknown_model_name_is_rejected_with_valid_names(name):
    with pytest.raises(LprError) as err:
        build_model(name, (3, 32, 32), 10)
    message = str(err.value)
    assert f"model = {name!r}" in message
    assert all(valid in message for valid in MODELS)


def test_cnn1d_rejects_image_shape():
    with pytest.raises(LprError, match=r"in_shape = \(3, 32, 32\).*\(channels, length\)"):
        build_model("cnn1d", (3, 32, 32), 10)


def test_cnn1d_rejects_signal_too_short_for_its_convs():
    with pytest.raises(LprError, match=r"in_shape = \(1, 2\).*long enough"):
        build_model("cnn1d", (1, 2), 10)


def test_resnet_rejects_1d_signal():
    with pytest.raises(LprError, match=r"in_shape = \(1, 40\).*\(channels, height, width\)"):
        build_model("resnet20", (1, 40), 10)


def test_vgg_rejects_images_smaller_than_32():
    with pytest.raises(LprError, match=r"in_shape = \(3, 16, 16\).*>= 32"):
        build_model("vgg11", (3, 16, 16), 10)


def test_lenet5_rejects_sizes_other_than_28_and_32():
    with pytest.raises(LprError, match=r"in_shape = \(1, 30, 30\).*\(channels, 28, 28\)"):
        build_model("lenet5", (1, 30, 30), 10)


@pytest.mark.parametrize("shape", [(1, -40), (1, 0), (1.5, 40), "1x40", ()])
def test_non_positive_or_non_integer_in_shape_is_rejected(shape):
    with pytest.raises(LprError, match="in_shape"):
        build_model("mlp" if shape == () else "cnn1d", shape, 10)


@pytest.mark.parametrize(
    ("name", "widths"),
    [
        ("resnet20", (16, 32)),
        ("resnet20", (16, 32, 64, 128)),
        ("vgg11", (64, 128)),
        ("lenet5", (6, 16, 120)),
        ("mlp", (300, 0)),
        ("mlp", ()),
        ("cnn1d", (25, -1, 25)),
        ("mlp", "300"),
        ("mlp", (300.0, 100)),
    ],
)
def test_bad_widths_are_rejected(name, widths):
    with pytest.raises(LprError, match=r"widths = .*expected"):
        build_model(name, NATURAL_SHAPE[name], 10, widths=widths)


@pytest.mark.parametrize("n_classes", [0, -3, 2.0, True])
def test_bad_n_classes_is_rejected(n_classes):
    with pytest.raises(LprError, match="n_classes"):
        build_model("mlp", (1, 40), n_classes)
