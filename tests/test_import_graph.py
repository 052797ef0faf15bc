"""The import graph: results at the bottom, stats and figures only read it, no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lprcausal"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every ``from lprcausal... import`` / ``import lprcausal...``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lprcausal"):
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("lprcausal")]
    return out


MODULES = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def imported(prefix: str) -> dict[str, set[str]]:
    """Module -> the lprcausal modules it imports, for modules under ``prefix``."""
    return {
        m: {target for target, _ in found}
        for m, found in MODULES.items()
        if m == prefix or m.startswith(prefix + ".")
    }


def offending(prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{m} imports {t}"
        for m, targets in imported(prefix).items()
        for t in targets
        if any(t == f or t.startswith(f + ".") for f in forbidden)
    )


def test_results_is_at_the_bottom_of_the_import_graph():
    # filemode: a stdlib-only leaf (a new file's mode from the user's umask)
    allowed = ("lprcausal.results", "lprcausal.errors", "lprcausal.filemode")
    bad = sorted(
        f"{m} imports {t}"
        for m, targets in imported("lprcausal.results").items()
        for t in targets
        if not any(t == a or t.startswith(a + ".") for a in allowed)
    )
    assert bad == []


@pytest.mark.parametrize("reader,other", [("stats", "figures"), ("figures", "stats")])
def test_stats_and_figures_read_results_and_not_each_other_or_the_training_stack(reader, other):
    forbidden = tuple(f"lprcausal.{p}" for p in (other, "pipeline", "study", "train"))
    assert offending(f"lprcausal.{reader}", forbidden) == []


def test_the_study_spec_does_not_import_the_pipeline():
    forbidden = ("lprcausal.pipeline", "lprcausal.study.transplant_design", "lprcausal.train")
    assert offending("lprcausal.study.spec", forbidden) == []


def test_no_private_name_is_imported_from_another_package():
    def package(module: str) -> str:
        return module.split(".")[1] if "." in module else module

    bad = sorted(
        f"{m} imports {name} from {target}"
        for m, found in MODULES.items()
        for target, names in found
        for name in names
        if name.startswith("_") and not name.startswith("__")
        and package(target) != package(m)
    )
    assert bad == []


def test_the_command_group_imports_no_command_module():
    assert offending("lprcausal.cli.app", ("lprcausal.cli",)) == []


def test_figures_use_no_statistics_library():
    # Figures draw what stats and results computed; scipy / statsmodels there would mean a
    # statistic computed a second time.
    bad = []
    for path in sorted((PACKAGE / "figures").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""] if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            )
            bad += [f"{path.name} imports {n}" for n in names
                    if n.split(".")[0] in ("scipy", "statsmodels")]
    assert bad == []


def test_the_command_line_loads_the_statistics_libraries_only_when_a_command_needs_them():
    # Building the commands' options reads lprcausal.stats.defaults only: scipy and
    # statsmodels (0.7 s) load inside `lprcausal stats` and the transplant report.
    code = (
        "import sys, lprcausal.cli, lprcausal.stats as s; "
        "print(sorted(m for m in ('scipy', 'statsmodels') if m in sys.modules)); "
        "print(s.paired_t.__module__, s.TestRecord.__module__, 'scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "[]",
        "lprcausal.stats.paired lprcausal.stats.records True",
    ]


def test_every_name_lprcausal_stats_exports_resolves():
    import lprcausal.stats as stats

    assert all(callable(getattr(stats, name)) or name.isupper() for name in stats.__all__)
    with pytest.raises(AttributeError, match="no attribute 'paired_tt'"):
        _ = stats.paired_tt
