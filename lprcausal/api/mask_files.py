"""Masks as files: safetensors with the description in the header, never a pickle.

The header's ``__metadata__`` (string -> string) holds ``format = "lprcausal.masks"``,
``format_version``, ``lprcausal_version``, ``sparsity`` (over the masks, computed here),
``names`` and ``shapes`` (JSON, in network order; safetensors itself sorts tensors by
name), ``method`` and ``source_run`` when given, and any other keyword given to
:func:`save_masks` (as JSON). Loading parses only JSON and raw tensor bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from lprcausal import __version__
from lprcausal.api.weights import ModelOrParams, unwrap
from lprcausal.errors import LprError
from lprcausal.pruning import overall_sparsity
from lprcausal.pruning.masks import check_masks_match
from lprcausal.store import atomic_write_bytes

FORMAT = "lprcausal.masks"
FORMAT_VERSION = "1"
_RESERVED = ("format", "format_version", "lprcausal_version", "names", "shapes", "sparsity")


def save_masks(path: str | os.PathLike, masks: Mapping[str, torch.Tensor], **metadata: Any) -> Path:
    """Write ``masks`` (name -> bool tensor) to ``path`` as safetensors, atomically.

    Keywords become header metadata (JSON-encoded): e.g. ``method="imp"``,
    ``source_run="3f2a..."``. Returns the path.

    >>> import torch, tempfile, os, lprcausal as lpc
    >>> m = {"fc.weight": torch.tensor([[True, False], [True, True]])}
    >>> p = lpc.save_masks(os.path.join(tempfile.mkdtemp(), "m.safetensors"), m, method="mine")
    >>> lpc.load_masks(p)["fc.weight"].tolist(), lpc.mask_metadata(p)["sparsity"]
    ([[True, False], [True, True]], 0.25)
    """
    check_masks_match(masks, masks)
    clash = [k for k in metadata if k in _RESERVED]
    if clash:
        raise LprError(
            f"metadata keys {clash} are computed by save_masks: expected other keys "
            f"(reserved: {', '.join(_RESERVED)})."
        )
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lprcausal_version": __version__,
        "names": json.dumps(list(masks)),
        "shapes": json.dumps([list(m.shape) for m in masks.values()]),
        "sparsity": json.dumps(overall_sparsity(masks)),
    }
    for key, value in metadata.items():
        try:
            header[key] = json.dumps(value)
        except TypeError:
            raise LprError(
                f"metadata {key} = {value!r} is not valid: expected a JSON value "
                "(string, number, bool, list, dict)."
            ) from None
    # clone: safetensors refuses two names on one storage (e.g. one mask object reused).
    tensors = {n: m.detach().cpu().clone(memory_format=torch.contiguous_format)
               for n, m in masks.items()}
    path = Path(path)
    try:
        atomic_write_bytes(path, save(tensors, metadata=header))
    except OSError as exc:
        raise LprError(
            f"cannot write the masks file {str(path)!r} ({exc.strerror or exc}): expected a "
            "file path in a folder that exists or can be created and is writable."
        ) from None
    return path


def _open(path: Path):
    if not path.is_file():
        raise LprError(f"masks file {str(path)!r} does not exist: expected a .safetensors file.")
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError) as exc:
        raise LprError(
            f"masks file {str(path)!r} is not a readable safetensors file ({exc}): expected "
            "masks written by lprcausal.save_masks or `lprcausal masks export`."
        ) from None


def mask_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The header metadata of a masks file, JSON values decoded (strings kept as written)."""
    with _open(Path(path)) as fh:
        raw = fh.metadata() or {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def load_masks(
    path: str | os.PathLike, model_or_params: ModelOrParams | None = None
) -> dict[str, torch.Tensor]:
    """Read masks from a safetensors file, in the order its header lists (else file order).

    Every tensor must be boolean. With ``model_or_params`` the masks must cover exactly
    names of its parameters with their shapes; the error names the first mismatches.

    A file in the layout of ``torch.nn.utils.prune`` (its ``state_dict``: ``<name>_orig``
    beside a ``<name>_mask`` buffer, or only the ``<name>_mask`` buffers) is read as the
    masks ``<name> -> (<name>_mask != 0)``, as :func:`~lprcausal.from_torch_prune` reads a
    pruned module; its other tensors (weights, biases, buffers without an ``_orig``) are
    skipped. The mask buffers must hold only 0 and 1.
    """
    path = Path(path)
    with _open(path) as fh:
        keys = list(fh.keys())
        header = fh.metadata() or {}
        masks = {n: fh.get_tensor(n) for n in _header_order(header.get("names"), keys)}
    mask_keys = _torch_prune_masks(keys) if header.get("format") != FORMAT else []
    if mask_keys:
        masks = _from_torch_prune_state(masks, mask_keys, path)
    for n, m in masks.items():
        if m.dtype != torch.bool:
            raise LprError(
                f"masks file {str(path)!r}: tensor {n!r} has dtype {m.dtype}: expected "
                "torch.bool (True = weight kept)."
            )
    if model_or_params is not None:
        check_fits(masks, model_or_params, f"masks file {str(path)!r}")
    return masks


def _header_order(names: str | None, keys: list[str]) -> list[str]:
    """The names listed by the header if they are exactly the file's tensors, else ``keys``."""
    try:
        listed = json.loads(names) if names else None
    except ValueError:
        return keys
    ok = isinstance(listed, list) and all(isinstance(n, str) for n in listed)
    return listed if ok and sorted(listed) == sorted(keys) else keys


def _torch_prune_masks(keys: list[str]) -> list[str]:
    """The mask keys of a ``torch.nn.utils.prune`` state: each ``<name>_mask`` beside a
    ``<name>_orig`` (other ``_mask`` tensors are the model's own buffers), or every key
    when all end in ``_mask``; empty for any other file."""
    masks = [k for k in keys if k.endswith("_mask")]
    if masks and len(masks) == len(keys):
        return masks
    return [k for k in masks if f"{k[: -len('_mask')]}_orig" in keys]


def _from_torch_prune_state(
    tensors: dict[str, torch.Tensor], mask_keys: list[str], path: Path
) -> dict[str, torch.Tensor]:
    out = {}
    for key, t in tensors.items():
        if key not in mask_keys:
            continue
        if not bool(((t == 0) | (t == 1)).all()):
            raise LprError(
                f"masks file {str(path)!r}: torch.nn.utils.prune buffer {key!r} holds values "
                "other than 0 and 1: expected a mask (1 = weight kept, 0 = removed)."
            )
        out[key[: -len("_mask")]] = t != 0
    return out


def check_fits(masks: Mapping[str, torch.Tensor], model_or_params: ModelOrParams, what: str) -> None:
    """Raise :class:`LprError` unless every mask names a parameter of the model with its shape,
    listing the first names missing from the model and the first shape mismatches."""
    if isinstance(model_or_params, torch.nn.Module):
        params = {n: p.detach() for n, p in unwrap(model_or_params).named_parameters()}
    else:
        params = dict(model_or_params)
    unknown = [n for n in masks if n not in params]
    wrong = [
        f"{n} {list(masks[n].shape)} vs {list(params[n].shape)}"
        for n in masks if n in params and tuple(masks[n].shape) != tuple(params[n].shape)
    ]
    if unknown or wrong:
        raise LprError(
            f"{what} does not match the model: names not in the model {unknown[:5]}, "
            f"shape mismatches (mask vs weight) {wrong[:5]}; expected masks over parameters "
            f"of the model such as {list(params)[:6]} with their shapes."
        )
