"""Shared fixtures: a tiny MNIST-1D, a tiny MLP and fast hyperparameters."""

from __future__ import annotations

import pytest

from lprcausal.config import DataConfig, FindSpec, ModelConfig, PruneConfig, TrainConfig
from lprcausal.pipeline import Context
from lprcausal.train import EngineOptions

TINY_DATA = DataConfig(name="mnist1d", n_samples=600)
TINY_MODEL = ModelConfig(name="mlp", widths=(24, 12))


def tiny_train(**kw) -> TrainConfig:
    base = dict(lr=0.05, batch_size=32, iterations=24, epochs=None)
    base.update(kw)
    return TrainConfig(**base)


def tiny_find(**kw) -> FindSpec:
    prune = kw.pop("prune", PruneConfig(sparsities=(0.5, 0.8)))
    train = kw.pop("train", tiny_train())
    model = kw.pop("model", TINY_MODEL)
    return FindSpec(data=TINY_DATA, model=model, train=train, prune=prune, **kw)


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("data-cache")


@pytest.fixture(autouse=True)
def _cache_env(monkeypatch, data_cache):
    monkeypatch.setenv("LPRCAUSAL_CACHE", str(data_cache))


@pytest.fixture
def no_tf32():
    """TF32 off in CUDA matmuls and convolutions (float32 comparisons on a GPU)."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture
def ctx(tmp_path, data_cache) -> Context:
    return Context.at(tmp_path / "runs", cache_dir=data_cache,
                      engine=EngineOptions(progress=False, device="cpu"))


def run_cli(capsys, *args, code: int = 0) -> str:
    """Run the ``lprcausal`` CLI in-process; assert its exit status is ``code``; return its
    stdout (stderr when ``code`` is not 0)."""
    from lprcausal.cli import main

    try:
        main(list(args))
        status = 0
    except SystemExit as exc:
        status = exc.code or 0
    out, err = capsys.readouterr()
    assert status == code, f"exit {status}\nstdout:\n{out}\nstderr:\n{err}"
    return out if code == 0 else err
