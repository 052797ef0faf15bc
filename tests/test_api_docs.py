"""The runnable examples in the public API's docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["lprcausal.api.weights", "lprcausal.api.masking", "lprcausal.api.apply",
           "lprcausal.api.mask_files", "lprcausal.api.torch_prune", "lprcausal.api.callback",
           "lprcausal.api.own_results"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
