"""Find and evaluate with the user's own training loop; the runs land in the run store.

``find(build_model, train, sparsities, ...)`` and ``evaluate(run, build_model, train, ...)``
do what ``lprcausal find`` / ``eval`` do, with the user's ``train(model, hparams, masks,
callback)`` in place of the engine. A run's identity (its id) is the user's
``code_version`` (or the SHA-256 of the source of ``build_model`` and ``train``), the
``hparams`` dict (canonical JSON), the pruning settings and the seed; asking again for
the same run reuses it. Stored like any run, they work with ``lprcausal runs list``,
``lpr``, ``lpr --compare``, ``masks export`` and ``transplant --target CKPT``;
:mod:`lprcausal.api.own_results` turns them into the result Datasets ``lprcausal stats``
reads.

Seeds, as in the engine: ``build_model()`` is called with torch's global generator
seeded by ``derive_seed(seed, "init")`` (so a built-in model gets the engine's
initialization), and the callback carries ``derive_seed(seed, "find-data")`` (find) or
``derive_seed(seed, "eval-data")`` (evaluate) as the data-order seed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lprcausal.api.apply import apply_masks
from lprcausal.api.callback import Callback, state_copy
from lprcausal.api.weights import prunable, unwrap
from lprcausal.config import (
    MaskSpec,
    OwnEvalSpec,
    OwnFindSpec,
    PruneConfig,
    derive_seed,
)
from lprcausal.errors import LprError
from lprcausal.models import layer_table
from lprcausal.pipeline.ensure import ensure_runs
from lprcausal.pipeline.masks import eval_mask
from lprcausal.pipeline.runs import EvalRun, FindRun, join_levels, level_key
from lprcausal.provenance import provenance
from lprcausal.pruning import global_magnitude_masks, layerwise_ratios, overall_sparsity
from lprcausal.store import RunStore

Train = Callable[[nn.Module, dict, Any, Callback], Any]


def code_identity(code_version: str | None, *functions: Callable) -> str:
    """``code_version`` if given, else ``sha256:<hex>`` of the functions' source text."""
    if code_version is not None:
        if not isinstance(code_version, str) or not code_version.strip():
            raise LprError(
                f"code_version = {code_version!r} is not valid: expected a non-empty string "
                "naming the version of your model and training code."
            )
        return code_version
    h = hashlib.sha256()
    for fn in functions:
        try:
            h.update(inspect.getsource(fn).encode())
        except (OSError, TypeError):
            raise LprError(
                f"the source of {getattr(fn, '__name__', fn)!r} cannot be read to identify "
                "your code: expected code_version='...' naming its version."
            ) from None
    return f"sha256:{h.hexdigest()}"


def hparams_json(hparams: Mapping[str, Any] | None) -> tuple[dict, str]:
    """The hparams dict and its canonical JSON (its part of the run's identity)."""
    hp = dict(hparams or {})
    try:
        text = json.dumps(hp, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise LprError(
            f"hparams = {hp!r} is not valid ({exc}): expected a dict of JSON values (numbers, "
            "strings, bools, lists, dicts), which identify the run."
        ) from None
    return hp, text


def _store(store: str | os.PathLike | RunStore) -> RunStore:
    return store if isinstance(store, RunStore) else RunStore(store)


def _build(build_model: Callable[[], nn.Module], seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init"))
        model = build_model()
    if not isinstance(model, nn.Module):
        raise LprError(
            f"build_model() returned {type(model).__name__}: expected an nn.Module."
        )
    return model


def _test_acc(returned: Any) -> tuple[float, dict]:
    """train's return value: None, an accuracy, or a dict of JSON metrics with 'test_acc'."""
    if returned is None:
        return math.nan, {}
    if isinstance(returned, numbers.Real) and not isinstance(returned, bool):
        return float(returned), {"test_acc": float(returned)}
    if isinstance(returned, Mapping):
        _, text = hparams_json(returned)
        out = json.loads(text)
        acc = out.get("test_acc", math.nan)
        return (float(acc) if isinstance(acc, numbers.Real) else math.nan), out
    raise LprError(
        f"train returned {type(returned).__name__}: expected None, the test accuracy (a "
        "number), or a dict of metrics with 'test_acc'."
    )


def _run_train(train: Train, model, hparams, masks, callback) -> tuple[float, dict]:
    handle = apply_masks(model, masks)
    try:
        returned = train(model, hparams, handle, callback)
    finally:
        handle.remove()
    return _test_acc(returned)


def find(
    build_model: Callable[[], nn.Module],
    train: Train,
    sparsities: Sequence[float],
    *,
    method: str = "oneshot",
    rate: float = 0.2,
    rewind: str = "init",
    hparams: Mapping[str, Any] | None = None,
    seed: int = 0,
    store: str | os.PathLike | RunStore = "runs",
    code_version: str | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    name: str | None = None,
) -> FindRun:
    """Find masks with your own loop: train dense, prune globally by magnitude to every
    target sparsity (``method="oneshot"``) or iteratively, ``rate`` of the remaining
    weights per round, rewinding to ``rewind`` between rounds (``method="imp"``).

    ``build_model()`` returns a fresh model; ``train(model, hparams, masks, callback)``
    trains it in place (``masks`` is the :class:`MaskHandle` holding the round's mask;
    empty in the dense round) and returns its test accuracy, a dict of metrics with
    ``test_acc``, or None. ``callback`` must mark the rewind point unless it is
    ``"init"`` (see :mod:`lprcausal.api.callback`). The prunable set is
    ``prunable(model, include, exclude)``. Returns the stored run (``.id``,
    ``.mask(s)``, ``.levels``, ``.metrics``); ``name`` gives it a friendly name.

    Example (``studies/own_loop.py`` is a complete one)::

        run = lpc.find(lambda: Net(), my_train, [0.5, 0.8], method="imp", rewind="1ep",
                       hparams={"lr": 0.05, "epochs": 4}, seed=0, store="runs")
        masks = run.mask(0.8)
    """
    prune = PruneConfig(method=method, sparsities=tuple(sparsities), rate=rate, rewind=rewind)
    hp, hp_text = hparams_json(hparams)
    spec = OwnFindSpec(
        code=code_identity(code_version, build_model, train),
        hparams=hp_text,
        prune=prune,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        seed=seed,
    )
    st = _store(store)

    def compute(specs, ids, done):
        _find_one(st, specs[0], ids[0], build_model, train, hp)
        done(0)

    [run_id] = ensure_runs(st, [spec], compute)
    if name is not None:
        st.set_name(name, run_id)
    return FindRun(st, run_id)


def _find_one(st: RunStore, spec: OwnFindSpec, run_id: str, build_model, train, hp) -> None:
    t0 = time.perf_counter()
    model = _build(build_model, spec.seed)
    names = list(prunable(model, spec.include or None, spec.exclude or None))
    init = state_copy(model)
    data_seed = derive_seed(spec.seed, "find-data")
    levels = spec.prune.levels()
    callback = Callback(model, spec.seed, data_seed, spec.prune.rewind)
    acc, metrics = _run_train(train, model, hp, {}, callback)
    if callback.wants_rewind:
        raise LprError(
            f"train never marked the rewind point rewind = {spec.prune.rewind!r}: expected it "
            "to call callback.at_iteration(it) at the start of every iteration (or "
            "callback.at_epoch(ep) at the start of every epoch); it reached iteration "
            f"{callback.iterations_seen}. Nothing was stored."
        )
    rewind_state = callback.rewind_state or init
    final = state_copy(model)
    rounds = [metrics]
    masks: dict[float, dict] = {}
    sources: dict[float, dict] = {}
    find_acc: dict[float, float] = {}
    diverged = False
    state = final
    while True:
        params = {n: state[n] for n in names}
        if not all(bool(torch.isfinite(p).all()) for p in params.values()):
            # as the engine: ranked with non-finite weights as 0, no further round trained
            diverged = True
            params = {n: torch.nan_to_num(p, nan=0.0, posinf=0.0, neginf=0.0)
                      for n, p in params.items()}
        todo = levels if spec.prune.method == "oneshot" else [levels[len(masks)]]
        for level in todo:
            prior = masks[levels[len(masks) - 1]] if masks and spec.prune.method == "imp" else None
            masks[level] = global_magnitude_masks(params, level, prior=prior)
            sources[level], find_acc[level] = state, acc
        if len(masks) == len(levels):
            break
        if diverged:
            continue
        unwrap(model).load_state_dict(rewind_state)
        callback = Callback(model, spec.seed, data_seed)
        acc, metrics = _run_train(train, model, hp, masks[todo[-1]], callback)
        rounds.append(metrics)
        state = state_copy(model)
    _write_find(st, spec, run_id, model, names, levels, masks, sources, find_acc,
                rewind_state, final, rounds, diverged, time.perf_counter() - t0)


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(unwrap(model).parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _write_find(st, spec, run_id, model, names, levels, masks, sources, find_acc,
                rewind_state, final, rounds, diverged, seconds) -> None:
    metrics = {
        "levels": levels,
        "find_acc": {level_key(s): find_acc[s] for s in levels},
        "lpr": {level_key(s): layerwise_ratios(masks[s]) for s in levels},
        "dense_test_acc": rounds[0].get("test_acc", math.nan),
        "rounds": rounds,
        "diverged": diverged,
    }
    record = {
        "id": run_id,
        "kind": spec.kind,
        "spec": spec.to_dict(),
        "prunable": names,
        "layers": layer_table(unwrap(model), names),
        "provenance": provenance(_device_of(model), seconds),
    }
    with st.new_run(run_id) as w:
        w.json("run.json", record)
        w.json("metrics.json", metrics)
        w.tensors("weights_rewind.safetensors", rewind_state)
        w.tensors("weights_final.safetensors", final)
        w.tensors("masks.safetensors", join_levels(masks))
        if spec.prune.method == "imp":
            w.tensors("weights_levels.safetensors", join_levels(sources))


def evaluate(
    run: str,
    build_model: Callable[[], nn.Module],
    train: Train,
    sparsity: float,
    *,
    mask: str = "own",
    lpr_from: str | None = None,
    lpr_to: str | None = None,
    alpha: float | None = None,
    mask_seed: int = 0,
    mode: str = "rewind",
    hparams: Mapping[str, Any] | None = None,
    seed: int = 0,
    store: str | os.PathLike | RunStore = "runs",
    code_version: str | None = None,
    name: str | None = None,
) -> EvalRun:
    """Evaluate a mask of find run ``run`` (any kind) with your own loop: start from its
    rewind point (``mode="rewind"``) or the weights the mask was pruned from
    (``"finetune"``), hold the mask with :func:`apply_masks`, and call ``train``.

    ``mask`` is ``own``, a control (``shuffle``, ``random``, ``uniform``, ``erk``,
    ``lamp``), ``transplant`` (this run's weights at the LPR of run ``lpr_from``) or
    ``interp`` (at ``(1-alpha)*LPR(lpr_from) + alpha*LPR(lpr_to)``), as in ``lprcausal
    eval``. ``train`` returns the test accuracy, or a dict of metrics with ``test_acc``
    and optionally ``val_acc`` (the Datasets' ``val_acc``). Returns the stored eval run
    (``.metrics["test_acc"]``, ``.mask()``).
    """
    st = _store(store)
    find_run = FindRun(st, st.resolve(run, "run"), "run")
    hp, _ = hparams_json(hparams)
    spec = eval_spec(st, find_run, sparsity, code_identity(code_version, build_model, train),
                     hp, mask=mask, lpr_from=lpr_from, lpr_to=lpr_to, alpha=alpha,
                     mask_seed=mask_seed, mode=mode, seed=seed)

    def compute(specs, ids, done):
        _evaluate_one(st, specs[0], ids[0], find_run, build_model, train, hp)
        done(0)

    [run_id] = ensure_runs(st, [spec], compute)
    if name is not None:
        st.set_name(name, run_id)
    return EvalRun(st, run_id)


def eval_spec(st: RunStore, find_run: FindRun, sparsity: float, code: str, hparams: Mapping,
              *, mask: str = "own", lpr_from: str | None = None, lpr_to: str | None = None,
              alpha: float | None = None, mask_seed: int = 0, mode: str = "rewind",
              seed: int = 0) -> OwnEvalSpec:
    """The description (hence the id) of an eval of ``find_run`` by the user's loop."""
    find_run.level(sparsity)
    _, hp_text = hparams_json(hparams)
    refs = {k: (st.resolve(v, k) if v else None) for k, v in
            (("lpr_from", lpr_from), ("lpr_to", lpr_to))}
    return OwnEvalSpec(
        find=find_run.id, sparsity=float(sparsity), code=code, hparams=hp_text,
        mask=MaskSpec(kind=mask, alpha=alpha, seed=mask_seed, **refs), mode=mode, seed=seed,
    )


def _evaluate_one(st, spec: OwnEvalSpec, run_id: str, find_run: FindRun, build_model, train,
                  hp) -> None:
    t0 = time.perf_counter()
    masks = eval_mask(st, spec, find_run)
    start = find_run.rewind_state() if spec.mode == "rewind" else find_run.source_state(spec.sparsity)
    model = _build(build_model, spec.seed)
    try:
        unwrap(model).load_state_dict(start)
    except RuntimeError as exc:
        raise LprError(
            f"build_model() does not build the model of run {find_run.id}: its weights do not "
            f"load ({str(exc).splitlines()[0]}). Expected the same architecture."
        ) from None
    callback = Callback(model, spec.seed, derive_seed(spec.seed, "eval-data"))
    acc, train_metrics = _run_train(train, model, hp, masks, callback)
    final = state_copy(model)
    val = train_metrics.get("val_acc", math.nan)
    metrics = {
        **train_metrics,
        "test_acc": acc,
        # as the engine's eval metrics, so the results Datasets read both alike
        "final_val_acc": float(val) if isinstance(val, numbers.Real) else math.nan,
        "diverged": not all(bool(torch.isfinite(t).all()) for t in final.values()
                            if t.is_floating_point()),
        "sparsity": overall_sparsity(masks),
        "lpr": layerwise_ratios(masks),
        "find_acc": find_run.find_acc(spec.sparsity),
    }
    parents = sorted({find_run.id} | {r for r in (spec.mask.lpr_from, spec.mask.lpr_to) if r})
    record = {
        "id": run_id,
        "kind": spec.kind,
        "spec": spec.to_dict(),
        "parents": parents,
        "prunable": find_run.prunable,
        "layers": find_run.layers,
        "provenance": provenance(_device_of(model), time.perf_counter() - t0),
    }
    with st.new_run(run_id) as w:
        w.json("run.json", record)
        w.json("metrics.json", metrics)
        w.tensors("mask.safetensors", masks)
        w.tensors("weights_final.safetensors", final)
