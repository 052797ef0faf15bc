"""Everything a pipeline step needs besides its spec: the store, data location, engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from lprcausal.config import DataConfig, ModelConfig, PruneConfig, derive_seed
from lprcausal.data import Dataset, load_dataset
from lprcausal.models import build_network, prunable_names
from lprcausal.store import RunStore
from lprcausal.train import EngineOptions


@dataclass
class Context:
    """Where runs are stored and how they are computed (not part of any run's identity)."""

    store: RunStore
    data_root: str | Path | None = None
    download: bool = False
    cache_dir: str | Path | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)
    _datasets: dict = field(default_factory=dict, repr=False)

    @classmethod
    def at(cls, store_root: str | Path = "runs", **kw) -> Context:
        return cls(store=RunStore(store_root), **kw)

    def dataset(self, cfg: DataConfig) -> Dataset:
        if cfg not in self._datasets:
            self._datasets[cfg] = load_dataset(
                cfg.name,
                root=self.data_root,
                n_samples=cfg.n_samples,
                val_fraction=cfg.val_fraction,
                download=self.download,
                cache_dir=self.cache_dir,
                image_size=cfg.image_size,
                code=cfg.code,
            )
        return self._datasets[cfg]


def initial_state(model: ModelConfig, data: Dataset, seed: int, role: str = "init") -> dict:
    """The model's initial state_dict for replicate ``seed`` (same seed -> same weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, role))
        net = build_network(model, data.in_shape, data.n_classes)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def prunable_set(model: ModelConfig, data: Dataset, prune: PruneConfig) -> list[str]:
    """Names of the prunable set of ``model`` on ``data`` under ``prune``'s rules."""
    with torch.random.fork_rng(devices=[]):
        net = build_network(model, data.in_shape, data.n_classes)
    return prunable_names(net, include=prune.include, exclude=prune.exclude,
                          exclude_first=prune.exclude_first, exclude_last=prune.exclude_last)
