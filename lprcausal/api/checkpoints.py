"""Read a state dict from a file a user brings: safetensors, or ``torch.save`` output read with
``weights_only=True``. A pickle that ``weights_only`` refuses is an error, never loaded
another way."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from lprcausal.errors import LprError


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``name -> tensor`` state dict stored in ``path`` (``.safetensors``, else torch)."""
    p = Path(path)
    if not p.is_file():
        raise LprError(f"checkpoint {str(p)!r} does not exist: expected a state_dict file.")
    if p.suffix == ".safetensors":
        try:
            return load_file(str(p))
        except (SafetensorError, OSError, ValueError) as exc:
            raise LprError(
                f"checkpoint {str(p)!r} is not a readable safetensors file ({exc})."
            ) from None
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc).strip()
        first = text.split(". ")[0].splitlines()[0] if text else "refused"
        raise LprError(
            f"checkpoint {str(p)!r} holds Python objects that torch.load(weights_only=True) "
            f"refuses ({first}). lprcausal never loads a pickle unsafely: expected a state "
            "dict of tensors, e.g. saved with torch.save(model.state_dict(), path) or "
            "safetensors."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise LprError(
            f"checkpoint {str(p)!r} is not a torch checkpoint ({str(exc).splitlines()[0]}): "
            "expected a state dict saved with torch.save or a .safetensors file."
        ) from None
    bad = None
    if not isinstance(obj, Mapping):
        bad = f"a {type(obj).__name__}"
    else:
        odd = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
        if odd:
            bad = f"a dict whose entries {odd[:5]} are not tensors"
    if bad:
        raise LprError(
            f"checkpoint {str(p)!r} holds {bad}: expected a state dict (parameter name -> "
            "tensor), e.g. torch.save(model.state_dict(), path)."
        )
    return dict(obj)
