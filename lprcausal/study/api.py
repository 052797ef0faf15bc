"""The :class:`Study` object: a spec, the store its runs live in, and its results folder.

>>> study = Study.from_toml("studies/quickstart.toml", store="runs")
>>> print(study.plan())          # size of the job graph, cached vs missing, steps
>>> summary = study.run()        # or study.run(executor="dask")
>>> ds = study.results()["decoupled"]
>>> ds.acc.mean("seed").sel(sparsity=0.8)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import xarray as xr

from lprcausal import __version__
from lprcausal.config import spec_hash
from lprcausal.errors import LprError, check_choice
from lprcausal.pipeline import Context
from lprcausal.pipeline.context import prunable_set
from lprcausal.pipeline.find import check_find
from lprcausal.provenance import git_commit
from lprcausal.results.io import load_dataset, save_dataset
from lprcausal.results.schema import DERIVED_FILES
from lprcausal.store import atomic_write_bytes
from lprcausal.study.collect import PROVENANCE_ATTRS
from lprcausal.study.collect import collect as collect_datasets
from lprcausal.study.executor import (
    EXECUTORS,
    LOCAL_CHUNK,
    check_workers,
    dask_client,
    local_cluster_size,
    run_dask,
    run_local,
    runtime_for,
)
from lprcausal.study.graph import JobGraph, Plan, build_graph, chunks, make_plan, run_steps
from lprcausal.study.progress import StudyProgress, Timer, fmt_seconds
from lprcausal.study.spec import StudySpec, load_spec, parse_spec
from lprcausal.study.transplant_design import all_specs, check_match
from lprcausal.train import EngineOptions, pick_device
from lprcausal.train.budget import balanced_chunks, member_limit, thread_multiple
from lprcausal.train.generic import fusion_choice

STUDY_FILE = "study.json"


@dataclass
class RunSummary:
    """What one ``Study.run`` did; ``str()`` is the one-line summary."""

    name: str
    n_runs: int
    trained: int
    cached: int
    skipped: int
    diverged: int
    seconds: float
    results_dir: Path
    files: list[str] = field(default_factory=list)

    @property
    def elsewhere(self) -> int:
        """Runs neither trained nor found cached here: another process sharing the store
        trained them meanwhile (this one waited on their locks)."""
        return max(0, self.n_runs - self.trained - self.cached - self.skipped)

    def __str__(self) -> str:
        div = f"{self.diverged} diverged" + (
            f" ({self.skipped} eval runs of diverged find runs not trained)" if self.skipped else ""
        )
        other = f", {self.elsewhere} trained by another process" if self.elsewhere else ""
        return (
            f"study {self.name}: {self.n_runs} runs ({self.trained} trained, "
            f"{self.cached} cached{other}), {div}, in {fmt_seconds(self.seconds)}; results in "
            f"{self.results_dir}/ ({', '.join(self.files)})"
        )


class Study:
    """A study spec bound to a run store and a results root.

    ``spec``: a :class:`StudySpec`, or a dict with the TOML layout (see
    ``studies/README.md``). ``store``: run store folder. ``results``: results root;
    files go to ``<results>/<study name>/``. ``ctx`` replaces store/data options with
    a ready :class:`Context`.
    """

    def __init__(
        self,
        spec: StudySpec | dict,
        *,
        store: str | Path = "runs",
        results: str | Path = "results",
        data_root: str | Path | None = None,
        download: bool = False,
        cache_dir: str | Path | None = None,
        engine: EngineOptions | None = None,
        ctx: Context | None = None,
        name: str = "study",
        source: str = "<python>",
    ):
        if isinstance(spec, dict):
            spec = parse_spec(spec, source=source, default_name=name)
        self.ctx = ctx or Context.at(
            store,
            data_root=data_root,
            download=download,
            cache_dir=cache_dir,
            engine=engine or EngineOptions(),
        )
        # the images of dataset 'folder' are part of its runs' identity (their ids)
        data = self.ctx.identify(spec.data)
        if data != spec.data:
            spec = dataclasses.replace(spec, data=data)
        self.spec: StudySpec = spec
        self.graph: JobGraph = build_graph(spec)
        self.results_root = Path(results)

    @classmethod
    def from_toml(cls, path: str | Path, **kw) -> Study:
        """Read and validate a study TOML (nothing is run; the store is not touched)."""
        return cls(load_spec(path), **kw)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def results_dir(self) -> Path:
        return self.results_root / self.spec.name

    # ------------------------------------------------------------------ plan
    def plan(self) -> Plan:
        """Graph size, cached vs missing runs and the optimizer steps still to train."""
        try:
            data = self.ctx.dataset(self.spec.data)
            n_train, note = data.n_train, ""
        except LprError as exc:
            data, n_train = None, None
            note = f"optimizer steps unknown, the dataset did not load: {exc}"
        plan = make_plan(self.graph, self.ctx.store, n_train, LOCAL_CHUNK, note)
        if data is not None:
            plan.training = self._training(data)
        return plan

    def _training(self, data) -> str:
        """How the runs will train: "fused, K=16" or "one at a time: <reason>"."""
        engine = self.ctx.engine
        device = pick_device(engine.device)
        choice = fusion_choice(self.spec.model, data.in_shape, data.n_classes, device,
                               engine.fuse)
        ids = self.graph.missing(self.ctx.store)[0] or list(self.graph.finds)
        biggest = max(chunks(self.graph, ids, LOCAL_CHUNK), key=len, default=[])
        if not biggest:
            return choice.describe(1) + f" (on {device})"
        spec = self.graph.spec_of(biggest[0])
        _, model = self.graph.data_model_of(spec)
        limit = member_limit(engine.max_members, model, data.in_shape, data.n_classes,
                             spec.train.batch_size, device)
        cap = min(len(biggest), limit or len(biggest))
        k = len(balanced_chunks(biggest, cap, thread_multiple(device))[0])
        return choice.describe(k) + f" (on {device})"

    def check(self) -> int:
        """Reject what would fail mid-study (batch larger than the data, rewind past the
        end) before anything trains. Returns the number of training samples."""
        n_train = self.ctx.dataset(self.spec.data).n_train
        # seeds do not change what check_find looks at: one spec per H_find suffices
        for spec in {s.replace(seed=0) for s in self.graph.finds.values()}:
            check_find(self.ctx, spec)
        # batch size and warmup against the data, per H (warmup in epochs against a length
        # in iterations is known only now); a coupled arm trains with its H_find
        for phase, points in (("H_find", self.spec.h_find), ("H_eval", self.spec.h_eval)):
            for point in points:
                if point.train is None:
                    continue
                try:
                    point.train.check_fits(n_train)
                except LprError as exc:
                    raise LprError(
                        f"In {self.spec.source}: {phase} {point.label!r}: {exc}"
                    ) from None
        self._check_cross_transplants()
        return n_train

    def _check_cross_transplants(self) -> None:
        """Pairs of two [model.grid] models: every layer of b matches one of a's."""
        data = self.ctx.dataset(self.spec.data)
        for label, design in self.graph.designs.items():
            if not design.cross:
                continue
            a, b = (self.graph.finds[r] for r in design.pairs[0])
            if a.prune.structure == "unit":
                raise LprError(
                    f"transplant pair {label} trains two different models with structured "
                    "pruning: a transplant across architectures is defined for weight pruning "
                    "only (prune.structure = 'weight')."
                )
            try:
                check_match(prunable_set(a.model, data, a.prune),
                            prunable_set(b.model, data, b.prune), design)
            except LprError as exc:
                raise LprError(f"transplant pair {label}: {exc}") from None

    # ------------------------------------------------------------------ run
    def run(
        self,
        executor: str = "local",
        *,
        scheduler: str | None = None,
        workers: int | None = None,
        processes: bool = True,
        connect_timeout: float = 10.0,
        progress: bool | None = None,
        log: TextIO | None = None,
    ) -> RunSummary:
        """Train every missing run, then collect the results (see :meth:`collect`).

        ``executor``: ``"local"`` (this process) or ``"dask"`` (a new LocalCluster with
        ``workers`` workers, ``processes`` or threads; or the cluster at ``scheduler``).
        ``progress`` (bars) defaults to the engine's setting; without bars, ``log`` gets a
        plain progress line every 30 s or so while runs finish (None: silence).
        """
        check_choice("executor", executor, EXECUTORS)
        if scheduler and executor != "dask":
            raise LprError(
                f"scheduler = {scheduler!r} is given with executor = {executor!r}: "
                "expected executor = 'dask' (a scheduler address is a Dask "
                "cluster)."
            )
        if workers is not None and (executor != "dask" or scheduler):
            given = f"scheduler = {scheduler!r}" if scheduler else f"executor = {executor!r}"
            raise LprError(
                f"workers = {workers!r} is given with {given}, which does not use it: "
                "expected workers only with executor = 'dask' and no scheduler (it sizes "
                "the LocalCluster this run starts; a running cluster has its own workers)."
            )
        show = self.ctx.engine.progress if progress is None else progress
        timer = Timer()
        if executor == "dask":
            # connect first: an unreachable scheduler fails before the store is touched
            with dask_client(scheduler, workers, processes, connect_timeout) as client:
                threads = None
                if not scheduler and processes:
                    threads = local_cluster_size(workers)[1]
                rt = runtime_for(self.ctx, self.graph, threads)
                check_workers(client, rt, self.graph)
                written: set[str] = set()
                trained, cached = self._execute(
                    show,
                    lambda skip: run_dask(self.graph, rt, client, skip, trained=written),
                    written,
                    log,
                )
        else:
            trained, cached = self._execute(
                show, lambda skip: run_local(self.graph, self.ctx, skip), self.ctx.store.written,
                log,
            )
        files, stats = self._collect("lprcausal study run")
        return RunSummary(
            name=self.name,
            n_runs=len(self.graph.run_ids()),
            trained=trained,
            cached=cached,
            skipped=stats["skipped"],
            diverged=stats["diverged"],
            seconds=timer.seconds,
            results_dir=self.results_dir,
            files=[p.name for p in files],
        )

    def _execute(self, show: bool, body, written: set[str], log: TextIO | None = None
                 ) -> tuple[int, int]:
        """Check, then run ``body(on_skip)`` under a progress bar; (trained, cached).

        ``written`` collects the ids of the runs the body stored (this process's store, or
        what the Dask workers report), so the count leaves out what another process sharing
        the store trained meanwhile."""
        miss_f, miss_e = self.graph.missing(self.ctx.store)
        if not miss_f and not miss_e:
            return 0, len(self.graph.run_ids())  # all cached: not even the data is needed
        n_train = self.check()
        pending = {i: run_steps(self.graph.spec_of(i), n_train) or 1 for i in miss_f + miss_e}
        with StudyProgress(
            self.ctx.store, pending, len(self.graph.run_ids()), f"study {self.name}", enabled=show,
            log=log,
        ) as bar:
            before = set(written)
            body(bar.skip)
        cached = len(self.graph.run_ids()) - len(pending)
        return len((written - before) & set(pending)), cached

    # ------------------------------------------------------------------ results
    def collect(self) -> dict[str, Path]:
        """Write the result Datasets (netCDF) and ``study.json``; returns name -> path."""
        files, _stats = self._collect("lprcausal study collect")
        return {p.stem: p for p in files}

    def _collect(self, command: str) -> tuple[list[Path], dict]:
        datasets, stats = collect_datasets(self.graph, self.ctx.store, command)
        paths = [self.results_dir / f"{key}.nc" for key in ("decoupled", "transplant")]
        before = [_results_content(p) for p in paths]
        files = [save_dataset(ds, self.results_dir / f"{key}.nc") for key, ds in datasets.items()]
        if "transplant" not in datasets:
            # a transplant.nc of an earlier spec of this name: stats reads whatever the folder
            # holds, and would test that old design as this study's
            (self.results_dir / "transplant.nc").unlink(missing_ok=True)
        after = [_results_content(p) for p in paths]
        if not all(_same_content(a, b) for a, b in zip(before, after, strict=True)):
            # stats.nc & co. describe the results they were computed from: once those change,
            # `lprcausal figures` would draw old significance marks over the new numbers
            for name in DERIVED_FILES:
                (self.results_dir / name).unlink(missing_ok=True)
        record = {
            "study": self.name,
            "title": self.spec.title,
            "spec_file": self.spec.source,
            "spec": self.spec.raw,
            "store": str(self.ctx.store.root),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "source": f"lprcausal {__version__}",
            "git_commit": git_commit(),
            "files": [p.name for p in files],
            **stats,
            "runs": self.run_ids(),
        }
        study_json = self.results_dir / STUDY_FILE
        atomic_write_bytes(study_json, json.dumps(record, indent=1, default=str).encode())
        return [*files, study_json], stats

    def run_ids(self) -> dict:
        """Run ids by design cell: find, decoupled eval and transplant runs."""
        g = self.graph
        return {
            "find": [{"h_find": f, "seed": s, "id": i} for (f, s), i in g.find_ids.items()],
            "decoupled": [
                {"h_find": f, "h_eval": e, "seed": s, "sparsity": sp, "id": i}
                for (f, e, s, sp), i in g.decoupled.items()
            ],
            "transplant": {
                label: list(dict.fromkeys(spec_hash(s) for s in all_specs(d)))
                for label, d in g.designs.items()
            },
        }

    def results(self) -> dict[str, xr.Dataset]:
        """The result Datasets, read from the results folder (collected first if absent)."""
        names = ["decoupled"] + (["transplant"] if self.spec.transplant is not None else [])
        paths = {n: self.results_dir / f"{n}.nc" for n in names}
        if not all(p.is_file() for p in paths.values()):
            self.collect()
        return {n: load_dataset(p) for n, p in paths.items()}


def _results_content(path: Path) -> xr.Dataset | str | None:
    """A results file's content without its collection attributes (None: no file)."""
    if not path.is_file():
        return None
    try:
        ds = load_dataset(path)
    except LprError:
        return "unreadable"  # replaced by the new file, whatever it held
    for key in PROVENANCE_ATTRS:  # how and when the file was made, not what it says
        ds.attrs.pop(key, None)
    return ds


def _same_content(a: xr.Dataset | str | None, b: xr.Dataset | str | None) -> bool:
    if isinstance(a, xr.Dataset) and isinstance(b, xr.Dataset):
        return a.identical(b)
    return a is None and b is None
