"""Units for structured pruning: which layers' outputs can be removed, and what each owns.

A *unit* is one output channel of a conv layer or one output neuron of a linear layer.
Removing unit ``c`` of a layer removes everything that only exists for it:

- row ``c`` of the layer's weight (dim 0) and entry ``c`` of its bias;
- entry ``c`` of the BatchNorm that normalizes the layer's output (weight and bias;
  its running statistics too when the model is compacted);
- the inputs of the *consumer* (the next conv / linear layer) that read unit ``c``:
  input channel / feature ``c`` (dim 1), or, when the consumer is a linear layer on a
  flattened ``(C, *spatial)`` map, the ``group = prod(spatial)`` consecutive features
  ``c * group .. (c + 1) * group - 1`` (flattening is channel-major).

With those zeroed, the unit's output is exactly 0 before and after its ReLU / pooling
and nothing downstream reads it, so the masked network computes what the physically
smaller one does (:mod:`lprcausal.compact`). The classifier ``fc`` is never a unit
layer: its outputs are the classes.

Coupling rule per family (layer names as in :mod:`lprcausal.models`):

- ``mlp``: every hidden layer ``hidden.{i}``; consumer ``hidden.{i+1}``, the last one ``fc``.
- ``cnn1d``: every conv ``convs.{i}``; consumer ``convs.{i+1}``; the last conv feeds ``fc``
  through a flatten, so each channel owns ``group = final length`` features of ``fc``.
- ``lenet5``: ``conv1`` -> ``conv2``; ``conv2`` -> ``fc1`` (group 25: the 5x5 positions
  left after pooling); ``fc1`` -> ``fc2``; ``fc2`` -> ``fc``.
- ``vgg``: every ``features.{i}.conv`` with its BatchNorm ``features.{i}.bn``; consumer the
  next conv, the last one ``fc`` (group 1: a spatial mean comes before ``fc``).
- ``resnet``: only the inner conv of each basic block, ``layer{s}.{j}.conv1`` with its
  BatchNorm ``bn1``; consumer ``layer{s}.{j}.conv2``. The stem ``conv1``, every block's
  ``conv2`` and every projection ``shortcut.conv`` write into the residual stream, where
  several layers add into the same channel: removing the channel from one of them would
  not remove it from the sum, so these layers keep all their units (as in Li et al.
  2017, "Pruning filters for efficient ConvNets").

Any other model raises :class:`~lprcausal.errors.LprError`: its coupling is not defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from lprcausal.errors import LprError
from lprcausal.models.cnn1d import CNN1d
from lprcausal.models.lenet5 import LeNet5
from lprcausal.models.mlp import MLP
from lprcausal.models.resnet import ResNet
from lprcausal.models.vgg import VGG, ConvBN

FAMILIES = "mlp, cnn1d, lenet5, resnet<6n+2>, vgg11, vgg16"


@dataclass(frozen=True)
class UnitSlice:
    """The entries of parameter ``param`` (of shape ``shape``) that belong to the units.

    Along ``dim``, unit ``c`` owns indices ``c * group .. (c + 1) * group - 1``.
    """

    param: str
    dim: int
    group: int
    shape: tuple[int, ...]


@dataclass(frozen=True)
class UnitLayer:
    """A layer whose output units may be pruned, with everything each unit owns.

    ``module``: the producing conv / linear module (its weight names the layer: the
    key of unit masks and of the LPR); ``norm``: the BatchNorm on its output, if any;
    ``consumer``: the module reading its output, with ``group`` inputs per unit;
    ``slices``: every parameter entry a unit owns (own weight rows, bias, BN, consumer
    input columns), from which unit masks expand to parameter masks.
    """

    module: str
    n_units: int
    norm: str | None
    consumer: str
    group: int
    slices: tuple[UnitSlice, ...]

    @property
    def weight(self) -> str:
        """The state-dict name of the producing weight, e.g. ``hidden.0.weight``."""
        return f"{self.module}.weight"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (stored with structured find runs)."""
        return {
            "module": self.module,
            "n_units": self.n_units,
            "norm": self.norm,
            "consumer": self.consumer,
            "group": self.group,
            "slices": [[s.param, s.dim, s.group, list(s.shape)] for s in self.slices],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnitLayer:
        slices = tuple(
            UnitSlice(p, int(d), int(g), tuple(int(x) for x in shape))
            for p, d, g, shape in data["slices"]
        )
        return cls(
            str(data["module"]),
            int(data["n_units"]),
            data["norm"],
            str(data["consumer"]),
            int(data["group"]),
            slices,
        )


def _layer(model: nn.Module, module: str, norm: str | None, consumer: str) -> UnitLayer:
    """Describe the units of ``module`` given its BatchNorm and consumer (groups derived)."""
    params = dict(model.named_parameters())
    producer = model.get_submodule(module)
    n_units = producer.weight.shape[0]
    consumer_in = model.get_submodule(consumer).weight.shape[1]
    # A flatten before a linear consumer gives each channel prod(spatial) inputs.
    group = consumer_in // n_units
    if group * n_units != consumer_in:
        raise RuntimeError(f"{consumer} reads {consumer_in} inputs from {n_units} units")
    slices = []
    own = [f"{module}.weight", f"{module}.bias"]
    if norm is not None:
        own += [f"{norm}.weight", f"{norm}.bias"]
    for name in own:
        if name in params:
            slices.append(UnitSlice(name, 0, 1, tuple(params[name].shape)))
    name = f"{consumer}.weight"
    slices.append(UnitSlice(name, 1, group, tuple(params[name].shape)))
    return UnitLayer(module, n_units, norm, consumer, group, tuple(slices))


def _chain(model: nn.Module, modules: list[str], norms: list[str | None]) -> list[UnitLayer]:
    """Layers in a feed-forward chain ending in ``fc``: each one feeds the next."""
    consumers = [*modules[1:], "fc"]
    return [_layer(model, m, n, c) for m, n, c in zip(modules, norms, consumers, strict=True)]


def unit_layers(model: nn.Module) -> list[UnitLayer]:
    """The unit layers of ``model`` in forward order, by its family's coupling rule.

    Raises :class:`LprError` for a model whose family has no coupling rule defined.
    """
    if isinstance(model, MLP):
        mods = [f"hidden.{i}" for i in range(len(model.hidden))]
        return _chain(model, mods, [None] * len(mods))
    if isinstance(model, CNN1d):
        mods = [f"convs.{i}" for i in range(len(model.convs))]
        return _chain(model, mods, [None] * len(mods))
    if isinstance(model, LeNet5):
        mods = ["conv1", "conv2", "fc1", "fc2"]
        return _chain(model, mods, [None] * len(mods))
    if isinstance(model, VGG):
        idx = [i for i, m in enumerate(model.features) if isinstance(m, ConvBN)]
        return _chain(model, [f"features.{i}.conv" for i in idx], [f"features.{i}.bn" for i in idx])
    if isinstance(model, ResNet):
        out = []
        for stage in ("layer1", "layer2", "layer3"):
            for j in range(len(getattr(model, stage))):
                block = f"{stage}.{j}"
                out.append(_layer(model, f"{block}.conv1", f"{block}.bn1", f"{block}.conv2"))
        return out
    raise LprError(
        f"structure = 'unit' is not defined for model {type(model).__name__}: structured "
        f"pruning needs a coupling rule (which biases, norms and downstream inputs belong to "
        f"each unit), defined for the families {FAMILIES}; expected one of those, or "
        "structure = 'weight'."
    )


def prunable_unit_layers(model: nn.Module, prunable: list[str]) -> list[UnitLayer]:
    """The unit layers whose weight is in the prunable set ``prunable`` (forward order).

    Raises :class:`LprError` when none is (e.g. an MLP with one hidden layer and
    ``exclude_first``): there would be no unit to prune.
    """
    keep = set(prunable)
    layers = [layer for layer in unit_layers(model) if layer.weight in keep]
    if not layers:
        every = [layer.weight for layer in unit_layers(model)]
        raise LprError(
            f"The prunable set {prunable} contains no layer with prunable units: for "
            f"{type(model).__name__} those are {every}. Expected a prunable set with at "
            "least one of them (check exclude_first / exclude_last)."
        )
    return layers


def layers_to_json(layers: list[UnitLayer]) -> list[dict[str, Any]]:
    return [layer.to_dict() for layer in layers]


def layers_from_json(data: list[dict[str, Any]]) -> list[UnitLayer]:
    return [UnitLayer.from_dict(d) for d in data]


def total_units(layers: list[UnitLayer]) -> int:
    return sum(layer.n_units for layer in layers)
