"""One fused training step captured as a CUDA graph and replayed every step.

A small network's step on a GPU is bound by kernel launches and per-op host work
(``vmap``, autograd, the optimizer), not by the GPU's arithmetic: ResNet-20 at B = 128
spends milliseconds per step launching a few hundred small kernels. A CUDA graph
records the kernels of one whole step (forward, backward into the ``[K, P]`` gradient
buffer, fused optimizer update) once and replays them with one launch per step.

What stays outside the graph: drawing the batch (its indices change every epoch; the
batch is copied into the graph's fixed input buffers) and the step's hyperparameters,
which :class:`~lprcausal.train.optim.FusedOptimizer` copies into fixed buffers before
each replay. Replay runs the same kernels on the same addresses as the eager step.

Capture needs a step without host synchronization or data-dependent Python control
flow. The built-in models qualify; a model given by import path is graphed only when
asked (``EngineOptions(cuda_graphs=True)``), since a Python branch inside its forward
would be frozen at capture. The warm-up steps run with CUDA's synchronization check
set to raise, so a step that reads a value back to the host (``.item()``,
``nonzero``, ...) is never captured: it trains eagerly, with a warning, as does any
step whose capture fails.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import contextmanager

import torch

_WARMUP_STEPS = 2


@contextmanager
def _no_host_sync():
    """Raise on any operation that synchronizes with the host (it would break a capture)."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


class GraphedStep:
    """``step(x, y) -> losses`` replayed from a CUDA graph of ``eager`` (captured on first call).

    ``eager(x, y)`` runs one training step and returns the members' losses;
    ``forward_backward(x, y)`` is the same step without the optimizer update (used to
    warm up cuBLAS / cuDNN / autograd before capture); ``state`` are the tensors the
    warm-up may change (BatchNorm running statistics), restored after it;
    ``before_replay`` / ``after_replay`` advance the optimizer's step outside the graph.
    """

    def __init__(
        self,
        eager: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        forward_backward: Callable[[torch.Tensor, torch.Tensor], object],
        state: list[torch.Tensor],
        before_replay: Callable[[], None],
        after_replay: Callable[[], None],
    ):
        self.eager = eager
        self.forward_backward = forward_backward
        self.state = state
        self.before_replay = before_replay
        self.after_replay = after_replay
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed: str | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.graph is None and self.failed is None:
            self._capture(x, y)
        if self.graph is None:
            return self._eager_step(x, y)
        self.x.copy_(x)
        self.y.copy_(y)
        self.before_replay()
        self.graph.replay()
        self.after_replay()
        return self.losses

    def _eager_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.before_replay()
        losses = self.eager(x, y)
        self.after_replay()
        return losses

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x.clone(), y.clone()
        saved = [t.clone() for t in self.state]
        device = x.device
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.stream(side):
                for _ in range(_WARMUP_STEPS):
                    with _no_host_sync():
                        self.forward_backward(self.x, self.y)
                for t, s in zip(self.state, saved, strict=True):
                    t.copy_(s)
                self.before_replay()  # the static hyperparameter rows hold this step's values
                torch.cuda.synchronize(device)
                # Only this thread's unsafe calls end the capture (a Dask worker may run
                # other threads).
                graph.capture_begin(capture_error_mode="thread_local")
                try:
                    self.losses = self.eager(self.x, self.y)
                finally:
                    graph.capture_end()
            torch.cuda.current_stream(device).wait_stream(side)
        except Exception as exc:  # a step that cannot be captured still trains, eagerly
            torch.cuda.synchronize(device)
            for t, s in zip(self.state, saved, strict=True):
                t.copy_(s)
            self.failed = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            warnings.warn(
                f"CUDA graph capture failed ({self.failed}); training this group eagerly.",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        self.graph = graph
