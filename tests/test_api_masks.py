"""The public API on a user's nn.Module: masks, masks held through optimizers, files, torch prune."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import lprcausal as lpc
from lprcausal.errors import LprError
from lprcausal.pruning import global_magnitude_masks as pure_global


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: one thread is fastest, and immune to the load of a shared host.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(6 * 2 * 2, 10),
    )


def batches(n: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 1, 6, 6, generator=g), torch.randint(0, 10, (8,), generator=g))
            for _ in range(n)]


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05),
    "sgd_momentum_wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
    "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
}


def test_prunable_is_the_cli_rule_on_builtin_models():
    from lprcausal.models import build_model, prunable_names

    for name, shape in (("mlp", (1, 40)), ("resnet8", (3, 32, 32)), ("lenet5", (1, 28, 28))):
        net = build_model(name, shape, 10)
        assert list(lpc.prunable(net)) == prunable_names(net)


def test_prunable_covers_attention_and_transposed_convs_and_globs():
    net = nn.ModuleDict({"att": nn.MultiheadAttention(8, 2), "up": nn.ConvTranspose1d(2, 3, 2),
                         "emb": nn.Embedding(5, 8), "norm": nn.LayerNorm(8)})
    assert list(lpc.prunable(net)) == ["att.in_proj_weight", "att.out_proj.weight", "up.weight"]
    assert list(lpc.prunable(net, exclude=["att.*"])) == ["up.weight"]
    assert list(lpc.prunable(net, include=["emb.*"])) == ["emb.weight"]
    with pytest.raises(LprError, match="matches no parameter"):
        lpc.prunable(net, include=["nothing*"])


def test_module_and_mapping_give_the_pure_functions_masks():
    net = small_cnn()
    weights = {n: p.detach() for n, p in lpc.prunable(net).items()}
    expected = pure_global(weights, 0.8)
    for arg in (net, weights):
        got = lpc.global_magnitude_masks(arg, 0.8)
        assert list(got) == list(expected)
        assert all(torch.equal(got[n], expected[n]) for n in got)


def test_controls_keep_counts_exact():
    net = small_cnn()
    m = lpc.global_magnitude_masks(net, 0.75)
    n_total = sum(x.numel() for x in m.values())
    assert lpc.layerwise_ratios(lpc.shuffle(m, 3)) == lpc.layerwise_ratios(m)
    assert lpc.layerwise_ratios(lpc.random(m, 3)) == lpc.layerwise_ratios(m)
    for control in (lpc.uniform, lpc.erk, lpc.lamp):
        masks = control(net, 0.75)
        removed = sum(int((~x).sum()) for x in masks.values())
        assert removed == round(0.75 * n_total)
    other = lpc.uniform(net, 0.75)
    assert lpc.layerwise_ratios(lpc.interpolate(m, other, 0.0, net)) == lpc.layerwise_ratios(m)
    assert lpc.layerwise_ratios(lpc.interpolate(m, other, 1.0, net)) == lpc.layerwise_ratios(other)
    back = lpc.transplant(m, net)
    assert all(torch.equal(back[n], m[n]) for n in m)


def _train(net, opt, data, mask_fn=None, clip=None, handle_grads=None):
    for x, y in data:
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        if handle_grads is not None:
            handle_grads()
        if clip is not None:
            nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        if mask_fn is not None:
            mask_fn()


@pytest.mark.parametrize(("opt_name", "clip"), [(name, None) for name in sorted(OPTIMIZERS)]
                         + [("sgd_nesterov", 0.5), ("adamw", 0.5)])
def test_apply_masks_matches_a_loop_that_masks_after_every_step(opt_name, clip):
    data = batches(200)
    masks = lpc.global_magnitude_masks(small_cnn(), 0.8)
    ours = small_cnn()
    handle = lpc.apply_masks(ours, masks)
    _train(ours, OPTIMIZERS[opt_name](ours.parameters()), data, clip=clip)
    handle.remove()

    ref = small_cnn()
    params = dict(ref.named_parameters())

    @torch.no_grad()
    def zero_weights():
        for n, m in masks.items():
            params[n].mul_(m)

    @torch.no_grad()
    def zero_grads():
        # Clipping measures the live network only: pruned gradients are no part of it.
        for n, m in masks.items():
            params[n].grad.mul_(m)

    zero_weights()
    _train(ref, OPTIMIZERS[opt_name](ref.parameters()), data, zero_weights, clip,
           zero_grads if clip else None)
    got = dict(ours.named_parameters())
    for n, p in got.items():
        if n in masks:
            assert int((p[~masks[n]] != 0).sum()) == 0, n
        torch.testing.assert_close(p, params[n], rtol=0, atol=1e-6)


def test_apply_masks_with_gradscaler_and_autocast():
    data = batches(30)
    net = small_cnn()
    masks = lpc.global_magnitude_masks(net, 0.6)
    handle = lpc.apply_masks(net, masks)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    for x, y in data:
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(net(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    for n, p in net.named_parameters():
        if n in masks:
            assert int((p[~masks[n]] != 0).sum()) == 0
    handle.remove()


def test_apply_masks_on_a_compiled_model():
    net = small_cnn()
    masks = lpc.global_magnitude_masks(net, 0.7)
    compiled = torch.compile(net, backend="aot_eager")
    handle = lpc.apply_masks(compiled, masks)
    opt = torch.optim.Adam(compiled.parameters(), lr=1e-2)
    for x, y in batches(5):
        opt.zero_grad()
        nn.functional.cross_entropy(compiled(x), y).backward()
        opt.step()
    for n, p in net.named_parameters():
        if n in masks:
            assert int((p[~masks[n]] != 0).sum()) == 0
            assert int((p.grad[~masks[n]] != 0).sum()) == 0
    handle.remove()


def test_remove_stops_enforcing():
    net = small_cnn()
    masks = lpc.global_magnitude_masks(net, 0.7)
    with lpc.apply_masks(net, masks) as handle:
        assert handle.active
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = batches(1)[0]
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
    assert int((net[0].weight[~masks["0.weight"]] != 0).sum()) > 0


def test_apply_masks_bad_masks_are_clear_errors():
    net = small_cnn()
    with pytest.raises(LprError, match="not parameters of the model"):
        lpc.apply_masks(net, {"9.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(LprError, match="expected a bool tensor"):
        lpc.apply_masks(net, {"0.weight": torch.ones(4, 1, 3, 3)})
    with pytest.raises(LprError, match="shape"):
        lpc.apply_masks(net, {"0.weight": torch.ones(4, 1, 3, dtype=torch.bool)})
    with pytest.raises(LprError, match="sparsity"):
        lpc.global_magnitude_masks(net, 1.0)


def test_mask_file_round_trip_with_metadata(tmp_path):
    net = small_cnn()
    masks = lpc.global_magnitude_masks(net, 0.8)
    path = lpc.save_masks(tmp_path / "m.safetensors", masks, method="oneshot", source_run="abc")
    back = lpc.load_masks(path, net)
    assert list(back) == list(masks)
    assert all(torch.equal(back[n], masks[n]) for n in masks)
    meta = lpc.mask_metadata(path)
    assert meta["format"] == "lprcausal.masks"
    assert meta["method"] == "oneshot" and meta["source_run"] == "abc"
    assert meta["sparsity"] == lpc.overall_sparsity(masks)
    assert meta["names"] == list(masks)
    assert meta["shapes"] == [list(m.shape) for m in masks.values()]
    assert meta["lprcausal_version"] == lpc.__version__


def test_mask_file_bad_inputs(tmp_path):
    from safetensors.torch import save_file

    net = small_cnn()
    masks = lpc.global_magnitude_masks(net, 0.8)
    path = lpc.save_masks(tmp_path / "m.safetensors", masks)
    other = nn.Sequential(nn.Conv2d(1, 5, 3))
    with pytest.raises(LprError, match=r"names not in the model \['2.weight', '5.weight'\]"
                                       r".*shape mismatches.*0.weight \[4, 1, 3, 3\] vs \[5, 1, 3, 3\]"):
        lpc.load_masks(path, other)
    save_file({"0.weight": torch.ones(2)}, str(tmp_path / "float.safetensors"))
    with pytest.raises(LprError, match="dtype torch.float32: expected torch.bool"):
        lpc.load_masks(tmp_path / "float.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(LprError, match="not a readable safetensors file"):
        lpc.load_masks(tmp_path / "junk.safetensors")
    with pytest.raises(LprError, match="does not exist"):
        lpc.load_masks(tmp_path / "absent.safetensors")


def test_torch_prune_round_trip_is_exact_and_remove_keeps_zeros():
    net = small_cnn()
    masks = lpc.global_magnitude_masks(net, 0.8)
    lpc.to_torch_prune(net, masks)
    back = lpc.from_torch_prune(net)
    assert list(back) == list(masks)
    assert all(torch.equal(back[n], masks[n]) for n in masks)
    for name in masks:
        module_name, attr = name.rsplit(".", 1)
        prune.remove(net.get_submodule(module_name), attr)
    params = dict(net.named_parameters())
    for n, m in masks.items():
        assert torch.equal(params[n] != 0, m)


def test_from_torch_prune_reads_torch_global_unstructured():
    net = small_cnn()
    targets = [(net[0], "weight"), (net[2], "weight"), (net[5], "weight")]
    ours = lpc.global_magnitude_masks(net, 0.5)
    prune.global_unstructured(targets, prune.L1Unstructured, amount=0.5)
    theirs = lpc.from_torch_prune(net)
    # random normal weights have no ties, so both rank the same weights lowest
    assert all(torch.equal(theirs[n], ours[n]) for n in ours)


def test_transplant_is_the_public_function_with_every_command_module_imported():
    import lprcausal.cli  # noqa: F401  (imports every command, `lprcausal transplant` too)

    net = small_cnn()
    m = lpc.global_magnitude_masks(net, 0.6)
    got = lpc.transplant(m, small_cnn(seed=4))
    assert lpc.layerwise_ratios(got) == lpc.layerwise_ratios(m)


def test_import_lprcausal_stays_light():
    import subprocess
    import sys

    code = "import sys, lprcausal; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_load_masks_reads_torch_prune_files(tmp_path):
    """A state_dict of a model pruned with torch.nn.utils.prune (``<name>_orig`` weights,
    float ``<name>_mask`` buffers, biases) and a file of only its ``_mask`` buffers both
    load as the masks ``from_torch_prune`` reads, keyed by the parameters' own names."""
    from safetensors.torch import save_file

    net = small_cnn()
    masks = lpc.global_magnitude_masks(net, 0.8)
    pruned = lpc.to_torch_prune(small_cnn(), masks)
    state = {k: v.contiguous() for k, v in pruned.state_dict().items()}
    assert any(k.endswith("_orig") for k in state)
    state["attn_mask"] = torch.randn(3, 3)  # a model's own buffer, not a pruning mask
    save_file(state, str(tmp_path / "state.safetensors"))
    only = {k: v for k, v in state.items() if k.endswith("weight_mask")}
    assert all(v.dtype == torch.float32 for v in only.values())
    save_file(only, str(tmp_path / "only.safetensors"))
    for name in ("state", "only"):
        back = lpc.load_masks(tmp_path / f"{name}.safetensors", net)
        assert sorted(back) == sorted(masks)
        assert all(back[n].dtype == torch.bool and torch.equal(back[n], masks[n]) for n in masks)
    bad = dict(only, **{"0.weight_mask": torch.full((4, 1, 3, 3), 0.5)})
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(LprError, match=r"'0.weight_mask'.*values other than 0 and 1"):
        lpc.load_masks(tmp_path / "bad.safetensors")


def test_load_masks_with_a_malformed_names_header_uses_file_order(tmp_path):
    from safetensors.torch import save_file

    masks = {"b": torch.tensor([True, False]), "a": torch.tensor([False])}
    for i, names in enumerate(["not json", '[1, "a"]', '{"a": 1}', '["a", "a"]']):
        save_file(masks, str(tmp_path / f"{i}.safetensors"), metadata={"names": names})
        back = lpc.load_masks(tmp_path / f"{i}.safetensors")
        assert sorted(back) == ["a", "b"]
        assert all(torch.equal(back[n], masks[n]) for n in masks)


def test_save_masks_accepts_masks_that_share_memory(tmp_path):
    shared = torch.tensor([True, False, True])
    path = lpc.save_masks(tmp_path / "m.safetensors", {"a": shared, "b": shared})
    back = lpc.load_masks(path)
    assert list(back) == ["a", "b"] and all(torch.equal(back[n], shared) for n in back)


def test_save_masks_to_a_path_it_cannot_write_is_a_clear_error(tmp_path):
    masks = {"a": torch.tensor([True, False])}
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path, tmp_path / "file" / "m.safetensors"):
        with pytest.raises(LprError, match=r"cannot write the masks file .*expected a file path"):
            lpc.save_masks(bad, masks)
    assert (tmp_path / "file").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
