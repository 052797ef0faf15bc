"""Datasets given by import path: ``load(root, seed) -> (train, test, n_classes)``.

The loader is called as ``load(root, seed)``:

- ``root``: the ``--data-root`` folder as a string, or None when not given;
- ``seed``: always ``0`` — the data are part of what a run trains on, so every run of
  every seed sees the same data (use it to seed synthetic data);

and returns ``(train, test, n_classes)`` where ``train`` and ``test`` are each either a
pair of tensors ``(x, y)`` (``x``: ``(N, *in_shape)`` floats, ``y``: ``(N,)`` integer
labels) or a map-style ``torch.utils.data.Dataset`` whose items are ``(x, y)`` pairs.
Inputs are used as given (normalize them in the loader); the validation split is held
out of ``train`` as for every dataset. Checked: equal lengths of ``x`` and ``y``,
labels in ``[0, n_classes)``, finite inputs, one input shape for both splits.
"""

from __future__ import annotations

import os

import torch

from lprcausal.config import CodeRef
from lprcausal.data.dataset import Dataset, assemble
from lprcausal.errors import LprError
from lprcausal.usercode import load

LOADER_SEED = 0


def load_user_dataset(
    name: str, code: CodeRef | None, *, root: str | os.PathLike | None, val_fraction: float
) -> Dataset:
    loader = load(name, code, "dataset")
    try:
        out = loader(None if root is None else str(root), LOADER_SEED)
    except LprError:
        raise
    except Exception as exc:
        raise LprError(
            f"dataset = {name!r}: the loader raised {type(exc).__name__}: {exc}. It was "
            f"called as load({None if root is None else str(root)!r}, {LOADER_SEED})."
        ) from None
    if not isinstance(out, tuple) or len(out) != 3:
        raise LprError(
            f"dataset = {name!r}: the loader returned {_kind(out)}: expected a tuple "
            "(train, test, n_classes)."
        )
    train, test, n_classes = out
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise LprError(
            f"dataset = {name!r}: n_classes = {n_classes!r} is not valid: expected a "
            "positive integer."
        )
    x_train, y_train = _tensors(train, name, "train", n_classes)
    x_test, y_test = _tensors(test, name, "test", n_classes)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise LprError(
            f"dataset = {name!r}: train inputs have per-sample shape {tuple(x_train.shape[1:])} "
            f"but test inputs {tuple(x_test.shape[1:])}: expected one shape."
        )
    return assemble(name, x_train, y_train, x_test, y_test, n_classes, val_fraction, (), ())


def _kind(obj) -> str:
    return f"a tuple of {len(obj)}" if isinstance(obj, tuple) else f"a {type(obj).__name__}"


def _tensors(part, name: str, split: str, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    where = f"dataset = {name!r}, {split} split"
    if isinstance(part, (tuple, list)) and len(part) == 2:
        x, y = part
    elif isinstance(part, torch.utils.data.Dataset) and hasattr(part, "__len__"):
        try:
            items = [part[i] for i in range(len(part))]
            x = torch.stack([torch.as_tensor(item[0]) for item in items])
            y = torch.tensor([int(item[1]) for item in items])
        except Exception as exc:
            raise LprError(
                f"{where}: reading its items failed ({type(exc).__name__}: {exc}): expected "
                "(x, y) items with x tensors of one shape and integer labels y."
            ) from None
    else:
        raise LprError(
            f"{where} is {_kind(part)}: expected a pair of tensors (x, y) or a map-style "
            "torch.utils.data.Dataset of (x, y) items."
        )
    try:
        x = torch.as_tensor(x).float()
        y = torch.as_tensor(y)
    except Exception as exc:
        raise LprError(f"{where}: x and y must be tensors or arrays ({exc}).") from None
    if y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise LprError(
            f"{where}: labels have shape {tuple(y.shape)} and dtype {y.dtype}: expected a "
            "1-D tensor of integer class indices."
        )
    if x.ndim < 2 or len(x) != len(y):
        raise LprError(
            f"{where}: {len(x)} inputs (shape {tuple(x.shape)}) but {len(y)} labels: "
            "expected x of shape (N, *in_shape) and N labels."
        )
    if len(y) == 0:
        raise LprError(f"{where} is empty: expected at least one sample.")
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise LprError(
            f"{where}: labels range over [{int(y.min())}, {int(y.max())}]: expected labels in "
            f"[0, {n_classes}) (n_classes = {n_classes})."
        )
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise LprError(
            f"{where}: {bad} input values are NaN or infinite: expected finite inputs."
        )
    return x.contiguous(), y.to(torch.int64).contiguous()
