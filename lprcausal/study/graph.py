"""The job graph of a study: find runs -> (masks) -> eval runs, every node a stored run.

Nodes are ordinary :class:`FindSpec` / :class:`EvalSpec` runs named by their content
hash, so the graph is deduplicated by run id (the coupled arm and a fixed H_eval
equal to an H_find are one run) and a second ``study run`` finds every node in the
store. An eval node depends on the find run whose weights it trains and, for
transplant and dose-response cells, on the find runs whose LPR it borrows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from lprcausal.config import EvalSpec, FindSpec, MaskSpec, spec_hash
from lprcausal.results.schema import pair_label
from lprcausal.store import RunStore
from lprcausal.study.spec import StudySpec
from lprcausal.study.transplant_design import TransplantDesign, all_specs
from lprcausal.train.budget import balanced_chunks

Spec = FindSpec | EvalSpec


@dataclass
class JobGraph:
    """Every run of a study by id, plus where each sits in the study's design.

    ``find_ids[(h_find, seed)]`` and ``decoupled[(h_find, h_eval, seed, sparsity)]``
    map design cells to run ids; ``designs[pair_label]`` is the transplant design of
    one H_find pair (one find-run pair per seed).
    """

    spec: StudySpec
    finds: dict[str, FindSpec] = field(default_factory=dict)
    evals: dict[str, EvalSpec] = field(default_factory=dict)
    find_ids: dict[tuple[str, int], str] = field(default_factory=dict)
    decoupled: dict[tuple[str, str, int, float], str] = field(default_factory=dict)
    designs: dict[str, TransplantDesign] = field(default_factory=dict)

    def needs(self, eval_id: str) -> tuple[str, ...]:
        """The find runs an eval run reads (weights, and LPR sources of transplants)."""
        return eval_needs(self.evals[eval_id])

    def spec_of(self, run_id: str) -> Spec:
        return self.finds[run_id] if run_id in self.finds else self.evals[run_id]

    def data_model_of(self, spec: Spec) -> tuple:
        """(data, model) a run trains on: its own for a find run, its find run's otherwise."""
        source = spec if isinstance(spec, FindSpec) else self.finds[spec.find]
        return source.data, source.model

    def run_ids(self) -> list[str]:
        return [*self.finds, *self.evals]

    def missing(self, store: RunStore) -> tuple[list[str], list[str]]:
        """Find ids and eval ids that are not in the store yet."""
        return (
            [i for i in self.finds if not store.exists(i)],
            [i for i in self.evals if not store.exists(i)],
        )


def eval_needs(spec: EvalSpec) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r for r in (spec.find, spec.mask.lpr_from, spec.mask.lpr_to) if r))


def build_graph(spec: StudySpec) -> JobGraph:
    """All runs of ``spec``, in a fixed order (find runs, decoupled evals, transplant evals)."""
    g = JobGraph(spec)
    for hf in spec.h_find:
        for seed in spec.seeds:
            fs = FindSpec(
                data=spec.data, model=spec.model_of(hf), train=hf.train, prune=spec.prune,
                seed=seed,
            )
            run_id = spec_hash(fs)
            g.finds.setdefault(run_id, fs)
            g.find_ids[(hf.label, seed)] = run_id
    for hf in spec.h_find:
        for he in spec.h_eval:
            train = hf.train if he.coupled else he.train
            for seed in spec.seeds:
                for s in spec.sparsities:
                    es = EvalSpec(
                        find=g.find_ids[(hf.label, seed)],
                        sparsity=s,
                        train=train,
                        mask=MaskSpec(),
                        mode=spec.mode,
                        seed=seed,
                    )
                    run_id = spec_hash(es)
                    g.evals.setdefault(run_id, es)
                    g.decoupled[(hf.label, he.label, seed, s)] = run_id
    if spec.transplant is not None:
        for pair in spec.transplant.pairs:
            design = transplant_design(spec, g, pair)
            g.designs[pair_label(*pair)] = design
            for es in all_specs(design):
                g.evals.setdefault(spec_hash(es), es)
    return g


def transplant_design(spec: StudySpec, g: JobGraph, pair: tuple[str, str]) -> TransplantDesign:
    """The 2x2 (+ alphas, controls) design of H_find labels ``pair``, one run pair per seed;
    the cross-architecture design when the two arms train different [model.grid] models."""
    tp = spec.transplant
    assert tp is not None
    points = {p.label: p for p in spec.h_find}
    a, b = (spec.model_of(points[label]) for label in pair)
    cross = a != b
    return TransplantDesign(
        pairs=tuple((g.find_ids[(pair[0], s)], g.find_ids[(pair[1], s)]) for s in spec.seeds),
        sparsities=tp.sparsities,
        train=spec.eval_point(tp.h_eval).train,
        mode=spec.mode,
        alphas=tp.alphas,
        controls=tp.controls,
        eval_seeds=spec.seeds,
        names=pair,
        cross=cross,
        match=tp.match if cross else "name",
        layer_map=tp.layer_map if cross else None,
    )


# ---------------------------------------------------------------------------- chunks
def fusion_key(spec: Spec, graph: JobGraph) -> tuple:
    """Runs with equal keys can train in one fused group (same data, model, batch, length)."""
    data, model = graph.data_model_of(spec)
    t = spec.train
    return (
        spec.kind,
        data,
        model,
        t.batch_size,
        t.epochs,
        t.iterations,
        t.optimizer,
        t.nesterov,
        t.augment,
    )


def chunks(graph: JobGraph, ids: Iterable[str], size: int) -> list[list[str]]:
    """Run ids grouped by fusion key, each group split into chunks of at most ``size``.

    A chunk is the unit of work handed to ``ensure_finds`` / ``ensure_evals``: its runs
    train together, so chunks follow the engine's fusion groups.
    """
    groups: dict[tuple, list[str]] = defaultdict(list)
    for run_id in ids:
        groups[fusion_key(graph.spec_of(run_id), graph)].append(run_id)
    out = []
    for members in groups.values():
        out += balanced_chunks(members, size)  # not one full chunk and one tiny
    return out


# ---------------------------------------------------------------------------- work
def run_steps(spec: Spec, n_train: int | None) -> int | None:
    """Optimizer steps one run trains (None when the training set size is unknown)."""
    if n_train is None:
        return None
    steps = spec.train.total_steps(n_train)
    if isinstance(spec, FindSpec) and spec.prune.method == "imp":
        steps *= len(spec.prune.levels())  # one dense round, then one retrain per level
    return steps


@dataclass
class Plan:
    """How big a study is and how much of it is still to train."""

    name: str
    source: str
    shape: dict[str, int]
    n_find: int
    n_eval: int
    missing_find: int
    missing_eval: int
    steps_find: int | None
    steps_eval: int | None
    n_chunks: int
    n_train: int | None
    note: str = ""
    training: str = ""
    picked: tuple[str, ...] = ()  # transplant pairs chosen by a rule, one line each

    @property
    def n_runs(self) -> int:
        return self.n_find + self.n_eval

    @property
    def missing(self) -> int:
        return self.missing_find + self.missing_eval

    @property
    def steps(self) -> int | None:
        if self.steps_find is None or self.steps_eval is None:
            return None
        return self.steps_find + self.steps_eval

    def __str__(self) -> str:
        def steps(n: int | None) -> str:
            return "?" if n is None else f"{n:,}"

        dims = " x ".join(f"{k} {v}" for k, v in self.shape.items())
        lines = [
            f"study {self.name} ({self.source})",
            f"  design: {dims}",
            f"  find runs: {self.n_find:6d}  cached {self.n_find - self.missing_find:6d}  "
            f"to train {self.missing_find:6d}  optimizer steps {steps(self.steps_find)}",
            f"  eval runs: {self.n_eval:6d}  cached {self.n_eval - self.missing_eval:6d}  "
            f"to train {self.missing_eval:6d}  optimizer steps {steps(self.steps_eval)}",
            f"  total:     {self.n_runs:6d}  cached {self.n_runs - self.missing:6d}  "
            f"to train {self.missing:6d}  optimizer steps {steps(self.steps)} "
            f"(summed over runs), in {self.n_chunks} training chunk(s)",
        ]
        if self.training:
            lines.append(f"  training: {self.training}")
        if self.picked:
            lines.append("  transplant pairs (pairs_from, largest decoupling per hyperparameter):")
            lines += [f"    {line}" for line in self.picked]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


def make_plan(
    graph: JobGraph, store: RunStore, n_train: int | None, chunk_size: int, note: str = ""
) -> Plan:
    """Count runs, cached vs missing, and the optimizer steps of the missing ones."""
    spec = graph.spec
    miss_f, miss_e = graph.missing(store)

    def total(ids: list[str]) -> int | None:
        counts = [run_steps(graph.spec_of(i), n_train) for i in ids]
        return None if any(c is None for c in counts) else sum(counts)  # type: ignore[misc]

    shape = {
        "h_find": len(spec.h_find),
        "h_eval": len(spec.h_eval),
        "seed": len(spec.seeds),
        "sparsity": len(spec.sparsities),
    }
    if spec.transplant is not None:
        shape["pair"] = len(spec.transplant.pairs)
    n_chunks = len(chunks(graph, miss_f, chunk_size)) + len(chunks(graph, miss_e, chunk_size))
    return Plan(
        name=spec.name,
        source=spec.source,
        shape=shape,
        n_find=len(graph.finds),
        n_eval=len(graph.evals),
        missing_find=len(miss_f),
        missing_eval=len(miss_e),
        steps_find=total(miss_f),
        steps_eval=total(miss_e),
        n_chunks=n_chunks,
        n_train=n_train,
        note=note,
        picked=tuple(p.describe() for p in spec.transplant.picked) if spec.transplant else (),
    )
