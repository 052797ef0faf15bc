"""Read stored runs back as objects (find runs and eval runs)."""

from __future__ import annotations

import math

import torch

from lprcausal.config import EvalSpec, FindSpec, level_key, matching_level, spec_from_record
from lprcausal.errors import LprError
from lprcausal.models.units import UnitLayer, layers_from_json
from lprcausal.store import RunStore

FIND_KINDS = ("find", "own-find", "import")
"""Run kinds that hold masks per level: engine find runs, runs of a user's own loop
(:func:`lprcausal.find`) and masks imported from a file."""


def split_levels(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """{"0.8/fc.weight": t} -> {"0.8": {"fc.weight": t}}."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        level, name = key.split("/", 1)
        out.setdefault(level, {})[name] = t
    return out


def join_levels(per_level: dict[float, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {f"{level_key(s)}/{n}": t for s, d in per_level.items() for n, t in d.items()}


class StoredRun:
    """Common view of a run directory: id, kind, spec, metrics."""

    def __init__(self, store: RunStore, run_id: str):
        self.store = store
        self.id = run_id
        self.record = store.read_json(run_id)
        try:
            self.spec = spec_from_record(self.record)
        except (KeyError, TypeError) as exc:
            raise store._damaged(run_id, "run.json", f"does not describe a run ({exc})") from None
        self.kind = self.record["kind"]
        self._metrics = None

    @property
    def metrics(self) -> dict:
        if self._metrics is None:
            self._metrics = self.store.read_json(self.id, "metrics.json")
        return self._metrics

    @property
    def prunable(self) -> list[str]:
        return list(self.record["prunable"])

    @property
    def layers(self) -> list[dict]:
        return list(self.record["layers"])


class FindRun(StoredRun):
    """A find run: dense training with H_find and masks at each sparsity level."""

    spec: FindSpec

    def __init__(self, store: RunStore, run_id: str, field: str = "run"):
        super().__init__(store, run_id)
        if self.kind not in FIND_KINDS:
            raise LprError(
                f"{field} = {run_id} is an {self.kind} run: expected a find run (made by "
                "`lprcausal find`, `lprcausal.find` or `lprcausal masks import`), whose masks "
                "and weights an eval or transplant starts from."
            )
        self._masks = None
        self._unit_masks = None

    def require_engine(self, what: str) -> None:
        """Raise unless the engine can train from this run (it knows its model and data)."""
        if self.kind == "own-find":
            call = ("lprcausal.transplant_runs(build, train, source, target, ...)"
                    if what == "transplant" else "lprcausal.evaluate(run, build, train, ...)")
            raise LprError(
                f"run {self.id} was trained by your own loop (lprcausal.find): the engine "
                f"cannot {what} it, as it knows neither its model nor its data. Call "
                f"{call} from Python with your model builder and train function instead "
                "(it stores the runs and returns the results Dataset), or transplant its "
                "masks onto weights with `lprcausal transplant --source RUN --target CKPT "
                "--model M`."
            )

    @property
    def structured(self) -> bool:
        """True for structured (unit) pruning runs (``prune.structure = "unit"``)."""
        return self.spec.prune.structure == "unit"

    def unit_layers(self) -> list[UnitLayer]:
        """The unit layers (coupling) this structured run pruned, as stored with it."""
        self._require_structured("unit layers")
        return layers_from_json(self.record["units"])

    def unit_mask(self, s: float) -> dict[str, torch.Tensor]:
        """Unit masks at level ``s``: layer weight name -> 1-D bool (True = unit kept)."""
        key = self.level(s)
        self._require_structured("unit masks")
        if self._unit_masks is None:
            tensors = self.store.read_tensors(self.id, "unit_masks.safetensors")
            self._unit_masks = split_levels(tensors)
        return self._unit_masks[key]

    def _require_structured(self, what: str) -> None:
        if not self.structured:
            raise LprError(
                f"find run {self.id} has prune.structure = {self.spec.prune.structure!r}: "
                f"{what} exist only for structure = 'unit' runs."
            )

    @property
    def levels(self) -> list[float]:
        return [float(s) for s in self.metrics["levels"]]

    def level(self, s: float, field: str = "sparsity") -> str:
        have = matching_level(self.levels, s)
        if have is not None:
            return level_key(have)
        have = ", ".join(f"{x:g}" for x in self.levels)
        raise LprError(
            f"{field} = {s!r} is not a level of find run {self.id}: it has masks for "
            f"sparsities {have}."
        )

    def mask(self, s: float) -> dict[str, torch.Tensor]:
        key = self.level(s)
        if self._masks is None:
            self._masks = split_levels(self.store.read_tensors(self.id, "masks.safetensors"))
        return self._masks[key]

    def final_state(self) -> dict[str, torch.Tensor]:
        if self.kind == "import":
            raise LprError(
                f"run {self.id} holds masks imported from a file, without trained weights: "
                "expected a run with trained weights here (use it as the LPR source)."
            )
        return self.store.read_tensors(self.id, "weights_final.safetensors")

    def rewind_state(self) -> dict[str, torch.Tensor]:
        return self.store.read_tensors(self.id, "weights_rewind.safetensors")

    def source_state(self, s: float) -> dict[str, torch.Tensor]:
        """The trained weights that mask ``s`` was pruned from (dense final for one-shot)."""
        key = self.level(s)
        if self.store.has_file(self.id, "weights_levels.safetensors"):
            return split_levels(self.store.read_tensors(self.id, "weights_levels.safetensors"))[key]
        return self.final_state()

    def prunable_weights(self, s: float) -> dict[str, torch.Tensor]:
        state = self.source_state(s)
        return {n: state[n] for n in self.prunable}

    def find_acc(self, s: float) -> float:
        return float(self.metrics["find_acc"][self.level(s)])


class EvalRun(StoredRun):
    """An eval run: a mask on a find run's weights, retrained with H_eval."""

    spec: EvalSpec

    @property
    def metrics(self) -> dict:
        """The stored metrics; own-loop eval runs stored before ``final_val_acc`` and
        ``diverged`` were recorded get them filled in (NaN; diverged when the test accuracy
        is not finite), so every reader finds the same fields."""
        m = super().metrics
        m.setdefault("final_val_acc", math.nan)
        m.setdefault("diverged", not math.isfinite(m.get("test_acc", math.nan)))
        return m

    def mask(self) -> dict[str, torch.Tensor]:
        return self.store.read_tensors(self.id, "mask.safetensors")

    def unit_mask(self) -> dict[str, torch.Tensor] | None:
        """Unit masks of an eval run on a structured find run (None for weight pruning)."""
        if not self.store.has_file(self.id, "unit_mask.safetensors"):
            return None
        return self.store.read_tensors(self.id, "unit_mask.safetensors")


def open_run(store: RunStore, ref: str, field: str = "run") -> FindRun | EvalRun:
    run_id = store.resolve(ref, field)
    base = StoredRun(store, run_id)
    return FindRun(store, run_id, field) if base.kind in FIND_KINDS else EvalRun(store, run_id)
