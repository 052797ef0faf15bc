"""``lprcausal transplant``: the 2x2 LPR-transplant factorial with its contrasts."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import click

from lprcausal.cli.app import cli
from lprcausal.cli.options import build_train_config, runtime_options, train_options
from lprcausal.cli.tables import table
from lprcausal.cli.transplant_checkpoint import checkpoint_target_options
from lprcausal.config import (
    CONTROLS,
    EVAL_MODES,
    TrainConfig,
    check_sparsity,
    load_toml,
    matching_level,
    to_toml,
)
from lprcausal.errors import LprError
from lprcausal.pipeline import EvalRun, FindRun
from lprcausal.pruning import overall_sparsity
from lprcausal.pruning.matching import layer_map_json, parse_layer_map
from lprcausal.results.io import save_dataset
from lprcausal.results.read import weight_roles
from lprcausal.results.schema import CROSS
from lprcausal.study.one_pair import pair_names, run_design
from lprcausal.study.transplant_design import (
    TransplantDesign,
    crosses_architectures,
    pair_runs,
)


def expand_refs(store, refs: tuple[str, ...], field: str) -> list[str]:
    """Run references, with shell-style patterns matched against run names."""
    out: list[str] = []
    names = store.names()
    for ref in refs:
        if any(ch in ref for ch in "*?["):
            hits = sorted(n for n in names if fnmatch.fnmatchcase(n, ref))
            if not hits:
                raise LprError(
                    f"{field} = {ref!r} matches no run name in store {str(store.root)!r}: "
                    f"expected a pattern matching names such as {', '.join(list(names)[:4])}."
                )
            out += hits
        else:
            out.append(ref)
    return out


def default_h_eval(ctx, pairs) -> tuple[TrainConfig, str]:
    """H_eval of the eval runs already made from these find runs, if they agree."""
    finds = {r for p in pairs for r in p}
    found = set()
    for run_id in ctx.store.run_ids():
        try:
            run = EvalRun(ctx.store, run_id)
        except LprError:
            continue
        if run.kind == "eval" and run.spec.find in finds:
            found.add(run.spec.train)
    if len(found) == 1:
        return found.pop(), "taken from the existing eval runs of these find runs"
    if len(found) > 1:
        raise LprError(
            f"The eval runs of these find runs used {len(found)} different H_eval: state the "
            "H_eval to use with --config or hyperparameter options (e.g. --lr)."
        )
    return TrainConfig(), "no eval runs of these find runs exist yet: using the default H"


@cli.command("transplant")
@click.option("--source", "sources", multiple=True, required=True,
              help="Find run(s) a (name, id, prefix or name pattern such as 'lrA-*').")
@click.option("--target", "targets", multiple=True, required=True,
              help="Find run(s) b, paired with the sources by seed; with --model, a "
                   "checkpoint file (.safetensors or a torch state dict).")
@click.option("--sparsity", "sparsities", type=float, multiple=True,
              help="Level(s) to transplant at [default: levels both runs have].")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="TOML file whose [train] table (or top level) is H_eval.")
@train_options()
@click.option("--mode", type=click.Choice(EVAL_MODES), default="rewind",
              show_default=True, help="Where each cell's weights start from.")
@click.option("--eval-seed", "eval_seeds", type=int, multiple=True,
              help="Eval replicate per pair (data order) [default: the source run's seed].")
@click.option("--alpha", "alphas", type=float, multiple=True,
              help="Dose-response: weights a at (1-alpha)*LPR_a + alpha*LPR_b (repeatable).")
@click.option("--control", "controls", type=click.Choice(CONTROLS), multiple=True,
              help="Control masks at the same sparsity on both runs' weights (repeatable).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="netCDF file for the results [default: results/transplant-<a>-<b>.nc].")
@click.option("--match", "match", type=click.Choice(("name", "position", "stage")),
              default=None,
              help="When source and target have other prunable layers (other widths, depths "
                   "or names): how target layers take source ratios: by name, by position "
                   "(k-th to k-th; equal counts) or by ResNet stage and block role (mean "
                   "ratio of the source's layers of that stage and role) [default: name].")
@click.option("--layer-map", "layer_map", type=click.Path(dir_okay=False), default=None,
              help="TOML file of target layer = source layer name or fixed ratio (every "
                   "target layer listed); replaces --match.")
@click.option("--allow-self", is_flag=True,
              help="Allow a pair whose source and target are the same run (every contrast 0).")
@runtime_options
@checkpoint_target_options
def transplant_command(sources, targets, sparsities, config, train_overrides, mode, eval_seeds,
                       alphas, controls, out, match, layer_map, allow_self, ctx) -> None:
    """Transplant layerwise pruning ratios: weights from {a, b} x LPR from {a, b}.

    Each cell prunes the trained weights of one run by layerwise magnitude at the other
    (or its own) run's LPR, rewinds and retrains with H_eval. Every cell is an ordinary
    stored run, and the netCDF file is the transplant.nc a study with this one pair
    writes. Prints, per sparsity, the 2x2 table of mean accuracies, then the statistics
    `lprcausal stats` gives for it: the paired contrasts TE, NIE_a, NIE_b, NDE_a, NDE_b,
    INT (t intervals over seeds), the proportion mediated, TOST, ANOVA, dose-response.

    Across architectures (source and target with other prunable layers), each target
    layer is pruned at the ratio of its matched source layer(s) (--match, --layer-map),
    removing exactly round(ratio * n) of its n weights (halves round up); only the
    target's weights take both LPRs, so the cells are (weights b, LPR a) and (weights b,
    LPR b), the dose-response and controls are on b's weights, and the statistics are
    NIE_b and the control contrasts.
    """
    store = ctx.store
    pairs = pair_runs(store, expand_refs(store, sources, "--source"),
                      expand_refs(store, targets, "--target"))
    same = [a for a, b in pairs if a == b]
    if same and not allow_self:
        raise LprError(
            f"--source and --target pair run {same[0]} with itself: expected two different "
            "find runs per seed (a transplant of a run onto itself has every contrast 0), "
            "or --allow-self to run it anyway."
        )
    for pair in pairs:  # before anything reads an engine run's H: say what can train them
        for run_id, field in zip(pair, ("source", "target"), strict=True):
            FindRun(store, run_id, field).require_engine("transplant")
    a0, b0 = FindRun(store, pairs[0][0], "source"), FindRun(store, pairs[0][1], "target")
    if sparsities:
        levels = tuple(check_sparsity(s) for s in sparsities)
    else:
        levels = tuple(s for s in a0.levels if matching_level(b0.levels, s) is not None)
    if config or train_overrides:
        h_eval, origin = build_train_config(config, "train", train_overrides), "as given"
    else:
        h_eval, origin = default_h_eval(ctx, pairs)
    seeds = tuple(eval_seeds) or tuple(FindRun(store, a).spec.seed for a, _ in pairs)
    names = pair_names(store, pairs, sources, targets)
    cross = crosses_architectures(store, pairs)
    rule, map_json = match_options(match, layer_map)
    if not cross and (match or layer_map):
        click.echo("note: source and target have the same prunable layers: --match and "
                   "--layer-map do not apply (the full 2x2 design is run).")
    design = TransplantDesign(
        pairs=tuple(pairs), sparsities=levels, train=h_eval, mode=mode, alphas=tuple(alphas),
        controls=tuple(controls), eval_seeds=seeds, names=names, cross=cross,
        match=rule if cross else "name", layer_map=map_json if cross else None,
    )
    ds = run_design(ctx, design, "lprcausal transplant")
    path = Path(out) if out else Path("results") / f"transplant-{pairs[0][0][:8]}-{pairs[0][1][:8]}.nc"
    save_dataset(ds, path)
    click.echo(f"\nH_eval {ds.attrs['h_eval']} ({origin}):\n{to_toml(h_eval)}")
    click.echo(f"a = {names[0]}: source {', '.join(p[0] for p in pairs)}\nb = {names[1]}: "
               f"target {', '.join(p[1] for p in pairs)}\nseeds: {', '.join(map(str, seeds))}")
    if ds["design"].values[0] == CROSS:
        click.echo(f"\nother architectures (layers matched by {rule}): only the weights of b "
                   "take both LPRs; cells of weights a are absent.")
    report(ds, path, [sum(overall_sparsity(FindRun(store, a).mask(s)) for a, _ in pairs)
                      / len(pairs) for s in levels])


def report(ds, path: Path, source_sparsity: list[float]) -> None:
    """Print the cells of a one-pair transplant Dataset per sparsity (means, mask
    sparsities beside the source's own ``source_sparsity``) and its statistics, as
    `lprcausal stats` computes them for a study's transplant.nc."""
    one = ds.isel(pair=0)
    roles = weight_roles(ds, str(ds["pair"].values[0]))
    for j, s in enumerate(float(v) for v in ds["sparsity"].values):
        _print_means(one, j, s, roles)
        _print_sparsity(one, j, source_sparsity[j], roles)
    from lprcausal.stats.render import render  # scipy / statsmodels: only when reporting
    from lprcausal.stats.report import analyze

    result = analyze({"transplant": ds}, source=str(path))
    result.warnings = [w for w in result.warnings if not w.startswith("no decoupled.nc")]
    click.echo("\n" + render(result, "table"), nl=False)
    click.echo(f"\nresults: {path}")


def match_options(match: str | None, layer_map: str | None) -> tuple[str, str | None]:
    """(match rule, canonical layer-map JSON) from --match and --layer-map."""
    if layer_map is None:
        return match or "name", None
    if match is not None:
        raise LprError(
            f"--match {match} and --layer-map are both given: expected one of them (a layer "
            "map lists the source layer or ratio of every target layer itself)."
        )
    return "map", layer_map_json(parse_layer_map(load_toml(layer_map), f"--layer-map {layer_map}"))


def _print_sparsity(ds, j: int, source: float, roles: tuple[str, ...]) -> None:
    """Global sparsity of each cell's mask beside the source's own: across architectures,
    the target's at the source's LPR is what the matched per-layer counts add up to."""
    if "mask_sparsity" not in ds:
        return
    cells = ds["mask_sparsity"].isel(sparsity=j).mean("seed")
    rows = [["source a, its own mask", source]]
    rows += [[f"weights {w}, LPR {lp}", float(cells.sel(w_src=w, lpr_src=lp))]
             for w in roles for lp in ("a", "b")]
    click.echo("global sparsity of the masks (mean over seeds)")
    click.echo(table(["mask", "sparsity"], rows))


def _print_means(ds, j: int, s: float, roles: tuple[str, ...]) -> None:
    """The 2x2 table of mean accuracies at one sparsity, and the dose and control means."""
    mean = ds["acc"].isel(sparsity=j).mean("seed").transpose("w_src", "lpr_src").values
    click.echo(f"\n== sparsity {s:g} ==  mean eval accuracy (rows: weights from, cols: LPR from)")
    click.echo(table(["weights \\ LPR", "a", "b"],
                     [[w, mean[i, 0], mean[i, 1]] for i, w in enumerate(("a", "b"))
                      if w in roles]))
    if "acc_alpha" in ds:
        dose = ds["acc_alpha"].isel(sparsity=j).mean("seed")
        click.echo(table(["alpha", "mean acc"], [[float(a), float(dose.sel(alpha=a))]
                                                 for a in ds["alpha"].values]))
    if "acc_control" in ds:
        ctl = ds["acc_control"].isel(sparsity=j).mean("seed")
        click.echo(table(["control", *(f"weights {w}" for w in roles)],
                         [[str(c), *(float(ctl.sel(control=c, w_src=w)) for w in roles)]
                          for c in ds["control"].values]))
