"""The built-in models as import-path factories: ``lprcausal.models.factories:mlp``, ...

Each is ``build(in_shape, n_classes, widths=None)`` and builds exactly what the
built-in name does (same modules, same initialization), so a run of
``--model lprcausal.models.factories:mlp`` trains the same network as ``--model mlp``
through the user-model door (the run ids differ: one names code by import path).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lprcausal.models.registry import build_model


def _factory(name: str):
    def build(
        in_shape: tuple[int, ...], n_classes: int, widths: Sequence[int] | None = None
    ) -> nn.Module:
        return build_model(name, tuple(in_shape), n_classes,
                           widths=None if widths is None else tuple(widths))

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"The built-in model {name!r} (see lprcausal.models.build_model)."
    return build


mlp = _factory("mlp")
cnn1d = _factory("cnn1d")
lenet5 = _factory("lenet5")
resnet20 = _factory("resnet20")
resnet32 = _factory("resnet32")
resnet56 = _factory("resnet56")
vgg11 = _factory("vgg11")
vgg16 = _factory("vgg16")
