"""Study results as xarray Datasets (netCDF), read from the run store.

``decoupled``: ``acc(h_find, h_eval, seed, sparsity)`` (eval test accuracy, final
epoch), ``val_acc`` (final-epoch validation accuracy), ``diverged`` and run ids;
``find_acc`` / ``pruned_acc(h_find, seed, sparsity)``; ``lpr(h_find, seed, sparsity,
layer)``; ``n_params(layer)``; for structured pruning also ``unit_lpr`` and the
compacted network's ``params_kept`` / ``flops_kept(h_find, seed, sparsity)``. Hyperparameters that vary are coordinates along
``h_find`` (``lr(h_find)``) and ``h_eval`` (``eval_lr(h_eval)``; NaN or empty for the
``coupled`` arm, whose H_eval is the row's H_find); the full H of every label is a
JSON string coordinate.

``transplant``: ``acc(pair, w_src, lpr_src, seed, sparsity)``, dose-response
``acc_alpha(pair, alpha, seed, sparsity)``, controls ``acc_control(pair, control,
w_src, seed, sparsity)``, each with ``val_acc*``, ``diverged*`` and ``run_id*``
(the variable names of :func:`lprcausal.transplant.design_dataset`, plus ``pair``).

A run that diverged (NaN or infinite loss), or whose find run diverged, has NaN
accuracy and ``diverged = True``; ``n_diverged`` attributes count them.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from lprcausal import __version__
from lprcausal.config import TrainConfig, spec_hash
from lprcausal.errors import LprError
from lprcausal.pipeline import EvalRun, FindRun
from lprcausal.provenance import git_commit
from lprcausal.store import RunStore
from lprcausal.study.graph import JobGraph
from lprcausal.study.spec import HPoint, StudySpec
from lprcausal.transplant import ROLES, alpha_spec, cell_spec, control_spec

ACC = {"long_name": "eval test accuracy (final epoch)", "units": "1"}
VAL_ACC = {"long_name": "eval validation accuracy (final epoch)", "units": "1"}
DIVERGED = {"long_name": "run diverged (NaN/inf loss), or its find run did; accuracy is NaN"}
RUN_ID = {"long_name": "run id in the run store (empty: not trained, its find run diverged)"}

HP_UNITS = {
    "lr": "1",
    "momentum": "1",
    "weight_decay": "1",
    "batch_size": "samples",
    "epochs": "epochs",
    "iterations": "steps",
    "gamma": "1",
    "beta1": "1",
    "beta2": "1",
    "eps": "1",
}


class RunReader:
    """Metrics of the study's runs, read once each; runs never trained read as diverged."""

    def __init__(self, store: RunStore, skipped: set[str]):
        self.store = store
        self.skipped = skipped
        self._find: dict[str, FindRun] = {}
        self._eval: dict[str, dict] = {}

    def find(self, run_id: str) -> FindRun:
        if run_id not in self._find:
            self._find[run_id] = FindRun(self.store, run_id)
        return self._find[run_id]

    def eval(self, run_id: str) -> dict | None:
        """Eval metrics, or None for a run skipped because its find run diverged."""
        if run_id in self.skipped:
            return None
        if run_id not in self._eval:
            self._eval[run_id] = EvalRun(self.store, run_id).metrics
        return self._eval[run_id]


def missing_runs(graph: JobGraph, store: RunStore) -> tuple[list[str], set[str]]:
    """(runs not in the store that should be, eval runs skipped as their find diverged)."""
    missing = [i for i in graph.finds if not store.exists(i)]
    if missing:
        return missing + [i for i in graph.evals if not store.exists(i)], set()
    diverged = {i for i in graph.finds if FindRun(store, i).metrics.get("diverged")}
    skipped: set[str] = set()
    for run_id in graph.evals:
        if store.exists(run_id):
            continue
        if any(f in diverged for f in graph.needs(run_id)):
            skipped.add(run_id)
        else:
            missing.append(run_id)
    return missing, skipped


def collect(
    graph: JobGraph, store: RunStore, command: str = ""
) -> tuple[dict[str, xr.Dataset], dict[str, int]]:
    """The study's Datasets (``decoupled``, and ``transplant`` when the spec has one) and
    run counts: ``runs``, ``diverged`` (runs whose loss became NaN/inf) and ``skipped``
    (eval runs not trained because their find run diverged)."""
    missing, skipped = missing_runs(graph, store)
    if missing:
        raise LprError(
            f"{len(missing)} of the {len(graph.run_ids())} runs of study "
            f"{graph.spec.name!r} are not in store {str(store.root)!r} (e.g. {missing[0]}): "
            "expected a finished study; run `lprcausal study run` with the same spec and "
            "--store first."
        )
    reader = RunReader(store, skipped)
    attrs = _attrs(graph.spec, command)
    out = {"decoupled": decoupled_dataset(graph, reader, attrs)}
    if graph.spec.transplant is not None:
        out["transplant"] = transplant_dataset(graph, reader, attrs)
    diverged = sum(bool(reader.find(i).metrics.get("diverged")) for i in graph.finds)
    diverged += sum(bool(m["diverged"]) for i in graph.evals if (m := reader.eval(i)))
    return out, {"runs": len(graph.run_ids()), "diverged": diverged, "skipped": len(skipped)}


# ---------------------------------------------------------------------------- decoupled
# Structured runs: the compacted network's share of the dense one (compaction_summary).
COMPACT_KEPT = {"params_kept": "parameters", "flops_kept": "forward FLOPs"}


def decoupled_dataset(graph: JobGraph, reader: RunReader, attrs: dict) -> xr.Dataset:
    spec = graph.spec
    hf, he = [p.label for p in spec.h_find], [p.label for p in spec.h_eval]
    seeds, sp = list(spec.seeds), list(spec.sparsities)
    dims4 = ("h_find", "h_eval", "seed", "sparsity")
    evals = _gather(
        dims4, (hf, he, seeds, sp), lambda f, e, seed, s: graph.decoupled[(f, e, seed, s)], reader
    )
    find_acc = np.full((len(hf), len(seeds), len(sp)), np.nan)
    pruned_acc = np.full(find_acc.shape, np.nan)
    find_div = np.zeros((len(hf), len(seeds)), dtype=bool)
    find_run = np.full(find_div.shape, "", dtype=object)
    layers = _layers(graph, reader)
    lpr = np.full((*find_acc.shape, len(layers)), np.nan)
    unit_lpr = np.full(lpr.shape, np.nan)  # structured pruning: fraction of units removed
    kept = {k: np.full(find_acc.shape, np.nan) for k in COMPACT_KEPT}  # and its compaction
    structured = False
    for i, f in enumerate(hf):
        for j, seed in enumerate(seeds):
            run = reader.find(graph.find_ids[(f, seed)])
            find_run[i, j] = run.id
            find_div[i, j] = bool(run.metrics.get("diverged"))
            for k, s in enumerate(sp):
                key = run.level(s)
                if find_div[i, j]:
                    continue  # NaN weights: no accuracy and no LPR means anything
                find_acc[i, j, k] = run.metrics["find_acc"][key]
                pruned_acc[i, j, k] = run.metrics["pruned_acc"][key]
                ratios = run.metrics["lpr"][key]
                lpr[i, j, k] = [ratios[name] for name, _n in layers]
                if "unit_lpr" in run.metrics:
                    structured = True
                    units = run.metrics["unit_lpr"][key]
                    unit_lpr[i, j, k] = [units[name] for name, _n in layers]
                for name in COMPACT_KEPT:
                    if "compact" in run.metrics:
                        kept[name][i, j, k] = run.metrics["compact"][key][name]
    # the eval runs of a diverged find run count as diverged cells too
    diverged = evals["diverged"] | find_div[:, None, :, None]
    ds = xr.Dataset(
        {
            "acc": (dims4, evals["acc"], ACC),
            "val_acc": (dims4, evals["val_acc"], VAL_ACC),
            "diverged": (dims4, diverged, DIVERGED),
            "eval_run": (dims4, evals["run_id"].astype(str), RUN_ID),
            "find_acc": (
                ("h_find", "seed", "sparsity"),
                find_acc,
                {
                    "long_name": "find-phase test accuracy of the network the mask was "
                    "pruned from (the dense one for one-shot, the last IMP round for IMP)",
                    "units": "1",
                },
            ),
            "pruned_acc": (
                ("h_find", "seed", "sparsity"),
                pruned_acc,
                {"long_name": "test accuracy right after pruning, before retraining", "units": "1"},
            ),
            "find_diverged": (
                ("h_find", "seed"),
                find_div,
                {"long_name": "find run diverged (NaN/inf loss)"},
            ),
            "find_run": (
                ("h_find", "seed"),
                find_run.astype(str),
                {"long_name": "find run id in the run store"},
            ),
            "lpr": (
                ("h_find", "seed", "sparsity", "layer"),
                lpr,
                {
                    "long_name": "layerwise pruning ratio (fraction of the layer's weights "
                    "removed)",
                    "units": "1",
                },
            ),
            "n_params": (
                "layer",
                np.array([n for _name, n in layers], dtype=np.int64),
                {"long_name": "weights in the prunable layer", "units": "1"},
            ),
        },
        coords=_base_coords(spec, hf, he, seeds, sp) | {"layer": [n for n, _ in layers]},
    )
    ds["layer"].attrs = {"long_name": "prunable parameter name"}
    if structured:
        for name, what in COMPACT_KEPT.items():
            ds[name] = (
                ("h_find", "seed", "sparsity"),
                kept[name],
                {
                    "long_name": f"fraction of the network's {what} kept by the compacted "
                    "(physically smaller) network",
                    "units": "1",
                },
            )
        ds["unit_lpr"] = (
            ("h_find", "seed", "sparsity", "layer"),
            unit_lpr,
            {
                "long_name": "fraction of the layer's units (neurons / channels) removed; "
                "lpr is the fraction of its weights",
                "units": "1",
            },
        )
    ds = ds.assign_coords(_hp_coords(spec.h_find, "", "h_find"))
    ds = ds.assign_coords(_hp_coords(spec.h_eval, "eval_", "h_eval"))
    ds.attrs = {
        **attrs,
        "title": f"{spec.title}: decoupled find/eval",
        "n_diverged": int(diverged.sum()),
        "n_diverged_find": int(find_div.sum()),
        "eval_mode": spec.mode,
    }
    # Declared in [stats]: the statistics then compare against these arms, no inference.
    if spec.reference_h_find is not None:
        ds.attrs["reference_h_find"] = spec.reference_h_find
    if spec.reference_h_eval is not None:
        ds.attrs["reference_h_eval"] = spec.reference_h_eval
    return ds


def _layers(graph: JobGraph, reader: RunReader) -> list[tuple[str, int]]:
    """(name, n_params) of the prunable layers (the same for every find run of a study)."""
    first = reader.find(next(iter(graph.finds)))
    return [(row["name"], int(row["n_params"])) for row in first.layers]


def _base_coords(spec: StudySpec, hf, he, seeds, sp) -> dict:
    return {
        "h_find": ("h_find", hf, {"long_name": "H_find label (find-phase hyperparameters)"}),
        "h_eval": (
            "h_eval",
            he,
            {"long_name": "H_eval label ('coupled': H_eval = the row's H_find)"},
        ),
        "seed": ("seed", np.array(seeds, dtype=np.int64), {"long_name": "replicate index"}),
        "sparsity": (
            "sparsity",
            np.array(sp, dtype=float),
            {"long_name": "fraction of prunable weights removed", "units": "1"},
        ),
    }


def _hp_coords(points: tuple[HPoint, ...], prefix: str, dim: str) -> dict:
    """Coordinates along ``dim``: each hyperparameter that defines a point, and the full H."""
    fields = list(dict.fromkeys(f for p in points for f in p.fields))
    phase = "H_find" if dim == "h_find" else "H_eval"
    out: dict[str, Any] = {}
    for f in fields:
        values = [None if p.coupled else getattr(p.train, f) for p in points]
        attrs = {"long_name": f"{phase} {f}"}
        if f in HP_UNITS:
            attrs["units"] = HP_UNITS[f]
        out[prefix + f] = (dim, _coord_values(values), attrs)
    configs = [
        "coupled" if p.coupled else json.dumps(_h_json(p.train), sort_keys=True) for p in points
    ]
    out[f"{dim}_config"] = (
        dim,
        np.array(configs, dtype=object).astype(str),
        {"long_name": f"full {phase} of each label (JSON)"},
    )
    return out


def _h_json(train: TrainConfig) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in train.to_dict().items()}


def _coord_values(values: list) -> np.ndarray:
    """A 1-D coordinate; None (the coupled arm, an unset length) is NaN or ''."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return (
            np.array([np.nan if v is None else float(v) for v in values])
            if (None in values or any(isinstance(v, float) for v in present))
            else np.array(values, dtype=np.int64)
        )
    return np.array(["" if v is None else _text(v) for v in values], dtype=object).astype(str)


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)


# ---------------------------------------------------------------------------- transplant
def transplant_dataset(graph: JobGraph, reader: RunReader, attrs: dict) -> xr.Dataset:
    spec, tp = graph.spec, graph.spec.transplant
    assert tp is not None
    pairs = list(graph.designs)
    seeds, sp = list(spec.seeds), list(tp.sparsities)
    ab = [0, 1]

    def cell(dims, values, make) -> dict:
        return _gather(dims, values, make, reader)

    def design(pair: str):
        d = graph.designs[pair]
        return d, dict(zip(d.seeds(), d.pairs, strict=True))

    dims = ("pair", "w_src", "lpr_src", "seed", "sparsity")

    def main(p, w, lpr, seed, s):
        d, runs = design(p)
        return spec_hash(cell_spec(d, runs[seed], w, lpr, s, seed))

    data = {}
    _add(
        data,
        "",
        dims,
        cell(dims, (pairs, ab, ab, seeds, sp), main),
        "eval accuracy of the weights of w_src pruned at the LPR of lpr_src",
    )
    coords: dict[str, Any] = {
        "pair": ("pair", pairs, {"long_name": "H_find pair 'a->b'"}),
        "a": ("pair", [graph.designs[p].names[0] for p in pairs], {"long_name": "H_find a"}),
        "b": ("pair", [graph.designs[p].names[1] for p in pairs], {"long_name": "H_find b"}),
        "w_src": ("w_src", list(ROLES), {"long_name": "run whose trained weights are pruned"}),
        "lpr_src": ("lpr_src", list(ROLES), {"long_name": "run whose LPR is imposed"}),
        "seed": ("seed", np.array(seeds, dtype=np.int64), {"long_name": "replicate index"}),
        "sparsity": (
            "sparsity",
            np.array(sp, dtype=float),
            {"long_name": "fraction of prunable weights removed", "units": "1"},
        ),
    }
    if tp.alphas:
        adims = ("pair", "alpha", "seed", "sparsity")

        def dose(p, a, seed, s):
            d, runs = design(p)
            return spec_hash(alpha_spec(d, runs[seed], a, s, seed))

        _add(
            data,
            "_alpha",
            adims,
            cell(adims, (pairs, list(tp.alphas), seeds, sp), dose),
            "eval accuracy of weights a at LPR (1-alpha)*LPR_a + alpha*LPR_b",
        )
        coords["alpha"] = (
            "alpha",
            np.array(tp.alphas, dtype=float),
            {"long_name": "interpolation weight toward the LPR of b", "units": "1"},
        )
    if tp.controls:
        cdims = ("pair", "control", "w_src", "seed", "sparsity")

        def ctl(p, c, w, seed, s):
            d, runs = design(p)
            return spec_hash(control_spec(d, runs[seed], w, c, s, seed))

        _add(
            data,
            "_control",
            cdims,
            cell(cdims, (pairs, list(tp.controls), ab, seeds, sp), ctl),
            "eval accuracy of the weights of w_src with a control mask at the same sparsity",
        )
        coords["control"] = ("control", list(tp.controls), {"long_name": "control mask kind"})
    ds = xr.Dataset(data, coords=coords)
    h = spec.eval_point(tp.h_eval)
    n_div = sum(int(ds[v].sum()) for v in ds.data_vars if v.startswith("diverged"))
    ds.attrs = {
        **attrs,
        "title": f"{spec.title}: LPR transplants",
        "h_eval": h.label,
        "h_eval_config": json.dumps(_h_json(h.train), sort_keys=True),
        "eval_mode": spec.mode,
        "n_diverged": n_div,
    }
    return ds


def _add(data: dict, suffix: str, dims: tuple, cells: dict, long_name: str) -> None:
    data["acc" + suffix] = (dims, cells["acc"], {**ACC, "long_name": long_name})
    data["val_acc" + suffix] = (dims, cells["val_acc"], VAL_ACC)
    data["diverged" + suffix] = (dims, cells["diverged"], DIVERGED)
    data["run_id" + suffix] = (dims, cells["run_id"].astype(str), RUN_ID)


# ---------------------------------------------------------------------------- shared
def _gather(
    dims: tuple, values: tuple, run_id_of: Callable[..., str], reader: RunReader
) -> dict[str, np.ndarray]:
    """acc, val_acc, diverged and run_id over the Cartesian grid of ``values``."""
    shape = tuple(len(v) for v in values)
    acc = np.full(shape, np.nan)
    val = np.full(shape, np.nan)
    div = np.zeros(shape, dtype=bool)
    ids = np.full(shape, "", dtype=object)
    for index in np.ndindex(*shape):
        run_id = run_id_of(*(v[i] for v, i in zip(values, index, strict=True)))
        m = reader.eval(run_id)
        if m is None:
            div[index] = True
            continue
        ids[index] = run_id
        div[index] = bool(m["diverged"])
        acc[index] = np.nan if div[index] else m["test_acc"]
        val[index] = np.nan if div[index] else m["final_val_acc"]
    return {"acc": acc, "val_acc": val, "diverged": div, "run_id": ids}


def _attrs(spec: StudySpec, command: str) -> dict:
    commit = git_commit()
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {
        "study": spec.name,
        "source": f"lprcausal {__version__}" + (f" (git {commit})" if commit else ""),
        "history": f"{now}: {command or 'lprcausal study collect'} {spec.source}".strip(),
        "spec": json.dumps(spec.raw, sort_keys=False, default=str),
        "spec_file": spec.source,
        "description": spec.description,
        "data": json.dumps(spec.data.to_dict(), default=list),
        "model": json.dumps(spec.model.to_dict(), default=list),
        "prune": json.dumps(spec.prune.to_dict(), default=list),
    }
