"""Model names -> constructors.

``build_model(name, in_shape, n_classes)`` validates its arguments, builds the model
and initializes it deterministically (see :mod:`lprcausal.models.init`). Every model
is safe for horizontal fusion with ``torch.func`` (stacked state + ``vmap`` over
``functional_call``): no data-dependent control flow, no in-place ops on inputs, and
BatchNorm with default momentum/eps tracking running stats.
"""

from __future__ import annotations

from torch import nn

from lprcausal.config import ModelConfig
from lprcausal.errors import LprError, bad_value
from lprcausal.models import cnn1d, lenet5, mlp, resnet, vgg
from lprcausal.models.checks import n_classes_of
from lprcausal.models.init import init_weights

MODELS: tuple[str, ...] = (
    "mlp",
    "cnn1d",
    "lenet5",
    "resnet20",
    "resnet32",
    "resnet56",
    "vgg11",
    "vgg16",
)


def build_model(
    name: str,
    in_shape: tuple[int, ...],
    n_classes: int,
    *,
    widths: tuple[int, ...] | None = None,
) -> nn.Module:
    """Build and initialize model ``name`` for per-sample inputs of shape ``in_shape``.

    name: one of ``MODELS``, or any ``resnet<6n+2>`` (n >= 1), e.g. ``resnet8``.
    in_shape: per-sample shape, channels first: (1, 40) MNIST-1D, (1, 28, 28) MNIST,
        (3, 32, 32) CIFAR. The model maps (B, *in_shape) to logits (B, n_classes).
    widths: family-specific layer sizes overriding the defaults (hidden sizes for
        mlp, conv channels for cnn1d, (conv1, conv2, fc1, fc2) for lenet5, the 3
        stage widths for resnet, the 5 stage widths for vgg).
    Raises LprError for an unknown name, an input shape the family cannot take, or
    bad widths / n_classes.
    """
    n_classes = n_classes_of(n_classes)
    if name == "mlp":
        model = mlp.build(in_shape, n_classes, widths)
    elif name == "cnn1d":
        model = cnn1d.build(in_shape, n_classes, widths)
    elif name == "lenet5":
        model = lenet5.build(in_shape, n_classes, widths)
    elif name in vgg.CONVS_PER_STAGE:
        model = vgg.build(name, in_shape, n_classes, widths)
    elif isinstance(name, str) and resnet.blocks_per_stage(name) is not None:
        model = resnet.build(name, in_shape, n_classes, widths)
    else:
        expected = (
            f"one of {', '.join(MODELS)}, resnet<D> with D = 6n+2 and n >= 1, or your own "
            "model by import path ('package.module:build' or 'file.py:build')"
        )
        raise bad_value("model", name, expected)
    return init_weights(model)


def build_network(model: ModelConfig, in_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The network a :class:`ModelConfig` describes: a built-in model (initialized by
    :func:`build_model`) or a user factory by import path (its own initialization; see
    :mod:`lprcausal.models.user`). Draws from torch's global generator."""
    if model.is_user:
        from lprcausal.models.user import build_user_model

        return build_user_model(model, tuple(in_shape), n_classes_of(n_classes))
    if model.kwargs:
        raise LprError(
            f"kwargs = {model.kwargs.as_dict()!r} are given with the built-in model "
            f"{model.name!r}: keyword arguments go to models given by import path; expected "
            "widths for a built-in model."
        )
    return build_model(model.name, tuple(in_shape), n_classes, widths=model.widths)
