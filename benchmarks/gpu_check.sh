#!/usr/bin/env bash
# The GPU check of issue 12, as one short script for a lent GPU machine (see README, "Running at
# scale"). It installs what the device image lacks (mlxtend: carry its wheel in .wheels/), then:
#   1. bench perf on CUDA (trainer vs plain loop, roofline, probe time);
#   2. the cold main job, bench run prediction=pruning, on the GPU with workers=auto
#      (several worker processes share the GPU), into a fresh out/cache;
#   3. the same job's verdict table beside a CPU reference when one is given (REF=run dir).
# Everything it writes goes to $OUT (or ./gpu_out). Budget: about 5 minutes on an H100.
set -euo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
python3 -m pip install --quiet --no-deps --no-index .wheels/mlxtend-*.whl 2>&1 | tail -1 || true
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
echo "== bench perf (cuda)"
timeout 120 python3 -m bench perf device=cuda 2>&1 | tee "$OUT/perf.txt"
echo "== cold bench run prediction=pruning on the GPU"
start=$(date +%s)
timeout 420 python3 -m bench run prediction=pruning device=cuda workers=auto out="$OUT/results" \
    reports="$OUT/reports" > "$OUT/pruning.txt" 2> "$OUT/pruning.err" || echo "pruning exit $?"
echo "cold pruning wall: $(( $(date +%s) - start )) s" | tee -a "$OUT/pruning.txt"
grep -E "^(Primary|Overall|time:)" "$OUT/pruning.txt" || tail -5 "$OUT/pruning.err"
if [ -n "${REF:-}" ]; then
    python3 - "$REF" "$OUT/results" <<'EOF'
import sys
from bench import results
ref = results.read_run(sys.argv[1])[0]
gpu = results.read_run(results.latest_run(sys.argv[2], "pruning"))[0]
same, why = results.same_values(ref, gpu)
print("GPU table vs CPU reference:", "identical" if same else why)
EOF
fi
