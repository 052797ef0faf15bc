"""Render a :class:`~lprcausal.stats.report.StatsResult` as text: table, CSV, JSON,
LaTeX, Markdown.

The table is for a terminal about 100 columns wide: one section per family (its
correction and what it tests), one block per selection (pair, H_eval, reference,
sparsity), short numbers, columns that are empty in a family left out, and notes
numbered below each family. CSV and JSON carry every field of every record. Markdown
is GitHub-flavoured: one table per family with adjusted p, notes as footnotes (for a
README or a paper's supplement).
"""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pandas as pd
import xarray as xr

from lprcausal.errors import LprError
from lprcausal.results.schema import CORRECTION_NAMES
from lprcausal.stats import analyses
from lprcausal.stats.defaults import FORMATS
from lprcausal.stats.report import COORDS, SELECTION, StatsResult

FIELDS = (
    "estimate",
    "ci_low",
    "ci_high",
    "ci_level",
    "ci_method",
    "statistic",
    "df",
    "p",
    "p_adj",
    "correction",
    "p_perm",
    "p_perm_min",
    "effect_size",
    "n",
    "test",
    "library",
    "note",
)
# Selection coords shown once per block; the rest (h_find, layer) are row labels.
BLOCK_COORDS = ("pair", "h_eval", "reference", "sparsity")
BLOCK_NAMES = {"h_eval": "H_eval", "h_find": "H_find"}  # the others print as they are
# Note fragments already said once for all records (warnings, test line): not repeated.
GENERIC_NOTES = (
    "sign-flip p exact",
    "sign-flip p Monte Carlo",
    "cannot reach p <",
    "over H_find of seed-mean accuracies",
    "p exact",
    "p asymptotic",
)
MAX_NOTES = 8


def records_frame(stats: xr.Dataset) -> pd.DataFrame:
    """One row per test record: family, estimand, the selection coords used, every field."""
    if "record" not in stats.dims or stats.sizes["record"] == 0:
        return pd.DataFrame(columns=["family", "estimand", *FIELDS])
    cols = {}
    for name in ("family", "estimand", *COORDS, *FIELDS):
        if name not in stats.variables:
            continue
        values = stats[name].values
        if name in COORDS and _empty(values):
            continue
        cols[name] = values
    return pd.DataFrame(cols)


def _empty(values: np.ndarray) -> bool:
    if values.dtype.kind in "US":
        return not any(str(v) for v in values)
    return bool(np.isnan(values.astype(float)).all())


def render(result: StatsResult, fmt: str, width: int = 100) -> str:
    """The result as ``fmt`` ("table", "csv", "json", "latex" or "markdown")."""
    if fmt not in FORMATS:
        raise LprError(f"--format = {fmt!r} is not valid: expected one of {', '.join(FORMATS)}.")
    frame = records_frame(result.stats)
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return _json(result, frame)
    if fmt == "latex":
        return _latex(frame, result.warnings)
    if fmt == "markdown":
        return _markdown(frame, result)
    return _table(frame, result, width)


# ---------------------------------------------------------------------------- numbers
def _isnan(x) -> bool:
    return x is None or (isinstance(x, (float, np.floating)) and math.isnan(x))


def fmt_value(x) -> str:
    """Estimates and CI limits: 4 decimals for accuracy-sized numbers, else 4 digits."""
    if _isnan(x):
        return ""
    x = float(x)
    if x == 0 or 1e-4 <= abs(x) < 1e3:
        return f"{x:.4f}"
    return f"{x:.3g}"


def fmt_p(p) -> str:
    if _isnan(p):
        return ""
    return f"{p:.3f}" if p >= 1e-3 else f"{p:.0e}"


def fmt_stat(stat, df) -> str:
    if _isnan(stat):
        return ""
    text = f"{stat:.3g}"
    if not _isnan(df):
        text += f" ({int(df) if float(df).is_integer() else f'{df:.3g}'})"
    return text



def _record_cells(r: dict, notes: str) -> dict[str, str]:
    """The formatted numbers of one test record: the same cells in text and markdown."""
    return {
        "estimate": fmt_value(r["estimate"]),
        "ci": _ci(r["ci_low"], r["ci_high"]),
        "stat": fmt_stat(r["statistic"], r["df"]),
        "p": fmt_p(r["p"]),
        "p_adj": fmt_p(r["p_adj"]),
        "p_perm": fmt_p(r.get("p_perm", math.nan)),
        "d_z": "" if _isnan(r["effect_size"]) else f"{r['effect_size']:.2f}",
        "n": str(int(r["n"])),
        "notes": notes,
    }

def _ci(lo, hi) -> str:
    if _isnan(lo) and _isnan(hi):
        return ""
    return f"[{fmt_value(lo)}, {fmt_value(hi)}]"


# ---------------------------------------------------------------------------- table
def _align(headers: list[str], rows: list[list[str]], numeric: list[bool]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    return ["  " + line(headers), *("  " + line(r) for r in rows)]


def _wrap(text: str, width: int, first: str = "", rest: str = "  ") -> str:
    return textwrap.fill(
        text,
        width=width,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _fragments(note: str) -> list[str]:
    return [
        f
        for f in (x.strip() for x in note.split("; "))
        if f and not any(g in f for g in GENERIC_NOTES)
    ]


def _table(frame: pd.DataFrame, result: StatsResult, width: int) -> str:
    out = [_wrap(w, width, "warning: ") for w in result.warnings]
    if frame.empty:
        out.append("no tests could be run on these results")
        return "\n".join(out) + "\n"
    alpha = float(result.stats.attrs.get("alpha", 0.05))
    for family, group in frame.groupby("family", sort=False):
        out += ["", *_family_section(str(family), group, alpha, width)]
    if result.anova.data_vars:
        out += ["", *_anova_section(result.anova)]
    out += [
        "",
        _wrap(
            f"{SELECTION.capitalize()}; full records (test, library, notes) in "
            "stats.nc or --format csv/json.",
            width,
        ),
    ]
    return "\n".join(out) + "\n"


def _correction_text(group: pd.DataFrame) -> str:
    """The family's correction and how many tests it spans ("Holm over 6 tests")."""
    corr, n = str(group["correction"].iloc[0]), len(group)
    if corr == "none":
        return "no correction"
    return f"{CORRECTION_NAMES.get(corr, corr)} over {n} test{'s' * (n > 1)}"


def _common_notes(group: pd.DataFrame) -> list[str]:
    """Note fragments every record of the family shares (said once, above its rows)."""
    per_record = [_fragments(str(n)) for n in group["note"]]
    return [f for f in per_record[0] if all(f in frags for frags in per_record[1:])]


def _shown_columns(
    columns: list[tuple[str, str, bool]], rows: list[dict[str, str]]
) -> tuple[list[str], list[list[str]], list[bool]]:
    """(headers, cells, numeric) of the columns that are not empty in every row."""
    keep = [c for c in columns if any(row[c[0]] for row in rows)]
    return [c[1] for c in keep], [[row[c[0]] for c in keep] for row in rows], [c[2] for c in keep]


def _family_section(family: str, group: pd.DataFrame, alpha: float, width: int) -> list[str]:
    spec = analyses.FAMILIES.get(family)
    how = _correction_text(group)
    lines = [f"== {family}: {how}" + (f" ({spec.kind})" if spec else "") + " =="]
    if spec:
        lines.append(_wrap(spec.description, width, "   ", "   "))
    estimands = list(dict.fromkeys(group["estimand"]))
    tests = list(dict.fromkeys(group["test"]))
    lines.append(_wrap("test: " + "; ".join(tests) + _ci_text(group), width, "   ", "     "))
    if len(estimands) == 1:
        lines.append(_wrap(f"estimand: {estimands[0]}", width, "   ", "     "))
    block_keys = [k for k in BLOCK_COORDS if k in group and _present(group[k])]
    row_keys = [k for k in ("h_find", "layer") if k in group and _present(group[k])]
    if "layer" in row_keys:  # one block per H_find keeps per-layer rows narrow
        block_keys.append("h_find")
        row_keys.remove("h_find")
    if len(estimands) > 1:
        row_keys.insert(0, "estimand")
    common = _common_notes(group)
    lines += [_wrap(f"note: {f}", width, "   ", "     ") for f in common]
    notes: dict[str, int] = dict.fromkeys(common, 0)  # said above: no number in the rows
    for key, block in group.groupby(block_keys, sort=False) if block_keys else [((), group)]:
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(
            f"{BLOCK_NAMES.get(k, k)} {_show(v)}" for k, v in zip(block_keys, key, strict=True)
        )
        if label:
            lines.append(f"-- {label}")
        lines += _rows(block, row_keys, family, alpha, notes)
    shown = [n for n, i in notes.items() if i][:MAX_NOTES]
    for i, text in enumerate(shown, 1):
        lines.append(_wrap(text, width, f"   [{i}] ", "       "))
    numbered = sum(1 for i in notes.values() if i)
    if numbered > len(shown):
        lines.append(f"   (+{numbered - len(shown)} more notes in stats.nc)")
    return lines


def _present(col: pd.Series) -> bool:
    return any(not _isnan(v) and str(v) != "" for v in col)


def _show(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def _ci_text(group: pd.DataFrame) -> str:
    ci = group.loc[group["ci_method"] != "none", ["ci_level", "ci_method"]].drop_duplicates()
    if ci.empty:
        return ""
    parts = [f"{lvl * 100:g}% {method} CI" for lvl, method in ci.itertuples(index=False)]
    return "; " + ", ".join(parts)


def _rows(
    block: pd.DataFrame, row_keys: list[str], family: str, alpha: float, notes: dict[str, int]
) -> list[str]:
    equivalence = family == "direct_effect_equivalence"
    columns = [(k, k.replace("h_find", "H_find"), False) for k in row_keys] + [
        ("estimate", "estimate", True),
        ("ci", "CI", True),
        ("stat", "stat (df)", True),
        ("p", "p", True),
        ("p_adj", "p_adj", True),
        ("p_perm", "p_perm", True),
        ("d_z", "d_z", True),
        ("n", "n", True),
    ]
    if equivalence:
        columns.append(("verdict", "equivalence", False))
    columns.append(("notes", "notes", False))
    rows = []
    for rec in block.itertuples(index=False):
        r = rec._asdict()
        refs = []
        for frag in _fragments(str(r.get("note", ""))):
            if frag not in notes:
                notes[frag] = max(notes.values(), default=0) + 1
            if notes[frag]:
                refs.append(str(notes[frag]))
        cells = {k: _show(r[k]) for k in row_keys} | _record_cells(r, ",".join(refs))
        if equivalence:
            p = r["p_adj"] if not _isnan(r["p_adj"]) else r["p"]
            cells["verdict"] = "" if _isnan(p) else ("shown" if p < alpha else "not shown")
        rows.append(cells)
    return _align(*_shown_columns(columns, rows))


def _anova_section(anova: xr.Dataset) -> list[str]:
    lines = [
        f"== within-seed ANOVA: {anova.attrs.get('formula', '')} ==",
        "   (each effect over its own effect x seed mean square; unadjusted F tests;",
        "   seeds with all four cells)",
    ]
    for pair, s, cell in _anova_cells(anova):
        lines.append(f"-- pair {pair}, sparsity {float(s):g}, n {int(cell['n'])} seeds")
        rows = [
            [str(term).replace("C(", "").replace(", Sum)", ""), *_anova_numbers(cell, t)]
            for t, term in enumerate(cell["term"].values)
        ]
        lines += _align(["term", "sum_sq", "df", "F", "p"], rows, [False, True, True, True, True])
    return lines


def _anova_cells(anova: xr.Dataset):
    """(pair, sparsity, cell) of each ANOVA cell that was tested."""
    for pair in anova["pair"].values:
        for s in anova["sparsity"].values:
            cell = anova.sel(pair=pair, sparsity=s)
            if not np.isnan(cell["df"].values).all():
                yield pair, s, cell


def _anova_numbers(cell: xr.Dataset, t: int) -> list[str]:
    """sum_sq, df, F and p of term ``t`` of an ANOVA cell."""
    return [
        f"{cell['sum_sq'].values[t]:.4g}",
        fmt_stat(cell["df"].values[t], math.nan),
        "" if _isnan(cell["F"].values[t]) else f"{cell['F'].values[t]:.3g}",
        fmt_p(cell["p"].values[t]),
    ]


# ---------------------------------------------------------------------------- json, latex
def _json(result: StatsResult, frame: pd.DataFrame) -> str:
    attrs = {
        k: result.stats.attrs.get(k)
        for k in ("ci_level", "alpha", "tost_margin", "libraries", "selection", "results_dir")
    }
    payload = {
        "records": _json_rows(frame),
        "warnings": result.warnings,
        "families": {k: vars(v) for k, v in analyses.FAMILIES.items()},
        "attrs": attrs,
    }
    if result.anova.data_vars:
        payload["anova"] = _json_rows(result.anova.to_dataframe().reset_index())
    return json.dumps(payload, indent=1) + "\n"


def _json_rows(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain Python values: floats keep every digit (Python's shortest exact
    repr; pandas' ``to_json`` rounds to 10 decimals, so p = 3.8e-11 became 0.0), NaN
    becomes null."""

    def plain(v):
        if isinstance(v, (float, np.floating)):
            return None if math.isnan(v) else float(v)
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, np.bool_):
            return bool(v)
        return v if isinstance(v, (str, int, bool)) or v is None else str(v)

    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "->": r"$\to$",
}


def latex_escape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith("->", i):
            out.append(LATEX_SPECIAL["->"])
            i += 2
            continue
        out.append(LATEX_SPECIAL.get(text[i], text[i]))
        i += 1
    return "".join(out)


def _latex(frame: pd.DataFrame, warnings: list[str]) -> str:
    """One tabular per family: the selection, estimate, CI, p, adjusted p, n."""
    lines = [f"% warning: {w}" for w in warnings]
    for family, group in frame.groupby("family", sort=False):
        keys = [k for k in ("estimand", *COORDS) if k in group and _present(group[k])]
        corr = CORRECTION_NAMES.get(str(group["correction"].iloc[0]), "")
        headers = [*keys, "estimate", "CI", "$p$", "$p_{adj}$", "$n$"]
        lines += [
            f"% {family} (correction: {corr})",
            "\\begin{tabular}{" + "l" * len(keys) + "r" * 5 + "}",
            "\\hline",
            " & ".join(h if h.startswith("$") else latex_escape(h) for h in headers) + " \\\\",
            "\\hline",
        ]
        for r in group.itertuples(index=False):
            r = r._asdict()
            cells = [latex_escape(_show(r[k])) for k in keys] + [
                fmt_value(r["estimate"]),
                _ci(r["ci_low"], r["ci_high"]),
                fmt_p(r["p"]),
                fmt_p(r["p_adj"]),
                str(int(r["n"])),
            ]
            lines.append(" & ".join(cells) + " \\\\")
        lines += ["\\hline", "\\end{tabular}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- markdown
def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[str]], numeric: list[bool]) -> list[str]:
    rule = ["---:" if num else "---" for num in numeric]
    return [
        "| " + " | ".join(_md_cell(c) for c in cells) + " |"
        for cells in (headers, rule, *rows)
    ]


def _markdown(frame: pd.DataFrame, result: StatsResult) -> str:
    """GitHub Markdown: warnings, then per family a heading (correction, kind), what it
    tests, and a table with estimate, CI, statistic, p and adjusted p; notes that differ
    between records become footnotes, numbered once for the whole document."""
    out = ["## Statistical tests", ""]
    if result.warnings:
        out += ["**Warnings**", "", *(f"- {_md_cell(w)}" for w in result.warnings), ""]
    if frame.empty:
        return "\n".join([*out, "No tests could be run on these results.", ""])
    footnotes: dict[str, int] = {}
    for family, group in frame.groupby("family", sort=False):
        out += _md_family(str(family), group, footnotes)
    if result.anova.data_vars:
        out += _md_anova(result.anova)
    out += [f"{SELECTION.capitalize()}.", ""]
    out += [f"[^{i}]: {_md_cell(text)}" for text, i in footnotes.items()]
    return "\n".join(out).rstrip("\n") + "\n"


def _md_family(family: str, group: pd.DataFrame, footnotes: dict[str, int]) -> list[str]:
    spec = analyses.FAMILIES.get(family)
    how = _correction_text(group)
    lines = [f"### {family}: {how}" + (f" ({spec.kind})" if spec else ""), ""]
    if spec:
        lines += [_md_cell(spec.description), ""]
    tests = list(dict.fromkeys(group["test"]))
    lines += ["Test: " + _md_cell("; ".join(tests) + _ci_text(group)) + ".", ""]
    common = _common_notes(group)
    lines += [f"Note: {_md_cell(f)}." for f in common] + ([""] if common else [])
    keys = [k for k in (*BLOCK_COORDS, "h_find", "layer") if k in group and _present(group[k])]
    if len(set(group["estimand"])) > 1:
        keys.append("estimand")
    columns = [(k, BLOCK_NAMES.get(k, k), False) for k in keys] + [
        ("estimate", "estimate", True),
        ("ci", "CI", True),
        ("stat", "statistic (df)", True),
        ("p", "p", True),
        ("p_adj", "adjusted p", True),
        ("p_perm", "permutation p", True),
        ("d_z", "d_z", True),
        ("n", "n", True),
        ("notes", "notes", False),
    ]
    rows = []
    for rec in group.itertuples(index=False):
        r = rec._asdict()
        refs = []
        for frag in _fragments(str(r.get("note", ""))):
            if frag in common:
                continue
            footnotes.setdefault(frag, len(footnotes) + 1)
            refs.append(f"[^{footnotes[frag]}]")
        rows.append({k: _show(r[k]) for k in keys} | _record_cells(r, " ".join(refs)))
    return [*lines, *_md_table(*_shown_columns(columns, rows)), ""]


def _md_anova(anova: xr.Dataset) -> list[str]:
    lines = [
        f"### Within-seed ANOVA: `{anova.attrs.get('formula', '')}`",
        "",
        "Each effect over its own effect x seed mean square; unadjusted F tests; seeds "
        "with all four cells.",
        "",
    ]
    rows = [
        [str(pair), f"{float(s):g}", str(term), *_anova_numbers(cell, t), str(int(cell["n"]))]
        for pair, s, cell in _anova_cells(anova)
        for t, term in enumerate(cell["term"].values)
    ]

    headers = ["pair", "sparsity", "term", "sum_sq", "df", "F", "p", "n"]
    numeric = [False, True, False, True, True, True, True, True]
    return [*lines, *_md_table(headers, rows, numeric), ""]
