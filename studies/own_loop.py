"""Your own training loop with lprcausal: find masks, evaluate them, compare LPR.

A plain PyTorch loop (no engine) on MNIST-1D with the built-in MLP. It draws its batches
and initialization exactly as the engine does (``callback.batch_indices`` and the seeded
``build_model``), so its masks equal those of the same ``lprcausal find`` command:

    lprcausal find --dataset mnist1d --n-samples 1000 --model mlp --widths 32,16 \\
        --lr 0.05 --batch-size 32 --iterations 60 --sparsity 0.5 --sparsity 0.8

Run it from the repository root (about 10 seconds on 2 CPU cores):

    python studies/own_loop.py --store runs
    lprcausal runs list --store runs
    lprcausal lpr own-oneshot --sparsity 0.8 --compare own-imp --store runs
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import lprcausal as lpc
from lprcausal.data import load_dataset
from lprcausal.models import build_model

HPARAMS = {"n_samples": 1000, "lr": 0.05, "momentum": 0.9, "batch_size": 32, "iterations": 60}
WIDTHS = (32, 16)


def data(hp):
    # the engine's MNIST-1D: generated locally, 10% of the training split held out
    return load_dataset("mnist1d", n_samples=hp["n_samples"], val_fraction=0.1)


def build():
    return build_model("mlp", (1, 40), 10, widths=WIDTHS)


def train(model, hp, masks, callback):
    """An ordinary loop. `masks` keeps pruned weights at zero through the optimizer;
    `callback` marks the rewind point and gives the engine's batch order."""
    d = data(hp)
    opt = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"])
    per_epoch = d.n_train // hp["batch_size"]
    model.train()
    steps = hp["iterations"]
    for it, idx in enumerate(callback.batch_indices(d.n_train, hp["batch_size"], steps)):
        callback.at_iteration(it)
        if it % per_epoch == 0:
            callback.at_epoch(it // per_epoch)
        opt.zero_grad()
        F.cross_entropy(model(d.x_train[idx]), d.y_train[idx]).backward()
        opt.step()
    callback.at_iteration(steps)
    if steps % per_epoch == 0:
        callback.at_epoch(steps // per_epoch)
    model.eval()
    with torch.no_grad():
        acc = (model(d.x_test).argmax(1) == d.y_test).float().mean().item()
    return {"test_acc": acc}


def main(store: str = "runs") -> None:
    oneshot = lpc.find(build, train, [0.5, 0.8], hparams=HPARAMS, seed=0, store=store,
                       name="own-oneshot")
    imp = lpc.find(build, train, [0.5, 0.8], method="imp", rate=0.5, rewind="10it",
                   hparams=HPARAMS, seed=0, store=store, name="own-imp")
    for run in (oneshot, imp):
        ev = lpc.evaluate(run.id, build, train, 0.8, hparams=HPARAMS, seed=0, store=store)
        print(f"{run.spec.prune.method:8s} run {run.id}: LPR at 0.8 "
              f"{ {n: round(r, 3) for n, r in lpc.layerwise_ratios(run.mask(0.8)).items()} }, "
              f"eval accuracy {ev.metrics['test_acc']:.3f}")
    swapped = lpc.evaluate(oneshot.id, build, train, 0.8, mask="transplant", lpr_from=imp.id,
                           hparams=HPARAMS, seed=0, store=store)
    print(f"one-shot weights at the IMP run's LPR: eval accuracy "
          f"{swapped.metrics['test_acc']:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="runs", help="run store folder")
    main(parser.parse_args().store)
