"""Find, eval and transplant as functions over the run store."""

from lprcausal.pipeline.context import Context, initial_state
from lprcausal.pipeline.evaluate import ensure_evals
from lprcausal.pipeline.find import ensure_finds
from lprcausal.pipeline.runs import EvalRun, FindRun, open_run

__all__ = ["Context", "EvalRun", "FindRun", "ensure_evals", "ensure_finds", "initial_state", "open_run"]
