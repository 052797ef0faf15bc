#!/usr/bin/env bash
# The CUDA check: the test suite with its CUDA-only tests, the engine benchmark on the GPU
# (fp32 and bf16), and a ResNet-20 study on synthetic CIFAR-shaped data end to end (find,
# decoupled eval, transplant, stats, figures) with its wall time and peak GPU memory.
# Downloads nothing. Needs a CUDA GPU and lprcausal importable (`pip install -e ".[test]"`).
#
#   bash benchmarks/cuda_check.sh [OUT_DIR]     # logs in OUT_DIR (default cuda_check)
#
# WORK (default OUT_DIR/work) holds the synthetic data, the run store and the results.
#
# About 7 minutes on one H200; the measured numbers are in benchmarks/README.md ("CUDA").
# PYTHON selects the interpreter (default python3); the exit status is non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-cuda_check}
work=${WORK:-$out/work}
mkdir -p "$out" "$work"
py=${PYTHON:-python3}
failed=0

step() {  # step NAME SECONDS COMMAND...: run it with a time limit, log to OUT/NAME.log
    local name=$1 limit=$2 t0=$SECONDS rc
    shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    rc=$?
    echo "   exit $rc after $((SECONDS - t0)) s"
    tail -n "${TAIL_LINES:-30}" "$out/$name.log" | sed 's/^/   /'
    [ "$rc" -eq 0 ] || failed=1
}

"$py" -c 'import torch, sys
if not torch.cuda.is_available():
    sys.exit("no CUDA device: this check needs a GPU")
print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU", torch.cuda.get_device_name(0))' || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null

# 0. The CPU's bitwise promise on this host (a many-core CPU: a run alone and in any group
#    must give the same bits; a 16-core Xeon once broke it), answered in seconds.
step tests_bitwise_cpu 120 "$py" -m pytest -q -rfEs -p no:cacheprovider tests/test_engine_bitwise.py \
    tests/test_store_integrity.py -k bitwise

# 1. The engine's CUDA tests first (CUDA graphs included), then the ResNet-20 benchmark
#    against a plain per-run loop, with and without CUDA graphs, in fp32 and bf16.
step tests_cuda 120 "$py" -m pytest -q -rfEs -p no:cacheprovider tests/test_engine_graphs.py \
    tests/test_engine_cuda.py
step bench_resnet 120 "$py" benchmarks/fused_training.py --device cuda --only ResNet --repeats 2
step bench_resnet_bf16 90 "$py" benchmarks/fused_training.py --device cuda --precision bf16 \
    --only ResNet --repeats 2

# 2. A ResNet-20 study on synthetic CIFAR-10, sampling the GPU's memory while it runs.
data=$work/data
"$py" benchmarks/synthetic_cifar10.py "$data" --n-train 5000 --n-test 1000
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$out/gpu_memory.csv" 2>/dev/null &
sampler=$!
study=(--store "$work/runs" --results "$work/results")
step study 150 "$py" -m lprcausal study run benchmarks/cuda_resnet20_study.toml "${study[@]}" \
    --data-root "$data" --device cuda --no-progress
kill "$sampler" 2>/dev/null
peak=$(sort -n "$out/gpu_memory.csv" 2>/dev/null | tail -n 1)
echo "   peak GPU memory in use during the study (whole device): ${peak:-unknown} MiB"
# The same study on a Dask LocalCluster (one worker per GPU) into a second store.
step study_dask 120 "$py" -m lprcausal study run benchmarks/cuda_resnet20_study.toml \
    --store "$work/runs_dask" --results "$work/results_dask" --data-root "$data" \
    --device cuda --executor dask --no-progress
"$py" - "$work/results/cuda_resnet20" "$work/results_dask/cuda_resnet20" <<'EOF'
import sys
import xarray as xr
for name in ("decoupled.nc", "transplant.nc"):
    a, b = (xr.load_dataset(f"{d}/{name}") for d in sys.argv[1:3])
    diff = float(abs(a["acc"] - b["acc"]).max())
    print(f"   {name}: local vs Dask, largest accuracy difference {diff:.4f}")
EOF
step stats 60 "$py" -m lprcausal stats "$work/results/cuda_resnet20"
step figures 60 "$py" -m lprcausal figures "$work/results/cuda_resnet20" --out "$work/figures"
"$py" - "$work/runs" <<'EOF'
import json, sys
from pathlib import Path
by_kind = {}
for folder in Path(sys.argv[1]).iterdir():
    if not (folder / "run.json").is_file():
        continue
    run = json.loads((folder / "run.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    acc = metrics.get("test_acc", metrics.get("dense_test_acc"))  # find runs: the dense model
    p = run.get("provenance", {})
    by_kind.setdefault(run["kind"], []).append((p.get("wall_seconds") or 0.0, p.get("device"), acc))
for kind, rows in sorted(by_kind.items()):
    total = sum(r[0] for r in rows)
    accs = [r[2] for r in rows if r[2] is not None] or [float("nan")]
    print(f"   {kind}: {len(rows)} runs, {total:.1f} s of run time ({total / len(rows):.2f} s a run), "
          f"devices {sorted({str(r[1]) for r in rows})}, test accuracy "
          f"{min(accs):.3f} to {max(accs):.3f} (mean {sum(accs) / len(accs):.3f})")
EOF

# 3. The whole test suite (none of its CUDA-only tests may be skipped for want of a GPU),
#    then every benchmark case.
step tests 240 "$py" -m pytest -q -rfEs -p no:cacheprovider tests
step bench_fp32 200 "$py" benchmarks/fused_training.py --device cuda --repeats 2

echo "== done: $([ $failed -eq 0 ] && echo 'every step passed' || echo 'SOME STEP FAILED')"
exit $failed
