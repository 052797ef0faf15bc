"""Study results as xarray Datasets (netCDF), read from the run store.

``decoupled``: ``acc(h_find, h_eval, seed, sparsity)`` (eval test accuracy, final
epoch), ``val_acc`` (final-epoch validation accuracy), ``diverged`` and run ids;
``find_acc`` / ``pruned_acc(h_find, seed, sparsity)``; ``lpr(h_find, seed, sparsity,
layer)``; ``n_params(layer)``; for structured pruning also ``unit_lpr`` and the
compacted network's ``params_kept`` / ``flops_kept(h_find, seed, sparsity)``.
Hyperparameters that vary are coordinates along ``h_find`` (``lr(h_find)``) and
``h_eval`` (``eval_lr(h_eval)``; NaN or empty for the ``coupled`` arm, whose H_eval is
the row's H_find); the full H of every label is a JSON string coordinate (provenance);
the design (coupled cells, reference arms) is recorded as
:func:`lprcausal.results.build.decoupled_design` describes.

``transplant``: ``acc(pair, w_src, lpr_src, seed, sparsity)``, dose-response
``acc_alpha(pair, alpha, seed, sparsity)``, controls ``acc_control(pair, control,
w_src, seed, sparsity)``, each with ``val_acc*``, ``diverged*`` and ``run_id*``, built
by :func:`lprcausal.results.build.transplant_dataset`.

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
from lprcausal.config import DataConfig, ModelConfig, PruneConfig, spec_hash
from lprcausal.errors import LprError
from lprcausal.pipeline import EvalRun, FindRun
from lprcausal.provenance import git_commit
from lprcausal.results import build
from lprcausal.results.schema import (
    ACC,
    DIVERGED,
    HP_UNITS,
    RUN_ID,
    SEED,
    SPARSITY,
    VAL_ACC,
)
from lprcausal.store import RunStore
from lprcausal.study.graph import JobGraph
from lprcausal.study.spec import HPoint, StudySpec
from lprcausal.study.transplant_design import TransplantDesign, alpha_spec, cell_spec, control_spec


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
    miss_f, miss_e = graph.missing(store)
    if miss_f:
        return miss_f + miss_e, set()
    diverged = {i for i in graph.finds if FindRun(store, i).metrics.get("diverged")}
    skipped = {i for i in miss_e if any(f in diverged for f in graph.needs(i))}
    return [i for i in miss_e if i not in skipped], skipped



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
    tp = graph.spec.transplant
    if tp is not None:
        h = graph.spec.eval_point(tp.h_eval)
        title = f"{graph.spec.title}: LPR transplants"
        out["transplant"] = transplant_dataset(
            list(graph.designs.values()), reader, {**attrs, "title": title}, h.label
        )
    diverged = sum(bool(reader.find(i).metrics.get("diverged")) for i in graph.finds)
    diverged += sum(bool(m["diverged"]) for i in graph.evals if (m := reader.eval(i)))
    return out, {"runs": len(graph.run_ids()), "diverged": diverged, "skipped": len(skipped)}


# ---------------------------------------------------------------------------- decoupled
# Structured runs: the compacted network's share of the dense one (compaction_summary).
COMPACT_KEPT = {"params_kept": "parameters", "flops_kept": "forward FLOPs"}


def decoupled_dataset(graph: JobGraph, reader: RunReader, attrs: dict) -> xr.Dataset:
    spec = graph.spec
    hf, he = [p.label for p in spec.h_find], [p.label for p in spec.h_eval]
    # The design, recorded where it is known: equal H are equal TrainConfigs here.
    same_h = np.array([[not e.coupled and e.train == f.train for e in spec.h_eval]
                       for f in spec.h_find], dtype=bool)
    return decoupled_from_runs(
        reader,
        (hf, he, list(spec.seeds), list(spec.sparsities)),
        lambda f, seed: graph.find_ids[(f, seed)],
        lambda f, e, seed, s: graph.decoupled[(f, e, seed, s)],
        same_h,
        hp_coords={**_hp_coords(spec.h_find, "", "h_find"),
                   **_hp_coords(spec.h_eval, "eval_", "h_eval"), **_model_coords(spec)},
        reference_h_find=spec.reference_h_find,
        reference_h_eval=spec.reference_h_eval,
        attrs={**attrs, "title": f"{spec.title}: decoupled find/eval", "eval_mode": spec.mode},
    )


def _model_coords(spec: StudySpec) -> dict:
    """``h_find_model(h_find)``: each H_find's model as JSON, for a [model.grid] study."""
    if all(p.model is None for p in spec.h_find):
        return {}
    models = [json.dumps(spec.model_of(p).to_dict(), default=list) for p in spec.h_find]
    return {"h_find_model": ("h_find", models,
                             {"long_name": "model of each H_find ([model.grid]), JSON"})}


def decoupled_from_runs(
    reader: RunReader,
    grid: tuple[list[str], list[str], list[int], list[float]],
    find_id: Callable[[str, int], str],
    eval_id: Callable[[str, str, int, float], str],
    same_h: np.ndarray,
    *,
    hp_coords: dict,
    reference_h_find: str | None = None,
    reference_h_eval: str | None = None,
    attrs: dict,
) -> xr.Dataset:
    """The decoupled Dataset of stored runs, whoever trained them (the engine for a study,
    the user's loop for :func:`lprcausal.decoupled_runs`).

    ``grid``: the H_find labels, H_eval labels, seeds and sparsities. ``find_id(f, seed)``
    and ``eval_id(f, e, seed, s)`` name the run of each cell; ``same_h[i, j]``: H_find
    ``i`` and H_eval ``j`` are the same H. ``hp_coords``: coordinates along ``h_find`` /
    ``h_eval`` (:func:`hp_coords`). The design goes through
    :func:`lprcausal.results.build.decoupled_design`.
    """
    hf, he, seeds, sp = grid
    dims4 = ("h_find", "h_eval", "seed", "sparsity")
    evals = gather_cells((hf, he, seeds, sp), eval_id, reader)
    find_acc = np.full((len(hf), len(seeds), len(sp)), np.nan)
    pruned_acc = np.full(find_acc.shape, np.nan)
    find_div = np.zeros((len(hf), len(seeds)), dtype=bool)
    find_run = np.full(find_div.shape, "", dtype=object)
    layers, sizes = _layers(reader, [find_id(f, seeds[0]) for f in hf])
    lpr = np.full((*find_acc.shape, len(layers)), np.nan)
    unit_lpr = np.full(lpr.shape, np.nan)  # structured pruning: fraction of units removed
    kept = {k: np.full(find_acc.shape, np.nan) for k in COMPACT_KEPT}  # and its compaction
    structured = False
    for i, f in enumerate(hf):
        for j, seed in enumerate(seeds):
            run = reader.find(find_id(f, seed))
            find_run[i, j] = run.id
            find_div[i, j] = bool(run.metrics.get("diverged"))
            for k, s in enumerate(sp):
                key = run.level(s)
                if find_div[i, j]:
                    continue  # NaN weights: no accuracy and no LPR means anything
                find_acc[i, j, k] = run.metrics["find_acc"][key]
                # a run of the user's own loop has no accuracy right after pruning
                pruned_acc[i, j, k] = run.metrics.get("pruned_acc", {}).get(key, np.nan)
                ratios = run.metrics["lpr"][key]  # a [model.grid] model may lack a layer
                lpr[i, j, k] = [ratios.get(name, np.nan) for name in layers]
                if "unit_lpr" in run.metrics:
                    structured = True
                    units = run.metrics["unit_lpr"][key]
                    unit_lpr[i, j, k] = [units.get(name, np.nan) for name in layers]
                for name in COMPACT_KEPT:
                    if "compact" in run.metrics:
                        kept[name][i, j, k] = run.metrics["compact"][key][name]
    # the eval runs of a diverged find run count as diverged cells too
    diverged = evals["diverged"] | find_div[:, None, :, None]
    f3, f4 = ("h_find", "seed", "sparsity"), ("h_find", "seed", "sparsity", "layer")
    ds = xr.Dataset(
        {
            "acc": (dims4, evals["acc"], ACC),
            "val_acc": (dims4, evals["val_acc"], VAL_ACC),
            "diverged": (dims4, diverged, DIVERGED),
            "eval_run": (dims4, evals["run_id"].astype(str), RUN_ID),
            "find_acc": (f3, find_acc, _unit(
                "find-phase test accuracy of the network the mask was pruned from (the dense "
                "one for one-shot, the last IMP round for IMP)")),
            "pruned_acc": (f3, pruned_acc, _unit(
                "test accuracy right after pruning, before retraining")),
            "find_diverged": (f3[:2], find_div, {"long_name": "find run diverged (NaN/inf loss)"}),
            "find_run": (f3[:2], find_run.astype(str),
                         {"long_name": "find run id in the run store"}),
            "lpr": (f4, lpr, _unit("layerwise pruning ratio (fraction of the layer's weights "
                                   "removed)")),
            "n_params": _n_params(sizes, hf),
        },
        coords=_base_coords(hf, he, seeds, sp) | {"layer": layers},
    )
    ds["layer"].attrs = {"long_name": "prunable parameter name"}
    if structured:
        for name, what in COMPACT_KEPT.items():
            ds[name] = (f3, kept[name], _unit(
                f"fraction of the network's {what} kept by the compacted (physically smaller) "
                "network"))
        ds["unit_lpr"] = (f4, unit_lpr, _unit(
            "fraction of the layer's units (neurons / channels) removed; lpr is the fraction "
            "of its weights"))
    ds = ds.assign_coords(hp_coords)
    design, design_attrs = build.decoupled_design(
        hf, he, same_h, reference_h_find=reference_h_find, reference_h_eval=reference_h_eval,
    )
    ds = ds.assign_coords(design)
    ds.attrs = {
        **attrs,
        "n_diverged": int(diverged.sum()),
        "n_diverged_find": int(find_div.sum()),
        **design_attrs,
    }
    return ds


def _unit(long_name: str) -> dict:
    """Attrs of a dimensionless variable (accuracies, fractions, counts)."""
    return {"long_name": long_name, "units": "1"}


def _layers(reader: RunReader, find_ids: list[str]) -> tuple[list[str], np.ndarray]:
    """The prunable layer names of the find runs (one per H_find; every model's layers,
    first seen first) and their sizes ``(h_find, layer)``, 0 where a model lacks one."""
    per_arm = [{row["name"]: int(row["n_params"]) for row in reader.find(i).layers}
               for i in find_ids]
    names = list(dict.fromkeys(n for arm in per_arm for n in arm))
    return names, np.array([[arm.get(n, 0) for n in names] for arm in per_arm], dtype=np.int64)


def _n_params(sizes: np.ndarray, h_find: list[str]) -> tuple:
    """``n_params(layer)``, or ``n_params(h_find, layer)`` when a [model.grid] makes the
    layers' sizes differ between H_find."""
    if (sizes == sizes[0]).all():
        return ("layer", sizes[0], _unit("weights in the prunable layer"))
    return (("h_find", "layer"), sizes,
            _unit("weights in the prunable layer of each H_find's model (0: it has none)"))


def _base_coords(hf, he, seeds, sp) -> dict:
    return {
        "h_find": ("h_find", hf, {"long_name": "H_find label (find-phase hyperparameters)"}),
        "h_eval": (
            "h_eval",
            he,
            {"long_name": "H_eval label ('coupled': H_eval = the row's H_find)"},
        ),
        "seed": ("seed", np.array(seeds, dtype=np.int64), SEED),
        "sparsity": ("sparsity", np.array(sp, dtype=float), SPARSITY),
    }


def _hp_coords(points: tuple[HPoint, ...], prefix: str, dim: str) -> dict:
    """Coordinates along ``dim``: each hyperparameter that defines a point, and the full H."""
    fields = list(dict.fromkeys(f for p in points for f in p.fields))
    return hp_coords(
        dim, prefix, fields,
        [None if p.coupled else {f: getattr(p.train, f) for f in fields} for p in points],
        [None if p.coupled else p.train.to_dict() for p in points],
    )


def hp_coords(dim: str, prefix: str, fields: list[str], values: list[dict | None],
              configs: list[dict | None]) -> dict:
    """Coordinates along ``dim`` (``h_find`` or ``h_eval``): ``<prefix><field>`` for each of
    ``fields`` (``values[i][field]``) and ``<dim>_config``, the full H of each label as JSON
    (``configs[i]``). None marks the ``coupled`` arm (NaN or '' in the field coordinates)."""
    phase = "H_find" if dim == "h_find" else "H_eval"
    out: dict[str, Any] = {}
    for f in fields:
        column = [None if v is None else v.get(f) for v in values]
        attrs = {"long_name": f"{phase} {f}"}
        if f in HP_UNITS:
            attrs["units"] = HP_UNITS[f]
        out[prefix + f] = (dim, _coord_values(column), attrs)
    text = ["coupled" if c is None else json.dumps(c, sort_keys=True) for c in configs]
    out[f"{dim}_config"] = (
        dim,
        np.array(text, dtype=object).astype(str),
        {"long_name": f"full {phase} of each label (JSON)"},
    )
    return out



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
def transplant_dataset(
    designs: list[TransplantDesign], reader: RunReader, attrs: dict, h_eval: str
) -> xr.Dataset:
    """The transplant Dataset of ``designs`` (one per H_find pair, equal seeds, levels,
    alphas, controls and H_eval labelled ``h_eval``): the cells a study's [transplant]
    table and ``lprcausal transplant`` both write."""
    first = designs[0]
    runs = [dict(zip(d.seeds(), d.pairs, strict=True)) for d in designs]

    def hashed(spec) -> str | None:
        return None if spec is None else spec_hash(spec)  # None: not in the design

    def main(i, w, lpr, seed, s):
        return hashed(cell_spec(designs[i], runs[i][seed], w, lpr, s, seed))

    def dose(i, a, seed, s):
        return spec_hash(alpha_spec(designs[i], runs[i][seed], a, s, seed))

    def control(i, c, w, seed, s):
        return hashed(control_spec(designs[i], runs[i][seed], w, c, s, seed))

    return transplant_from_runs(
        [d.names for d in designs], list(first.seeds()), list(first.sparsities), reader,
        {**attrs, "h_eval": h_eval,
         "h_eval_config": json.dumps(first.train.to_dict(), sort_keys=True),
         "eval_mode": first.mode},
        cell_id=main, alphas=first.alphas, alpha_id=dose,
        controls=first.controls, control_id=control,
        designs=[d.design for d in designs], matches=[d.match for d in designs],
    )


def transplant_from_runs(
    names: list[tuple[str, str]],
    seeds: list[int],
    sparsities: list[float],
    reader: RunReader,
    attrs: dict,
    *,
    cell_id: Callable[..., str | None],
    alphas: tuple[float, ...] = (),
    alpha_id: Callable[..., str] | None = None,
    controls: tuple[str, ...] = (),
    control_id: Callable[..., str | None] | None = None,
    designs: list[str] | None = None,
    matches: list[str] | None = None,
) -> xr.Dataset:
    """The transplant Dataset of stored eval runs, whoever trained them (the engine, or
    the user's loop for :func:`lprcausal.transplant_runs`).

    ``names``: the (a, b) H_find labels of each pair. ``cell_id(pair_index, w, lpr, seed,
    s)`` (``w``, ``lpr`` in 0 = a, 1 = b), ``alpha_id(pair_index, alpha, seed, s)`` and
    ``control_id(pair_index, control, w, seed, s)`` name the run of each cell (None: a
    cell the pair's design lacks). ``designs`` / ``matches``: each pair's design and match
    rule (default factorial, by name). ``attrs``
    should carry ``h_eval``, ``h_eval_config`` and ``eval_mode``; ``n_diverged`` is added.
    """
    ab, index = [0, 1], list(range(len(names)))
    ds = build.transplant_dataset(
        names,
        seeds,
        sparsities,
        gather_cells((index, ab, ab, seeds, sparsities), cell_id, reader),
        alphas=alphas,
        alpha_cells=(gather_cells((index, list(alphas), seeds, sparsities), alpha_id, reader)
                     if alphas else None),
        controls=controls,
        control_cells=(
            gather_cells((index, list(controls), ab, seeds, sparsities), control_id, reader)
            if controls else None
        ),
        designs=designs,
        matches=matches,
    )
    n_div = sum(int(ds[v].sum()) for v in ds.data_vars if v.startswith("diverged"))
    ds.attrs = {**attrs, "n_diverged": n_div}
    return ds


# ---------------------------------------------------------------------------- shared
def gather_cells(
    values: tuple, run_id_of: Callable[..., str | None], reader: RunReader
) -> dict[str, np.ndarray]:
    """acc, val_acc, diverged, run_id and mask_sparsity over the Cartesian grid of
    ``values``; a cell whose run id is None is not in the design (NaN, not diverged)."""
    shape = tuple(len(v) for v in values)
    acc = np.full(shape, np.nan)
    val = np.full(shape, np.nan)
    mask_sparsity = np.full(shape, np.nan)
    div = np.zeros(shape, dtype=bool)
    ids = np.full(shape, "", dtype=object)
    for index in np.ndindex(*shape):
        run_id = run_id_of(*(v[i] for v, i in zip(values, index, strict=True)))
        if run_id is None:
            continue
        m = reader.eval(run_id)
        if m is None:
            div[index] = True
            continue
        ids[index] = run_id
        div[index] = bool(m["diverged"])
        acc[index] = np.nan if div[index] else m["test_acc"]
        val[index] = np.nan if div[index] else m["final_val_acc"]
        mask_sparsity[index] = m.get("sparsity", np.nan)
    return {"acc": acc, "val_acc": val, "diverged": div, "run_id": ids,
            "mask_sparsity": mask_sparsity}


def _attrs(spec: StudySpec, command: str) -> dict:
    made = provenance_attrs(f"{command or 'lprcausal study collect'} {spec.source}")
    return {
        "study": spec.name,
        **made,
        "spec": json.dumps(spec.raw, sort_keys=False, default=str),
        "spec_file": spec.source,
        "description": spec.description,
        **setup_attrs(spec.data, spec.model, spec.prune),
    }


# Attrs that say how and when a file was made; equal results differ only in these.
PROVENANCE_ATTRS = ("study", "source", "history", "spec", "spec_file", "description", "title")


def provenance_attrs(command: str) -> dict:
    """``source`` (lprcausal version, git commit) and ``history`` (UTC time: command)."""
    commit = git_commit()
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {
        "source": f"lprcausal {__version__}" + (f" (git {commit})" if commit else ""),
        "history": f"{now}: {command}".strip(),
    }


def setup_attrs(data: DataConfig, model: ModelConfig, prune: PruneConfig) -> dict:
    """The data, model and pruning of the find runs, as JSON."""
    return {
        "data": json.dumps(data.to_dict(), default=list),
        "model": json.dumps(model.to_dict(), default=list),
        "prune": json.dumps(prune.to_dict(), default=list),
    }
