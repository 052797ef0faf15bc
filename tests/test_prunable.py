"""The prunable set of any network: default rule, include/exclude globs, clear errors,
and global magnitude masks equal to torch.nn.utils.prune.global_unstructured."""

from __future__ import annotations

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

from lprcausal.errors import LprError
from lprcausal.models import prunable_names, prunable_parameters
from lprcausal.pruning import global_magnitude_masks


class Zoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 4)
        self.c1 = nn.Conv1d(1, 2, 3)
        self.c2 = nn.Conv2d(1, 2, 3)
        self.c3 = nn.Conv3d(1, 2, 3, bias=False)
        self.t1 = nn.ConvTranspose1d(2, 1, 3)
        self.t2 = nn.ConvTranspose2d(2, 1, 3)
        self.t3 = nn.ConvTranspose3d(2, 1, 3)
        self.bn = nn.BatchNorm1d(2)
        self.ln = nn.LayerNorm(4)
        self.attn = nn.MultiheadAttention(4, 2)
        self.cross = nn.MultiheadAttention(4, 2, kdim=3, vdim=3)
        self.fc = nn.Linear(4, 3)


def test_default_rule_takes_linear_conv_transposed_and_attention_weights_only():
    assert prunable_names(Zoo()) == [
        "c1.weight", "c2.weight", "c3.weight", "t1.weight", "t2.weight", "t3.weight",
        "attn.in_proj_weight", "attn.out_proj.weight",
        "cross.q_proj_weight", "cross.k_proj_weight", "cross.v_proj_weight",
        "cross.out_proj.weight", "fc.weight",
    ]


def test_include_replaces_and_exclude_shrinks_the_set():
    net = Zoo()
    assert list(prunable_parameters(net, include=["emb.*", "fc.*"])) == [
        "emb.weight", "fc.weight", "fc.bias"]
    assert list(prunable_parameters(net, exclude=["c*", "t?.weight", "*attn*"])) == [
        "fc.weight"]
    params = prunable_parameters(net, include=["fc.weight"])
    assert params["fc.weight"] is net.fc.weight


def test_glob_matching_nothing_lists_the_parameter_names():
    with pytest.raises(LprError, match=r"include = 'head\.\*' matches no parameter of the model") as info:
        prunable_parameters(Zoo(), include=["head.*"])
    assert "fc.weight (3, 4)" in str(info.value) and "emb.weight (5, 4)" in str(info.value)
    with pytest.raises(LprError, match=r"exclude = 'bn\.weight' matches no parameter in the prunable"):
        prunable_parameters(Zoo(), exclude=["bn.weight"])


def test_model_without_prunable_weight_is_an_error_listing_its_parameters():
    net = nn.Sequential(nn.Embedding(3, 2), nn.LayerNorm(2))
    with pytest.raises(LprError, match="no parameter is prunable by default") as info:
        prunable_parameters(net)
    assert "0.weight (3, 2), 1.weight (2,), 1.bias (2,)" in str(info.value)
    with pytest.raises(LprError, match="leave no prunable parameter"):
        prunable_parameters(Zoo(), include=["fc.weight"], exclude=["fc.*"])


def test_global_masks_equal_torch_global_unstructured_on_tie_free_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6, 7),
                        nn.MultiheadAttention(7, 1), nn.Linear(7, 3))
    with torch.no_grad():  # distinct magnitudes: no ties, so the two rankings agree
        params = list(prunable_parameters(net).items())
        total = sum(p.numel() for _, p in params)
        values = torch.randperm(total).double().add(1).div(total).float()
        signs = torch.randint(0, 2, (total,)) * 2 - 1
        offset = 0
        for _, p in params:
            p.copy_((values[offset:offset + p.numel()] * signs[offset:offset + p.numel()])
                    .view_as(p))
            offset += p.numel()
    names = [n for n, _ in params]
    assert names == ["0.weight", "2.weight", "3.in_proj_weight", "3.out_proj.weight",
                     "4.weight"]
    ours = global_magnitude_masks({n: p.detach().clone() for n, p in params}, 0.7)
    modules = dict(net.named_modules())
    targets = [(modules[n.rpartition(".")[0]], n.rpartition(".")[2]) for n in names]
    tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=0.7)
    for (module, attr), name in zip(targets, names, strict=True):
        theirs = getattr(module, f"{attr}_mask").bool()
        assert torch.equal(ours[name], theirs), name
    assert sum(int((~m).sum()) for m in ours.values()) == round(0.7 * total)
