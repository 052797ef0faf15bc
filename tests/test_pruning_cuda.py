"""On CUDA, every pruning function returns masks on the weights' device, equal to CPU's."""

from __future__ import annotations

import pytest
import torch

from lprcausal.pruning import (
    allocate_ratios,
    apply_masks,
    global_magnitude_masks,
    layerwise_magnitude_masks,
    random_masks,
    shuffle_masks,
    transplant_masks,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def cpu_params(seed: int = 0) -> dict[str, torch.Tensor]:
    # Integer values in -3..3 give many ties, so tie-breaking must agree across devices.
    g = torch.Generator().manual_seed(seed)
    shapes = {"conv.weight": (16, 8, 3, 3), "fc1.weight": (300, 200), "fc2.weight": (10, 300)}
    return {n: torch.randint(-3, 4, s, generator=g).float() for n, s in shapes.items()}


def to_cuda(tensors):
    return {n: t.cuda() for n, t in tensors.items()}


def assert_same_on_cuda(cuda_masks, cpu_masks):
    assert list(cuda_masks) == list(cpu_masks)
    for name, m in cuda_masks.items():
        assert m.is_cuda, name
        assert torch.equal(m.cpu(), cpu_masks[name]), name


@pytest.mark.parametrize("sparsity", [0.2, 0.9])
def test_global_magnitude_on_cuda_equals_cpu(sparsity):
    params = cpu_params()
    prior = global_magnitude_masks(cpu_params(1), 0.1)
    assert_same_on_cuda(
        global_magnitude_masks(to_cuda(params), sparsity, prior=to_cuda(prior)),
        global_magnitude_masks(params, sparsity, prior=prior),
    )


def test_layerwise_and_transplant_on_cuda_equal_cpu():
    params, source = cpu_params(), global_magnitude_masks(cpu_params(1), 0.8)
    ratios = allocate_ratios("erk", params, 0.8)
    assert_same_on_cuda(
        layerwise_magnitude_masks(to_cuda(params), ratios),
        layerwise_magnitude_masks(params, ratios),
    )
    assert_same_on_cuda(
        transplant_masks(to_cuda(source), to_cuda(params)), transplant_masks(source, params)
    )


def test_lamp_allocation_on_cuda_equals_cpu():
    params = cpu_params()
    assert allocate_ratios("lamp", to_cuda(params), 0.7) == allocate_ratios("lamp", params, 0.7)


def test_controls_on_cuda_equal_cpu():
    params = cpu_params()
    masks = global_magnitude_masks(params, 0.5)
    assert_same_on_cuda(shuffle_masks(to_cuda(masks), 3), shuffle_masks(masks, 3))
    ratios = {n: 0.4 for n in params}
    assert_same_on_cuda(random_masks(to_cuda(params), ratios, 3), random_masks(params, ratios, 3))


def test_apply_masks_on_cuda_stays_on_cuda():
    params = to_cuda(cpu_params())
    out = apply_masks(params, global_magnitude_masks(params, 0.5))
    assert all(w.is_cuda for w in out.values())
