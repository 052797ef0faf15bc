"""Everything a pipeline step needs besides its spec: the store, data location, engine."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from lprcausal.config import DataConfig, ModelConfig, PruneConfig, derive_seed
from lprcausal.data import Dataset, load_dataset
from lprcausal.data.folder import folder_digest
from lprcausal.errors import LprError
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
    _digest: str | None = field(default=None, repr=False)  # of the 'folder' data root

    @classmethod
    def at(cls, store_root: str | Path = "runs", **kw) -> Context:
        return cls(store=RunStore(store_root), **kw)

    def identify(self, cfg: DataConfig) -> DataConfig:
        """``cfg`` with the identity of its data where the name does not give it: dataset
        'folder' (whatever images lie under the data root) gets their SHA-256."""
        if cfg.name != "folder" or cfg.content is not None or self.data_root is None:
            return cfg
        if not Path(self.data_root).expanduser().is_dir():
            return cfg  # the loader says what is missing
        return replace(cfg, content=self._folder_digest())

    def _folder_digest(self) -> str:
        if self._digest is None:
            self._digest = folder_digest(self.data_root)
        return self._digest

    def dataset(self, cfg: DataConfig) -> Dataset:
        if cfg.content is not None and self.data_root is not None and (
            Path(self.data_root).expanduser().is_dir() and cfg.content != self._folder_digest()
        ):
            raise LprError(
                f"dataset 'folder' under --data-root {str(self.data_root)!r} is not the one "
                f"its runs were made with: its image files hash to {self._folder_digest()[:16]}"
                f", expected {cfg.content[:16]}. Expected the same images (a run's identity "
                "includes them), or a new run on these."
            )
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
