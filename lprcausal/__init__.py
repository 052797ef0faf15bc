"""lprcausal: causal-intervention analysis of neural-network pruning.

The public Python API for a user's own model and training loop is importable from here
(``import lprcausal as lpc``); names load lazily, so ``import lprcausal`` stays light:

- prunable sets and masks: ``prunable``, ``global_magnitude_masks``,
  ``layerwise_magnitude_masks``, ``layerwise_ratios``, ``overall_sparsity``, ``transplant``;
- controls: ``shuffle``, ``random``, ``uniform``, ``erk``, ``lamp``, ``interpolate``;
- masks on a live model: ``apply_masks`` (-> ``MaskHandle``);
- masks as files: ``save_masks``, ``load_masks``, ``mask_metadata``;
- ``torch.nn.utils.prune`` interop: ``to_torch_prune``, ``from_torch_prune``;
- runs of a user's own loop in the run store: ``find``, ``evaluate``; their result
  Datasets (``decoupled.nc``, ``transplant.nc``): ``decoupled_runs``, ``transplant_runs``;
- studies: ``Study``.
"""

from lprcausal.lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "prunable": "lprcausal.api.weights",
    "global_magnitude_masks": "lprcausal.api.masking",
    "layerwise_magnitude_masks": "lprcausal.api.masking",
    "transplant": "lprcausal.api.masking",
    "shuffle": "lprcausal.api.masking",
    "random": "lprcausal.api.masking",
    "uniform": "lprcausal.api.masking",
    "erk": "lprcausal.api.masking",
    "lamp": "lprcausal.api.masking",
    "interpolate": "lprcausal.api.masking",
    "layerwise_ratios": "lprcausal.pruning",
    "overall_sparsity": "lprcausal.pruning",
    "apply_masks": "lprcausal.api.apply",
    "MaskHandle": "lprcausal.api.apply",
    "save_masks": "lprcausal.api.mask_files",
    "load_masks": "lprcausal.api.mask_files",
    "mask_metadata": "lprcausal.api.mask_files",
    "to_torch_prune": "lprcausal.api.torch_prune",
    "from_torch_prune": "lprcausal.api.torch_prune",
    "find": "lprcausal.api.own_loop",
    "evaluate": "lprcausal.api.own_loop",
    "Callback": "lprcausal.api.own_loop",
    "decoupled_runs": "lprcausal.api.own_results",
    "transplant_runs": "lprcausal.api.own_results",
    "Study": "lprcausal.study",
}

__all__ = sorted(_LAZY)

# Lazy: `import lprcausal` imports no torch; `lprcausal.find` imports what it needs.
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
