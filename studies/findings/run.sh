#!/usr/bin/env bash
# Reproduce the MNIST-1D findings (studies/findings/README.md) in one command, from the
# repository root:
#
#   bash studies/findings/run.sh            # train what the store lacks, then tables + figures
#   bash studies/findings/run.sh --tables   # tables + figures from the committed results only
#
# Studies run in this order (the mediation studies choose their transplant pairs from
# the decoupling studies' results, by the rule written in their [transplant] table).
# Runs are cached in $STORE (default runs/findings): a second call trains nothing, and a
# killed call resumes. Measured cost: see each study file's header.
set -euo pipefail
cd "$(dirname "$0")/../.."
LPRCAUSAL=${LPRCAUSAL:-lprcausal}
PYTHON=${PYTHON:-python}
STORE=${STORE:-runs/findings}
HERE=studies/findings
RESULTS=$HERE/results
STUDIES="oneshot imp structured_mlp structured_cnn1d mediation structured_mlp_mediation structured_cnn1d_mediation"

if [ "${1:-}" != "--tables" ]; then
  for s in $STUDIES; do
    "$LPRCAUSAL" study run "$HERE/$s.toml" --store "$STORE" --results "$RESULTS" --no-progress
  done
fi

mkdir -p "$HERE/tables" figures/findings
for s in $STUDIES; do
  name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$HERE/$s.toml" | head -1)
  "$LPRCAUSAL" stats "$RESULTS/$name" --format markdown > "$HERE/tables/$name.md"
  "$PYTHON" "$HERE/mde.py" "$RESULTS/$name" > "$HERE/tables/${name}_mde.md"
  "$LPRCAUSAL" figures "$RESULTS/$name" --out "figures/findings/$name" --width double
done
"$PYTHON" "$HERE/readme_tables.py"   # README excerpts = the tables just written
