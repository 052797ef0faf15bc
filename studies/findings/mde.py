"""Print the minimum detectable effect of each family of paired t tests of a study's
stats.nc as a GitHub table (see lprcausal.stats.power for how it is computed).

    python studies/findings/mde.py studies/findings/results/findings_oneshot
"""

from __future__ import annotations

import sys
from pathlib import Path

from lprcausal.results.io import load_dataset
from lprcausal.stats.power import mde_by_family, mde_markdown

# Families whose differences are accuracies (lpr_layers tests layer ratios, not accuracy).
NOT_ACCURACY = ("lpr_layers",)


def main(results_dir: str) -> None:
    stats = load_dataset(Path(results_dir) / "stats.nc")
    alpha = float(stats.attrs["alpha"])
    rows = [r for r in mde_by_family(stats, alpha=alpha) if r.family not in NOT_ACCURACY]
    sys.stdout.write(mde_markdown(rows, alpha=alpha))


if __name__ == "__main__":
    main(sys.argv[1])
