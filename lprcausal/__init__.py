"""lprcausal: causal-intervention analysis of neural-network pruning."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: `import lprcausal` stays light; `lprcausal.Study` imports the study stack.
    if name == "Study":
        from lprcausal.study import Study

        return Study
    raise AttributeError(f"module 'lprcausal' has no attribute {name!r}")
