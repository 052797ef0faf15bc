"""Compaction: a structurally pruned model rebuilt as a physically smaller dense model.

Removed units are deleted instead of zeroed: each producing conv / linear loses output
channels (weight rows, bias entries), its BatchNorm loses the same entries (weight,
bias, running statistics), and the consumer loses the matching input channels /
features (see :mod:`lprcausal.models.units`). Given unit masks, the compact model
computes exactly what the masked model computes (removed units output 0 there and
nothing reads them), with fewer parameters and FLOPs.

FLOPs are counted as 2 x the multiply-accumulates of the conv and linear layers for
one sample (biases, normalization, activations and pooling are not counted).

:func:`save_compact` / :func:`load_compact` write and read a compact model as one
safetensors file (no code runs on load).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lprcausal.errors import LprError
from lprcausal.models.units import UnitLayer, unit_layers
from lprcausal.pruning.structured import check_unit_masks

_CONV = (nn.Conv1d, nn.Conv2d)


def _kept_inputs(keep: torch.Tensor, group: int) -> torch.Tensor:
    """Input indices of the consumer that read kept units (``group`` per unit)."""
    units = torch.nonzero(keep.cpu()).reshape(-1)
    return (units[:, None] * group + torch.arange(group)[None, :]).reshape(-1)


def _shrink(
    module: nn.Module, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None
) -> nn.Module:
    """A new module like ``module`` keeping only outputs ``out_idx`` and inputs ``in_idx``
    (None = all), with the kept parameters and buffers copied."""
    w = module.weight
    kw = {"device": w.device, "dtype": w.dtype}
    if isinstance(module, _BatchNorm):
        n = len(out_idx)
        new = type(module)(
            n,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
            **kw,
        )
        tensors = dict(module.named_parameters(recurse=False))
        tensors.update(module.named_buffers(recurse=False))
        with torch.no_grad():
            for name, t in tensors.items():
                target = getattr(new, name)
                if t.dim() == 0:  # num_batches_tracked
                    target.copy_(t)
                else:
                    target.copy_(t[out_idx.to(t.device)])
        return new.train(module.training)
    out_idx = torch.arange(w.shape[0]) if out_idx is None else out_idx
    in_idx = torch.arange(w.shape[1]) if in_idx is None else in_idx
    if isinstance(module, nn.Linear):
        new = nn.Linear(len(in_idx), len(out_idx), bias=module.bias is not None, **kw)
    elif isinstance(module, _CONV):
        if module.groups != 1:
            raise LprError(
                f"Compaction supports ungrouped convolutions only; this model has one with "
                f"groups = {module.groups}: expected a model from lprcausal.models."
            )
        new = type(module)(
            len(in_idx),
            len(out_idx),
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            **kw,
        )
    else:
        raise LprError(
            f"Compaction does not know how to shrink a {type(module).__name__} layer: expected "
            "Linear or Conv layers, as in the models of lprcausal.models."
        )
    with torch.no_grad():
        new.weight.copy_(w[out_idx.to(w.device)][:, in_idx.to(w.device)])
        if module.bias is not None:
            new.bias.copy_(module.bias[out_idx.to(w.device)])
    return new.train(module.training)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def compact_model(
    model: nn.Module,
    unit_masks: Mapping[str, torch.Tensor],
    layers: Sequence[UnitLayer] | None = None,
) -> nn.Module:
    """A copy of ``model`` with the removed units of ``unit_masks`` physically deleted.

    ``unit_masks`` maps unit-layer weight names to 1-D bool tensors (True = kept);
    ``layers`` defaults to the model family's unit layers named in ``unit_masks``.
    ``model`` is not modified; the copy keeps its device, dtype and train/eval mode.
    """
    if layers is None:
        layers = [layer for layer in unit_layers(model) if layer.weight in unit_masks]
    check_unit_masks(unit_masks, {layer.weight: layer.n_units for layer in layers})
    out_idx: dict[str, torch.Tensor] = {}
    in_idx: dict[str, torch.Tensor] = {}
    for layer in layers:
        keep = unit_masks[layer.weight]
        out_idx[layer.module] = torch.nonzero(keep.cpu()).reshape(-1)
        if layer.norm is not None:
            out_idx[layer.norm] = out_idx[layer.module]
        in_idx[layer.consumer] = _kept_inputs(keep, layer.group)
    compact = copy.deepcopy(model)
    for name in dict.fromkeys([*out_idx, *in_idx]):
        module = compact.get_submodule(name)
        _replace(compact, name, _shrink(module, out_idx.get(name), in_idx.get(name)))
    return compact


def count_params(model: nn.Module) -> int:
    """Number of parameters (weights, biases, normalization parameters) of ``model``."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, in_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass of one sample: 2 x conv/linear multiply-accumulates.

    Runs the model once on a zero input of shape ``(1, *in_shape)`` on its device, in
    eval mode (its mode is restored), to read each layer's output size.
    """
    macs = 0

    def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        per_output = module.weight[0].numel() if isinstance(module, _CONV) else module.in_features
        macs += output.numel() * per_output

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (*_CONV, nn.Linear))
    ]
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *in_shape), device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return 2 * macs


def compaction_summary(
    model: nn.Module,
    unit_masks: Mapping[str, torch.Tensor],
    in_shape: Sequence[int],
    layers: Sequence[UnitLayer] | None = None,
) -> dict[str, int | float]:
    """Parameters and FLOPs of ``model`` before and after :func:`compact_model`, with the
    fraction each keeps."""
    small = compact_model(model, unit_masks, layers)
    p0, p1 = count_params(model), count_params(small)
    f0, f1 = count_flops(model, in_shape), count_flops(small, in_shape)
    return {
        "params_dense": p0,
        "params_compact": p1,
        "params_kept": p1 / p0 if p0 else math.nan,
        "flops_dense": f0,
        "flops_compact": f1,
        "flops_kept": f1 / f0 if f0 else math.nan,
    }


def save_compact(
    path: str | Path,
    model: nn.Module,
    unit_masks: Mapping[str, torch.Tensor],
    build: Mapping[str, Any],
    layers: Sequence[UnitLayer] | None = None,
) -> nn.Module:
    """Compact ``model`` and write it to a safetensors file; return the compact model.

    The file holds the compact ``state_dict`` (keys ``state/<name>``), the unit masks
    (``units/<layer weight name>``, which fix the smaller architecture) and, as JSON
    metadata, ``build`` = the :func:`~lprcausal.models.build_model` arguments of the
    full model (``name``, ``in_shape``, ``n_classes``, ``widths``), so
    :func:`load_compact` can rebuild it without this package's run store.
    """
    small = compact_model(model, unit_masks, layers)
    tensors = {f"state/{k}": v.detach().cpu().contiguous() for k, v in small.state_dict().items()}
    tensors.update({f"units/{k}": v.detach().cpu().contiguous() for k, v in unit_masks.items()})
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata={"build": json.dumps(dict(build))})
        os.replace(tmp, out)  # atomic: a reader never sees half a file
    except OSError as exc:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise LprError(
            f"cannot write the compact model to {str(out)!r} ({exc.strerror or exc}): expected "
            "a file path in a folder that exists or can be created and is writable."
        ) from None
    return small


def load_compact(path: str | Path) -> nn.Module:
    """The compact model written by :func:`save_compact` (on the CPU, in eval mode)."""
    from lprcausal.models import build_model

    if not Path(path).is_file():
        raise LprError(f"compact model file {str(path)!r} does not exist: expected a "
                       "safetensors file written by `lprcausal lpr --export-compact`.")
    try:
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise LprError(
            f"compact model file {str(path)!r} is not a readable safetensors file ({exc}): "
            "expected a file written by `lprcausal lpr --export-compact`."
        ) from None
    if "build" not in meta:
        raise LprError(
            f"The file {str(path)!r} has no 'build' metadata: expected a compact model "
            "written by `lprcausal lpr --export-compact`."
        )
    try:
        b = json.loads(meta["build"])
        widths = tuple(b["widths"]) if b.get("widths") is not None else None
        name, in_shape, n_classes = b["name"], tuple(b["in_shape"]), b["n_classes"]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LprError(
            f"The file {str(path)!r} has 'build' metadata that cannot be read ({exc!r}): "
            "expected the JSON object of name, in_shape, n_classes and widths that "
            "`lprcausal lpr --export-compact` writes."
        ) from None
    full = build_model(name, in_shape, n_classes, widths=widths)
    units = {k[len("units/") :]: v for k, v in tensors.items() if k.startswith("units/")}
    small = compact_model(full, units)
    small.load_state_dict(
        {k[len("state/") :]: v for k, v in tensors.items() if k.startswith("state/")}
    )
    return small.eval()
