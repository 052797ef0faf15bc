"""Models given by import path: ``build(in_shape, n_classes, **kwargs) -> nn.Module``.

The factory is called with the per-sample input shape (channels first, as the data
gives it), the number of classes and the ``[model.kwargs]`` / ``--model-arg`` values,
under the run's seeded random generator, so its own initialization is reproducible.
It must return an ``nn.Module`` mapping ``(B, *in_shape)`` to ``(B, n_classes)``.

torchvision's classification models (``torchvision.models:resnet18``, ...) go through
the same door: they are called as ``factory(weights=None, num_classes=n_classes,
**kwargs)``. Pretrained weights are never downloaded: a ``weights`` argument is an
error.
"""

from __future__ import annotations

import torch
from torch import nn

from lprcausal.config import ModelConfig
from lprcausal.errors import LprError
from lprcausal.usercode import load

_NO_WEIGHTS = ("weights", "weights_backbone", "pretrained", "pretrained_backbone")


def build_user_model(model: ModelConfig, in_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Call the factory ``model.name`` names (identity checked against ``model.code``)."""
    factory = load(model.name, model.code, "model")
    kwargs = dict(model.kwargs.as_dict())
    if model.widths is not None:
        raise LprError(
            f"widths = {list(model.widths)!r} is given with model = {model.name!r}: widths "
            "belong to the built-in models; expected the factory's own keyword arguments "
            "([model.kwargs] or --model-arg) instead."
        )
    torchvision = getattr(factory, "__module__", "").startswith("torchvision.models")
    if torchvision:
        given = [k for k in _NO_WEIGHTS if k in kwargs]
        if given:
            raise LprError(
                f"{given[0]} = {kwargs[given[0]]!r} is not supported for model "
                f"{model.name!r}: lprcausal never downloads weights and every run starts "
                "from its own seeded initialization; expected no weights argument "
                "(weights = None)."
            )
        args: tuple = ()
        kwargs = {"weights": None, "num_classes": n_classes, **kwargs}
    else:
        args = (tuple(in_shape), n_classes)
    try:
        net = factory(*args, **kwargs)
    except LprError:
        raise
    except Exception as exc:
        raise LprError(
            f"model = {model.name!r}: the factory raised {type(exc).__name__}: {exc}. "
            f"It was called as {_call_text(args, kwargs)}."
        ) from None
    if not isinstance(net, nn.Module):
        raise LprError(
            f"model = {model.name!r}: the factory returned a {type(net).__name__}, not a "
            "torch.nn.Module: expected build(in_shape, n_classes, **kwargs) to return the "
            "network."
        )
    return net


def _call_text(args: tuple, kwargs: dict) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"factory({', '.join(parts)})"


def check_output(net: nn.Module, model: str, in_shape: tuple[int, ...], n_classes: int) -> None:
    """Run a batch of two zero samples (eval mode, no grad) and check the logits' shape."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(2, *in_shape))
    except Exception as exc:
        raise LprError(
            f"model = {model!r} fails on a batch of shape {(2, *in_shape)} (the data's "
            f"per-sample shape {tuple(in_shape)}): {type(exc).__name__}: {exc}"
        ) from None
    finally:
        net.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, n_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise LprError(
            f"model = {model!r} maps a batch of shape {(2, *in_shape)} to {got}: expected "
            f"logits of shape (2, {n_classes}), i.e. (batch, n_classes)."
        )
