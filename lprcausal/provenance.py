"""Where and how a run was made: versions, commit, device, time."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

from lprcausal import __version__


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the lprcausal source tree, if it is a git checkout (else None)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=here, capture_output=True, text=True, timeout=5,
    ).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def provenance(
    device: torch.device | str, seconds: float | None = None, execution: dict | None = None
) -> dict:
    """Where and how a run was made. ``execution``: how its training ran (fused group
    size, seconds, whether its numbers are bitwise those of the run trained alone)."""
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    libraries = {"mkl": torch.backends.mkl.is_available(), "mkldnn": torch.backends.mkldnn.is_available()}
    if dev.type == "cuda":
        libraries.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return {
        "lprcausal_version": __version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(dev),
        "device_name": name,
        "threads": torch.get_num_threads(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": seconds,
        "libraries": libraries,
        "execution": execution or {},
    }
