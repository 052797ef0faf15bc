"""Result Datasets of runs made by the user's own loop: the decoupled grid and transplants.

``decoupled_runs`` trains (or reuses) the find runs of every H_find and seed with
:func:`lprcausal.find` and their eval runs under every H_eval with
:func:`lprcausal.evaluate`; ``transplant_runs`` trains the 2x2 transplant factorial of
two find runs (plus dose-response and controls) with :func:`lprcausal.evaluate`. Both
return the Dataset a study writes (``decoupled.nc`` / ``transplant.nc``, built by
:mod:`lprcausal.study.collect` through :mod:`lprcausal.results.build`, design
included) and, given ``results=``, save it there, so ``lprcausal stats RESULTS`` tests it.
Hyperparameters are dicts; a key whose value differs between labels becomes a
coordinate (``lr(h_find)``, ``eval_lr(h_eval)``), and each label's full dict is JSON in
``h_find_config`` / ``h_eval_config``.

>>> import tempfile, torch, lprcausal as lpc
>>> x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
>>> y = (x[:, 0] > 0).long()
>>> def build():
...     return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> def train(model, hp, masks, callback):
...     opt = torch.optim.SGD(model.parameters(), lr=hp["lr"])
...     for it, (xb, yb) in enumerate(callback.batches(x, y, 16, 8)):
...         callback.at_iteration(it)
...         opt.zero_grad()
...         torch.nn.functional.cross_entropy(model(xb), yb).backward()
...         opt.step()
...     return (model(x).argmax(1) == y).float().mean().item()
>>> tmp = tempfile.TemporaryDirectory()
>>> ds = lpc.decoupled_runs(build, train, {"lr=0.1": {"lr": 0.1}, "lr=0.5": {"lr": 0.5}},
...                         [0.5], h_eval={"lr=0.1": {"lr": 0.1}}, seeds=(0, 1),
...                         store=tmp.name, code_version="doc", results=tmp.name)
>>> ds["acc"].dims, ds["h_eval"].values.tolist()
(('h_find', 'h_eval', 'seed', 'sparsity'), ['coupled', 'lr=0.1'])
>>> ds["is_coupled"].values.tolist()
[[True, True], [True, False]]
>>> a, b = ds["find_run"].sel(seed=0).values
>>> tds = lpc.transplant_runs(build, train, str(a), str(b), hparams={"lr": 0.1},
...                           store=tmp.name, code_version="doc", results=tmp.name)
>>> tds["pair"].values.tolist(), tds["acc"].shape
(['lr=0.1->lr=0.5'], (1, 2, 2, 1, 1))
>>> tmp.cleanup()
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from torch import nn

from lprcausal.api.own_loop import (
    Train,
    code_identity,
    eval_spec,
    evaluate,
    find,
    hparams_json,
)
from lprcausal.config import CONTROLS, PruneConfig, check_sparsity, matching_level, spec_hash
from lprcausal.errors import LprError, check_distinct
from lprcausal.pipeline import FindRun
from lprcausal.pipeline.masks import check_same_layers
from lprcausal.results.check import check_decoupled, check_transplant
from lprcausal.results.io import save_dataset
from lprcausal.results.schema import COUPLED, pair_label
from lprcausal.store import RunStore
from lprcausal.study.collect import (
    RunReader,
    decoupled_from_runs,
    hp_coords,
    provenance_attrs,
    transplant_from_runs,
)
from lprcausal.study.transplant_design import pair_runs

HParams = Mapping[str, Any]


def _grid(table: Mapping[str, HParams] | None, field: str) -> dict[str, dict]:
    """``label -> hparams`` checked: string labels, hparams of JSON values."""
    if not isinstance(table, Mapping):
        raise LprError(
            f"{field} = {table!r} is not valid: expected a dict from label to hparams dict, "
            "e.g. {'lr=0.1': {'lr': 0.1}, 'lr=0.01': {'lr': 0.01}}."
        )
    out = {}
    for label, hp in table.items():
        if not isinstance(label, str) or not label or label == COUPLED:
            raise LprError(
                f"{field} label {label!r} is not valid: expected a non-empty string other "
                f"than {COUPLED!r} (the name of the coupled arm)."
            )
        if not isinstance(hp, Mapping):
            raise LprError(
                f"{field}[{label!r}] = {hp!r} is not valid: expected a dict of hyperparameters."
            )
        out[label] = hparams_json(hp)[0]
    return out


def _canonical(hp: Mapping) -> dict:
    """The hparams as their JSON reads back (tuples as lists): what identifies a run."""
    return json.loads(hparams_json(hp)[1])


def _varying(dicts: list[dict]) -> list[str]:
    """Keys whose value differs between the dicts (present in some and not others included)."""
    keys = list(dict.fromkeys(k for d in dicts for k in d))
    return [k for k in keys if len({json.dumps(d.get(k), sort_keys=True) for d in dicts}) > 1]


def _seeds(seeds: Sequence[int], field: str = "seeds") -> list[int]:
    out = list(seeds)
    if not out or any(isinstance(s, bool) or not isinstance(s, int) for s in out) or len(
            set(out)) != len(out):
        raise LprError(
            f"{field} = {seeds!r} is not valid: expected distinct integer replicate seeds, "
            "e.g. (0, 1, 2)."
        )
    return out


def _save(ds: xr.Dataset, results: str | os.PathLike | None, name: str) -> None:
    if results is not None:
        save_dataset(ds, Path(results) / f"{name}.nc")


def decoupled_runs(
    build_model: Callable[[], nn.Module],
    train: Train,
    h_find: Mapping[str, HParams],
    sparsities: Sequence[float],
    *,
    h_eval: Mapping[str, HParams] | None = None,
    coupled: bool = True,
    seeds: Sequence[int] = (0,),
    method: str = "oneshot",
    rate: float = 0.2,
    rewind: str = "init",
    mode: str = "rewind",
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    reference_h_find: str | None = None,
    reference_h_eval: str | None = None,
    store: str | os.PathLike | RunStore = "runs",
    code_version: str | None = None,
    results: str | os.PathLike | None = None,
) -> xr.Dataset:
    """The decoupled find/eval grid with your own loop: ``acc(h_find, h_eval, seed,
    sparsity)`` as ``lprcausal study run`` writes it.

    For each H_find label (``h_find``: label -> hparams) and seed, a find run
    (:func:`lprcausal.find` with ``method``, ``rate``, ``rewind``); for each of its levels,
    an eval run (:func:`lprcausal.evaluate`, ``mode``) under each H_eval arm: ``coupled``
    (the find run's own hparams; ``coupled=True``) and each fixed H_eval of ``h_eval``.
    The find and eval runs of a seed share that seed. Stored runs are reused. The design is
    recorded as a study records it: cells whose H_eval equals their H_find are coupled;
    ``reference_h_find`` / ``reference_h_eval`` name the reference arms (else chosen as
    :func:`lprcausal.results.build.decoupled_design` says). ``train`` may return
    ``{"test_acc": ..., "val_acc": ...}``; ``val_acc`` fills the Dataset's ``val_acc``.
    With ``results``, saves ``<results>/decoupled.nc`` for ``lprcausal stats``.
    """
    st = store if isinstance(store, RunStore) else RunStore(store)
    finds_hp = _grid(h_find, "h_find")
    evals_hp = _grid(h_eval or {}, "h_eval")
    if not finds_hp:
        raise LprError("h_find = {} is empty: expected at least one H_find label -> hparams.")
    if not coupled and not evals_hp:
        raise LprError(
            "decoupled_runs has no H_eval arm: expected coupled=True or at least one h_eval."
        )
    if reference_h_find is not None and reference_h_find not in finds_hp:
        raise LprError(
            f"reference_h_find = {reference_h_find!r} is not an h_find label: expected one "
            f"of {list(finds_hp)}."
        )
    if reference_h_eval is not None and reference_h_eval not in evals_hp:
        raise LprError(
            f"reference_h_eval = {reference_h_eval!r} is not an h_eval label: expected one "
            f"of {list(evals_hp)}."
        )
    seeds = _seeds(seeds)
    levels = [check_sparsity(s) for s in sparsities]
    code = code_identity(code_version, build_model, train)
    hf, he = list(finds_hp), [COUPLED] * coupled + list(evals_hp)
    find_ids: dict[tuple[str, int], str] = {}
    eval_ids: dict[tuple[str, str, int, float], str] = {}
    skipped: set[str] = set()
    for f in hf:
        for seed in seeds:
            run = find(build_model, train, levels, method=method, rate=rate, rewind=rewind,
                       hparams=finds_hp[f], seed=seed, store=st, code_version=code,
                       include=include, exclude=exclude)
            find_ids[(f, seed)] = run.id
            for e in he:
                hp = finds_hp[f] if e == COUPLED else evals_hp[e]
                for s in levels:
                    if run.metrics.get("diverged"):
                        # as a study: no eval of NaN weights; the cell reads as diverged
                        run_id = spec_hash(eval_spec(st, run, s, code, hp, mode=mode, seed=seed))
                        skipped.add(run_id)
                    else:
                        run_id = evaluate(run.id, build_model, train, s, mode=mode, hparams=hp,
                                          seed=seed, store=st, code_version=code).id
                    eval_ids[(f, e, seed, s)] = run_id
    canon_f = [_canonical(finds_hp[f]) for f in hf]
    canon_e = {e: _canonical(h) for e, h in evals_hp.items()}
    fixed = list(canon_e.values())
    same_h = np.array([[e != COUPLED and canon_e[e] == canon_f[i] for e in he]
                       for i in range(len(hf))], dtype=bool)
    coords = {
        **hp_coords("h_find", "", _varying(canon_f), canon_f, canon_f),
        **hp_coords("h_eval", "eval_", _varying(fixed),
                    [None] * coupled + fixed, [None] * coupled + fixed),
    }
    prune = PruneConfig(method=method, sparsities=tuple(levels), rate=rate, rewind=rewind)
    ds = decoupled_from_runs(
        RunReader(st, skipped),
        (hf, he, seeds, levels),
        lambda f, seed: find_ids[(f, seed)],
        lambda f, e, seed, s: eval_ids[(f, e, seed, s)],
        same_h,
        hp_coords=coords,
        reference_h_find=reference_h_find,
        reference_h_eval=reference_h_eval,
        attrs={
            **provenance_attrs("lprcausal.decoupled_runs"),
            "title": "decoupled find/eval (your own training loop)",
            "code": code,
            "prune": json.dumps(prune.to_dict(), default=list),
            "eval_mode": mode,
        },
    )
    check_decoupled(ds)
    _save(ds, results, "decoupled")
    return ds


def _pair_names(st: RunStore, pairs: list[tuple[str, str]], sources: list[str],
                targets: list[str]) -> tuple[str, str]:
    """H_find labels of a and b: ``key=value`` of the hparams that tell them apart (runs
    of your own loop), else the references as given, else ``a`` and ``b``."""
    hps = []
    for side in (0, 1):
        found = set()
        for pair in pairs:
            run = FindRun(st, pair[side])
            found.add(getattr(run.spec, "hparams", None))
        hps.append(found.pop() if len(found) == 1 else None)
    if None not in hps:
        a, b = (json.loads(h) for h in hps)
        keys = _varying([a, b])
        if keys:
            return tuple(",".join(f"{k}={json.dumps(d.get(k))}" for k in keys)  # type: ignore
                         for d in (a, b))
    names = ",".join(sources), ",".join(targets)
    return names if names[0] != names[1] else ("a", "b")


def transplant_runs(
    build_model: Callable[[], nn.Module],
    train: Train,
    source: str | Sequence[str],
    target: str | Sequence[str],
    sparsities: Sequence[float] = (),
    *,
    hparams: HParams | None = None,
    seeds: Sequence[int] | None = None,
    alphas: Sequence[float] = (),
    controls: Sequence[str] = (),
    mode: str = "rewind",
    names: tuple[str, str] | None = None,
    h_eval_label: str | None = None,
    store: str | os.PathLike | RunStore = "runs",
    code_version: str | None = None,
    results: str | os.PathLike | None = None,
) -> xr.Dataset:
    """The LPR transplant factorial with your own loop: weights from {a, b} x LPR from
    {a, b}, ``acc(pair, w_src, lpr_src, seed, sparsity)`` as ``lprcausal transplant``
    writes it (one pair).

    ``source`` (a) and ``target`` (b) are find runs with trained weights (of
    :func:`lprcausal.find` or the engine), one each or one per seed (paired by seed);
    ``sparsities`` default to the levels both have. Cell (w, l) is
    ``lprcausal.evaluate(w, ..., mask="transplant", lpr_from=l)``: w's weights pruned
    layerwise at l's LPR, started from w's rewind point (``mode``) and trained by ``train``
    with ``hparams`` (H_eval); ``alphas`` add ``mask="interp"`` cells on a's weights,
    ``controls`` control masks on both. All cells of a pair share its eval seed (``seeds``:
    one per pair, default each source run's seed), so contrasts are paired. Stored runs
    are reused. ``names``: the labels of a and b (default: the hparams that tell them
    apart); ``h_eval_label``: the label of H_eval (default: a's or b's label when its
    hparams are theirs, else ``H_eval``). With ``results``, saves
    ``<results>/transplant.nc`` for ``lprcausal stats``.
    """
    st = store if isinstance(store, RunStore) else RunStore(store)
    sources = [source] if isinstance(source, str) else list(source)
    targets = [target] if isinstance(target, str) else list(target)
    pairs = pair_runs(st, sources, targets)
    same = [a for a, b in pairs if a == b]
    if same:
        raise LprError(
            f"source and target pair run {same[0]} with itself: expected two different find "
            "runs per seed (a transplant of a run onto itself has every contrast 0)."
        )
    a0, b0 = FindRun(st, pairs[0][0], "source"), FindRun(st, pairs[0][1], "target")
    if sparsities:
        levels = [check_sparsity(s) for s in sparsities]
    else:
        levels = [s for s in a0.levels if matching_level(b0.levels, s) is not None]
    if not levels:
        raise LprError(
            f"runs {a0.id} and {b0.id} share no sparsity level: expected sparsities= naming "
            "levels both have."
        )
    for a_id, b_id in pairs:
        a, b = FindRun(st, a_id, "source"), FindRun(st, b_id, "target")
        check_same_layers(a, b)
        for s in levels:
            a.level(s, "sparsity")
            b.level(s, "sparsity")
    # a repeat would train and report the same cells twice (one replicate counted as two)
    check_distinct("sparsities:", levels)
    check_distinct("alphas:", [float(al) for al in alphas])
    check_distinct("controls:", controls)
    for al in alphas:
        if not 0 <= al <= 1:
            raise LprError(f"alpha = {al!r} is not valid: expected 0 <= alpha <= 1.")
    for c in controls:
        if c not in CONTROLS:
            raise LprError(f"control = {c!r} is not known: expected one of {', '.join(CONTROLS)}.")
    eval_seeds = (_seeds(seeds) if seeds is not None
                  else _seeds([FindRun(st, a).spec.seed for a, _ in pairs], "source seeds"))
    if len(eval_seeds) != len(pairs):
        raise LprError(
            f"seeds gives {len(eval_seeds)} seeds for {len(pairs)} run pairs: expected one "
            "eval seed per pair."
        )
    hp, hp_text = hparams_json(hparams)
    code = code_identity(code_version, build_model, train)
    ids: dict[tuple, str] = {}

    def run(key: tuple, find_id: str, s: float, seed: int, **mask) -> None:
        ids[key] = evaluate(find_id, build_model, train, s, mode=mode, hparams=hp, seed=seed,
                            store=st, code_version=code, **mask).id

    for pair, seed in zip(pairs, eval_seeds, strict=True):
        for s in levels:
            for w in (0, 1):
                for lp in (0, 1):
                    run(("cell", w, lp, seed, s), pair[w], s, seed,
                        mask="transplant", lpr_from=pair[lp])
            for al in alphas:
                run(("alpha", al, seed, s), pair[0], s, seed, mask="interp",
                    lpr_from=pair[0], lpr_to=pair[1], alpha=al)
            for c in controls:
                for w in (0, 1):
                    run(("control", c, w, seed, s), pair[w], s, seed, mask=c, mask_seed=seed)
    labels = names or _pair_names(st, pairs, sources, targets)
    if h_eval_label is None:
        own = [json.loads(h) if (h := getattr(FindRun(st, r).spec, "hparams", None)) else None
               for r in pairs[0]]
        h_eval_label = next((lab for lab, h in zip(labels, own, strict=True) if h == hp),
                            "H_eval")
    ds = transplant_from_runs(
        [tuple(labels)], eval_seeds, levels, RunReader(st, set()),
        {
            **provenance_attrs("lprcausal.transplant_runs"),
            "title": f"LPR transplant {pair_label(*labels)} (your own training loop)",
            "code": code,
            "h_eval": h_eval_label,
            "h_eval_config": json.dumps(json.loads(hp_text), sort_keys=True),
            "eval_mode": mode,
        },
        cell_id=lambda _i, w, lp, seed, s: ids[("cell", w, lp, seed, s)],
        alphas=tuple(alphas),
        alpha_id=lambda _i, al, seed, s: ids[("alpha", al, seed, s)],
        controls=tuple(controls),
        control_id=lambda _i, c, w, seed, s: ids[("control", c, w, seed, s)],
    )
    check_transplant(ds)
    _save(ds, results, "transplant")
    return ds
