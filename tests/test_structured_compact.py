"""Unit layers per model family and compaction: same outputs, fewer params and FLOPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lprcausal.compact import compact_model, count_flops, count_params
from lprcausal.errors import LprError
from lprcausal.models import build_model
from lprcausal.models.units import prunable_unit_layers, unit_layers
from lprcausal.pruning import expand_unit_masks


def _coupling(net):
    return [(u.weight, u.norm, u.consumer, u.group) for u in unit_layers(net)]


def test_mlp_units_are_the_hidden_layers():
    net = build_model("mlp", (1, 40), 10)
    assert _coupling(net) == [
        ("hidden.0.weight", None, "hidden.1", 1),
        ("hidden.1.weight", None, "fc", 1),
    ]


def test_lenet5_conv2_feeds_fc1_through_25_positions_per_channel():
    net = build_model("lenet5", (1, 28, 28), 10)
    assert _coupling(net) == [
        ("conv1.weight", None, "conv2", 1),
        ("conv2.weight", None, "fc1", 25),
        ("fc1.weight", None, "fc2", 1),
        ("fc2.weight", None, "fc", 1),
    ]


def test_resnet_prunes_only_the_inner_conv_of_each_block():
    net = build_model("resnet8", (3, 32, 32), 10)
    assert _coupling(net) == [
        (f"layer{s}.0.conv1.weight", f"layer{s}.0.bn1", f"layer{s}.0.conv2", 1) for s in (1, 2, 3)
    ]


def test_vgg_units_are_every_conv_with_its_batchnorm():
    net = build_model("vgg11", (3, 32, 32), 10, widths=(2, 2, 2, 2, 2))
    coupling = _coupling(net)
    assert len(coupling) == 8
    assert coupling[0] == ("features.0.conv.weight", "features.0.bn", "features.2.conv", 1)
    assert coupling[-1][2:] == ("fc", 1)


def test_a_model_without_a_coupling_rule_is_refused():
    with pytest.raises(LprError, match="structure = 'unit' is not defined for model Sequential"):
        unit_layers(nn.Sequential(nn.Linear(2, 2)))


def test_a_prunable_set_without_unit_layers_is_refused():
    net = build_model("mlp", (4,), 2, widths=(3,))
    with pytest.raises(LprError, match=r"no layer with prunable units.*\['hidden.0.weight'\]"):
        prunable_unit_layers(net, ["fc.weight"])


def _randomize(net: nn.Module, seed: int) -> None:
    """Random biases and BatchNorm parameters/statistics, so zeroing them matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            elif isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen))


def _random_units(net: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Remove about half the units of each layer at random, keeping at least one."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for layer in unit_layers(net):
        keep = torch.rand(layer.n_units, generator=gen) < 0.5
        keep[torch.randint(layer.n_units, (1,), generator=gen)] = True
        out[layer.weight] = keep
    return out


def _masked(net: nn.Module, units: dict[str, torch.Tensor]) -> nn.Module:
    """The model with every parameter the removed units own set to zero."""
    masks = expand_unit_masks(units, unit_layers(net))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name in masks:
                p.mul_(masks[name])
    return net


CASES = [
    ("mlp", (1, 40), (16, 12)),
    ("cnn1d", (1, 40), (6, 5, 4)),
    ("lenet5", (1, 28, 28), (4, 6, 10, 8)),
    ("resnet8", (3, 16, 16), (4, 6, 8)),
    ("vgg11", (3, 32, 32), (3, 4, 4, 5, 5)),
]


@pytest.mark.parametrize("name,in_shape,widths", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_compact_model_gives_the_masked_model_outputs(name, in_shape, widths, mode):
    torch.manual_seed(0)
    net = build_model(name, in_shape, 10, widths=widths).double()
    _randomize(net, 1)
    units = _random_units(net, 2)
    small = compact_model(net, units)
    masked = _masked(net, units)
    x = torch.randn(5, *in_shape, dtype=torch.float64)
    masked.train(mode == "train")
    small.train(mode == "train")
    torch.testing.assert_close(small(x), masked(x), rtol=1e-10, atol=1e-10)
    assert count_params(small) < count_params(net)


def test_compaction_leaves_the_original_model_unchanged():
    net = build_model("mlp", (4,), 2, widths=(3, 2))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    compact_model(
        net,
        {
            "hidden.0.weight": torch.tensor([False, True, True]),
            "hidden.1.weight": torch.tensor([True, False]),
        },
    )
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_param_and_flop_counts_of_a_hand_computed_mlp():
    net = build_model("mlp", (4,), 2, widths=(3, 2))
    small = compact_model(
        net,
        {
            "hidden.0.weight": torch.tensor([False, True, True]),
            "hidden.1.weight": torch.tensor([False, True]),
        },
    )
    # dense: 3x4+3, 2x3+2, 2x2+2 parameters; 4*3 + 3*2 + 2*2 = 22 multiply-adds
    assert (count_params(net), count_flops(net, (4,))) == (29, 44)
    # compact: 2x4+2, 1x2+1, 2x1+2; 4*2 + 2*1 + 1*2 = 12 multiply-adds
    assert (count_params(small), count_flops(small, (4,))) == (17, 24)


def test_flops_of_convolutions_count_every_output_position():
    net = build_model("cnn1d", (1, 12), 10, widths=(2, 3))  # lengths 12 -> 5 -> 3
    # conv 1->2 k5 at 5 positions, conv 2->3 k3 at 3 positions, fc 9 -> 10
    assert count_flops(net, (1, 12)) == 2 * (5 * 2 * 1 * 5 + 3 * 3 * 2 * 3 + 9 * 10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compaction_and_unit_masks_stay_on_the_cuda_device():
    from lprcausal.pruning import global_unit_masks

    net = build_model("resnet8", (3, 16, 16), 10, widths=(4, 6, 8)).cuda()
    weights = {u.weight: net.state_dict()[u.weight] for u in unit_layers(net)}
    units = global_unit_masks(weights, 0.5)
    assert all(m.device.type == "cuda" for m in units.values())
    small = compact_model(net, units).eval()
    x = torch.randn(2, 3, 16, 16, device="cuda")
    torch.testing.assert_close(small(x), _masked(net, units).eval()(x))


def test_compact_files_bad_paths_are_clear_errors(tmp_path):
    from lprcausal.compact import load_compact, save_compact

    net = build_model("mlp", (1, 40), 10, widths=(6, 4))
    units = {"hidden.0.weight": torch.tensor([True, False] * 3),
             "hidden.1.weight": torch.tensor([True, True, False, True])}
    build = {"name": "mlp", "in_shape": [1, 40], "n_classes": 10, "widths": [6, 4]}
    (tmp_path / "file").write_text("x")
    with pytest.raises(LprError, match=r"cannot write the compact model .*file"):
        save_compact(tmp_path / "file" / "small.safetensors", net, units, build)
    assert (tmp_path / "file").read_text() == "x"
    with pytest.raises(LprError, match=r"does not exist"):
        load_compact(tmp_path / "absent.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(LprError, match=r"not a readable safetensors file"):
        load_compact(tmp_path / "junk.safetensors")
    small = save_compact(tmp_path / "ok.safetensors", net, units, build)
    x = torch.randn(3, 1, 40)
    torch.testing.assert_close(load_compact(tmp_path / "ok.safetensors")(x), small.eval()(x))
    # a build without n_classes, and a header that is not JSON
    save_compact(tmp_path / "broken.safetensors", net, units,
                 {"name": "mlp", "in_shape": [1, 40], "widths": [6, 4]})
    from safetensors.torch import save_file

    save_file({"state/x": torch.zeros(1)}, str(tmp_path / "notjson.safetensors"),
              metadata={"build": "{name: mlp"})
    for broken in ("broken", "notjson"):
        with pytest.raises(LprError, match=r"'build' metadata that cannot be read"):
            load_compact(tmp_path / f"{broken}.safetensors")
