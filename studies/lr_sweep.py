"""A study as a Python script: a log-spaced H_find learning-rate sweep on MNIST-1D.

The spec is the same dict a TOML study file parses to, so anything computed in Python
(here: a log-spaced grid) can go into it. Run it with

    python studies/lr_sweep.py [--store runs] [--results results] [--executor dask]

It trains 6 learning rates x 3 seeds (an MLP, about a minute on 2 CPU cores), retrains
every mask with its own H_find and with a fixed H_eval, and prints eval accuracy at
sparsity 0.9 as a table (rows: H_find, columns: H_eval, mean over seeds).
"""

from __future__ import annotations

import argparse

import numpy as np

from lprcausal import Study


def build(store: str = "runs", results: str = "results") -> Study:
    """The study object; nothing is trained until ``.run()``."""
    lrs = [float(f"{x:.3g}") for x in np.geomspace(0.003, 0.3, 6)]
    spec = {
        "study": {
            "name": "lr_sweep",
            "title": "H_find learning-rate sweep (MLP, MNIST-1D)",
            "seeds": 3,
        },
        "data": {"name": "mnist1d"},
        "model": {"name": "mlp", "widths": [100, 100]},
        "prune": {"sparsities": [0.8, 0.9]},
        "find": {
            "optimizer": "sgd",
            "momentum": 0.9,
            "lr": 0.03,
            "batch_size": 100,
            "epochs": 15,
            "grid": {"lr": lrs},
        },
        "eval": {"coupled": True, "train": {"lr": 0.03}},
    }
    return Study(spec, store=store, results=results, source=__file__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="runs")
    parser.add_argument("--results", default="results")
    parser.add_argument("--executor", default="local", choices=["local", "dask"])
    args = parser.parse_args()
    study = build(args.store, args.results)
    print(study.plan())
    print(study.run(args.executor))
    acc = study.results()["decoupled"].acc.sel(sparsity=0.9).mean("seed")
    print(acc.to_pandas().round(3))


if __name__ == "__main__":  # the guard also keeps Dask worker processes from re-running it
    main()
