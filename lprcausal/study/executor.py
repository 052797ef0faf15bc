"""Executors: compute a study's missing runs in this process or on a Dask cluster.

Both executors hand *chunks* of runs (runs that train together in one fused group,
see :func:`lprcausal.study.graph.chunks`) to ``ensure_finds`` / ``ensure_evals``: find
chunks first, then eval chunks. The run store is the only shared state: every
chunk claims its runs with per-run file locks, writes each run atomically and waits
for runs another process holds, so duplicate work never runs twice, and a killed
study resumes where it stopped.

On Dask each chunk is one task keyed by a hash of its store and run ids (two clients
that submit the same chunk to the same store share one task); an eval task depends on the find tasks of
the runs it reads, so it starts as soon as they are stored. Each task builds its own
:class:`Context` on the shared store path.

Eval runs of a diverged find run are not trained (its weights are NaN, so no mask
of it means anything); they are reported as skipped and collected as diverged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from lprcausal.config import EvalSpec, FindSpec, spec_hash
from lprcausal.errors import LprError, bad_value
from lprcausal.pipeline import Context, FindRun, ensure_evals, ensure_finds
from lprcausal.store import RunStore
from lprcausal.study.graph import JobGraph, chunks, eval_needs
from lprcausal.train import EngineOptions
from lprcausal.usercode import load, register_sources, shipped_sources

LOCAL_CHUNK = 256
EXECUTORS = ("local", "dask")

OnSkip = Callable[[list[str]], None]


@dataclass(frozen=True)
class Runtime:
    """Where runs live and how they are computed, in a form a Dask worker can receive."""

    store: str
    data_root: str | None = None
    download: bool = False
    cache_dir: str | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)
    threads: int | None = None
    # (sha256, text) of user code files (models, dataset loaders), shipped to workers
    sources: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, ctx: Context, threads: int | None = None, sources=()) -> Runtime:
        return cls(
            store=str(ctx.store.root),
            data_root=None if ctx.data_root is None else str(ctx.data_root),
            download=ctx.download,
            cache_dir=None if ctx.cache_dir is None else str(ctx.cache_dir),
            engine=ctx.engine,
            threads=threads,
            sources=tuple(sources),
        )


_CONTEXTS: dict[str, Context] = {}


def worker_context(rt: Runtime) -> Context:
    """The Context of this worker process for ``rt`` (cached: datasets load once)."""
    key = repr(rt)
    register_sources(rt.sources)
    if key not in _CONTEXTS:
        engine = replace(rt.engine, progress=False, device=rt.engine.device or _worker_device())
        _CONTEXTS[key] = Context.at(
            rt.store,
            data_root=rt.data_root,
            download=rt.download,
            cache_dir=rt.cache_dir,
            engine=engine,
        )
    if rt.threads:
        torch.set_num_threads(rt.threads)
    return _CONTEXTS[key]


def _worker_device() -> str | None:
    """On a worker of a multi-GPU machine, one GPU per worker (by worker name)."""
    n = torch.cuda.device_count()
    if n <= 1:
        return None
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return None
    index = (
        name if isinstance(name, int) else int(hashlib.sha256(str(name).encode()).hexdigest(), 16)
    )
    return f"cuda:{index % n}"


# ---------------------------------------------------------------------------- user code
def user_code(graph: JobGraph) -> list[tuple[str, str, object]]:
    """``(what, import path, CodeRef)`` of every piece of user code the graph's runs name."""
    out = {}
    for spec in graph.finds.values():
        for what, cfg in (("model", spec.model), ("dataset", spec.data)):
            if cfg.code is not None:
                out[(what, cfg.name, cfg.code)] = None
    return list(out)


def runtime_for(ctx: Context, graph: JobGraph, threads: int | None = None) -> Runtime:
    """The Runtime of a Dask run of ``graph``, shipping its user code files."""
    return Runtime.of(ctx, threads, shipped_sources(code for _, _, code in user_code(graph)))


def _load_code(sources, refs) -> list[str]:
    """On a worker: try to load every user code ref; the error messages of those that fail."""
    register_sources(sources)
    errors = []
    for what, name, code in refs:
        try:
            load(name, code, what)
        except LprError as exc:
            errors.append(str(exc))
    return errors


def check_workers(client, rt: Runtime, graph: JobGraph) -> None:
    """Fail before anything trains when a worker cannot load the study's user code."""
    refs = user_code(graph)
    if not refs:
        return
    failures = client.run(_load_code, rt.sources, refs)
    for worker, errors in sorted(failures.items()):
        if errors:
            raise LprError(
                f"Dask worker {worker} cannot load the study's code: {errors[0]} "
                "Expected every worker to import it: install the package on the workers "
                "(or put it on their PYTHONPATH), or name the model by file path "
                "('nets.py:build'), which is shipped to the workers."
            )


# ---------------------------------------------------------------------------- chunk work
def eval_chunk(ctx: Context, specs: list[EvalSpec]) -> list[str]:
    """Train the missing eval runs of one chunk; returns the ids skipped (diverged finds)."""
    diverged = {}
    keep, skipped = [], []
    for spec in specs:
        for find_id in eval_needs(spec):
            if find_id not in diverged:
                diverged[find_id] = bool(FindRun(ctx.store, find_id).metrics.get("diverged"))
        if any(diverged[f] for f in eval_needs(spec)):
            skipped.append(spec)
        else:
            keep.append(spec)
    if keep:
        ensure_evals(ctx, keep)
    return [spec_hash(s) for s in skipped]


def _written_of(ctx: Context, specs) -> list[str]:
    """The runs of ``specs`` this worker process stored (a run id belongs to one chunk, so
    tasks sharing a process never count each other's runs)."""
    return sorted(ctx.store.written & {spec_hash(s) for s in specs})


def _find_task(rt: Runtime, specs: list[FindSpec]) -> list[str]:
    """Train a find chunk on a worker; returns the ids it stored."""
    ctx = worker_context(rt)
    ensure_finds(ctx, specs)
    return _written_of(ctx, specs)


def _eval_task(rt: Runtime, specs: list[EvalSpec], after: list) -> tuple[list[str], list[str]]:
    """Train an eval chunk on a worker; returns (ids skipped, ids it stored)."""
    # ``after`` holds the results of the find tasks this chunk reads: Dask runs this
    # task only once they are done.
    ctx = worker_context(rt)
    skipped = eval_chunk(ctx, specs)
    return skipped, _written_of(ctx, specs)


# ---------------------------------------------------------------------------- executors
def run_local(
    graph: JobGraph, ctx: Context, on_skip: OnSkip, chunk_size: int = LOCAL_CHUNK
) -> list[str]:
    """Train every missing run in this process, chunk by chunk; returns skipped eval ids."""
    miss_f, _ = graph.missing(ctx.store)
    for chunk in chunks(graph, miss_f, chunk_size):
        ensure_finds(ctx, [graph.finds[i] for i in chunk])
    _, miss_e = graph.missing(ctx.store)
    skipped: list[str] = []
    for chunk in chunks(graph, miss_e, chunk_size):
        gone = eval_chunk(ctx, [graph.evals[i] for i in chunk])
        on_skip(gone)
        skipped += gone
    return skipped


def run_dask(
    graph: JobGraph,
    rt: Runtime,
    client,
    on_skip: OnSkip,
    chunk_size: int | None = None,
    trained: set[str] | None = None,
) -> list[str]:
    """Submit find chunks, then eval chunks depending on them; wait for all.

    The ids the workers stored are added to ``trained`` (what this study trained, not
    what another process sharing the store did). The first failing task cancels the
    rest and its error is raised here.
    """
    from distributed import as_completed

    store = RunStore(rt.store)
    miss_f, miss_e = graph.missing(store)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    size = chunk_size or _dask_chunk(len(miss_f) + len(miss_e), workers)
    by_find = {}
    futures = []
    for chunk in chunks(graph, miss_f, size):
        fut = client.submit(
            _find_task, rt, [graph.finds[i] for i in chunk],
            key=_task_key("find", chunk, rt.store),
        )
        futures.append(fut)
        by_find.update(dict.fromkeys(chunk, fut))
    eval_keys = set()
    for chunk in chunks(graph, miss_e, size):
        deps = {}  # the find tasks (by key) whose runs this chunk reads
        for run_id in chunk:
            for find_id in graph.needs(run_id):
                if find_id in by_find:
                    deps[by_find[find_id].key] = by_find[find_id]
        fut = client.submit(
            _eval_task,
            rt,
            [graph.evals[i] for i in chunk],
            list(deps.values()),
            key=_task_key("eval", chunk, rt.store),
        )
        futures.append(fut)
        eval_keys.add(fut.key)
    skipped: list[str] = []
    try:
        for fut in as_completed(futures):
            result = fut.result()
            if fut.key in eval_keys:
                result, written = result
                on_skip(result)
                skipped += result
            else:
                written = result
            if trained is not None:
                trained.update(written)
    except BaseException:
        client.cancel(futures)
        raise
    return skipped


def _dask_chunk(n_runs: int, workers: int) -> int:
    """Chunks small enough to keep every worker busy, large enough to fuse well."""
    return max(1, min(LOCAL_CHUNK, -(-n_runs // (2 * workers))))


def _task_key(kind: str, ids: list[str], store: str) -> str:
    """The Dask key of a chunk: equal for the same runs into the same store (two studies
    sharing both share the task), different for another store (its runs must land there)."""
    where = str(Path(store).expanduser().resolve())
    digest = hashlib.sha256("\n".join([where, *sorted(ids)]).encode()).hexdigest()[:16]
    return f"lprcausal-{kind}-{digest}"


def local_cluster_size(workers: int | None = None) -> tuple[int, int]:
    """(workers, torch threads per worker) for a LocalCluster on this machine.

    One worker per GPU when there are GPUs; otherwise one worker per two cores (small
    models train faster as several 2-thread processes than as one wide one).
    """
    cores = os.cpu_count() or 1
    if workers is None:
        gpus = torch.cuda.device_count()
        workers = gpus if gpus else max(1, cores // 2)
    if workers < 1:
        raise bad_value("workers", workers, "a positive integer")
    return workers, max(1, cores // workers)


@contextmanager
def dask_client(
    scheduler: str | None = None,
    workers: int | None = None,
    processes: bool = True,
    connect_timeout: float = 10.0,
) -> Iterator:
    """A Dask client: on the cluster at ``scheduler``, or on a new LocalCluster."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise LprError(
            "executor = 'dask' needs the 'distributed' package: expected "
            "`pip install dask[distributed]`."
        ) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise LprError(
                f"scheduler = {scheduler!r} is not reachable ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]}): expected the address of a running Dask "
                "scheduler such as tcp://host:8786, reachable from here within "
                f"{connect_timeout:g} s."
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    n, _threads = local_cluster_size(workers)
    with (
        LocalCluster(
            n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
