"""The prunable set of a model: its conv and linear weights, named and in order.

Names are ``state_dict`` keys (e.g. ``layer1.0.conv1.weight``), listed in module
registration order, which every model in this package keeps equal to forward order.
Biases and normalization parameters are never prunable.
"""

from __future__ import annotations

from torch import nn

from lprcausal.errors import bad_value

PRUNABLE_MODULES = (nn.Conv1d, nn.Conv2d, nn.Linear)


def prunable_names(
    model: nn.Module, *, exclude_first: bool = False, exclude_last: bool = False
) -> list[str]:
    """State-dict names of every Conv1d/Conv2d/Linear weight, in forward order.

    exclude_first drops the first such layer (the input layer / stem conv);
    exclude_last drops the last (the classifier). May return an empty list when
    the model has too few layers for the exclusions.
    """
    names = [
        f"{module_name}.weight"
        for module_name, module in model.named_modules()
        if isinstance(module, PRUNABLE_MODULES)
    ]
    start = 1 if exclude_first else 0
    stop = len(names) - 1 if exclude_last else len(names)
    return names[start:stop]


def layer_table(model: nn.Module, names: list[str]) -> list[dict]:
    """One row per name: ``{"name", "shape" (tuple of ints), "n_params"}``.

    Works on any device, including ``meta``. Raises LprError for a name that is not
    a parameter of ``model``.
    """
    params = dict(model.named_parameters())
    rows = []
    for name in names:
        if name not in params:
            raise bad_value("layer", name, f"a parameter name of the model, one of {list(params)}")
        shape = tuple(params[name].shape)
        rows.append({"name": name, "shape": shape, "n_params": params[name].numel()})
    return rows
