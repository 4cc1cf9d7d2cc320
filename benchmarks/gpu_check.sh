#!/usr/bin/env bash
# The GPU check of issues 12 and 20, as one short script for a lent GPU machine (see README, "Running at
# scale"). Hard budget: 8 minutes in all (BUDGET seconds; every step has its own `timeout` and is cut to
# what is left of a global deadline, and a step that no longer fits is skipped with a line saying so).
# It installs what the device image lacks (mlxtend: carry its wheel in .wheels/), then:
#   1. bench perf on CUDA (trainer vs plain loop, roofline, probe time; the per-method cost table);
#   2. the confirm plan, bench plan prediction=all profile=confirm (skipped where `bench plan` is absent);
#   3. ONCE: is batched-seed GPU training (bench.train.seedbatch.train_group) bit-identical to per-seed GPU
#      training (bench.train.trainer.fit_encoder)? infomax on digits, 2 epochs, S = 3, torch.equal on every
#      state_dict tensor; prints "bit-identical" or the max difference, either way (and the sequential
#      run-to-run difference beside it, which says whether the GPU path is deterministic at all);
#   4. a timed slice of confirm's training on the device, one process: infomax, ae, simclr on mnist5k at
#      confirm's budget and seeds 100-102, sequential eager vs batched seeds vs compiled (cold, reused);
#   5. the same slice through `bench run` with several workers on the one GPU: prediction=pruning under
#      profile=confirm seeds=[100,101,102] (batch_seeds=true), then the quick profile's infomax and ae jobs
#      with compile=false and compile=true (confirm refuses compile=).
# With REF=<a CPU run dir of the same confirm slice>, the slice's table is compared with it.
# Everything it writes goes to $OUT (or ./gpu_out). DEV=cpu runs the python parts on the CPU (smoke test).
set -uo pipefail
OUT=${OUT:-gpu_out}
BUDGET=${BUDGET:-480}
DEV=${DEV:-cuda}
WORKERS=${WORKERS:-4}
mkdir -p "$OUT"
DEADLINE=$(( $(date +%s) + BUDGET ))
export OUT DEV DEADLINE PYTHONPATH=$PWD TORCHINDUCTOR_CACHE_DIR="$OUT/inductor"

left() { echo $(( DEADLINE - $(date +%s) )); }
# step NAME MAX_SECONDS CMD...: run CMD under `timeout` (MAX_SECONDS, cut to the time left), tee to $OUT/NAME.txt
step() {
    local name=$1 max=$2 budget
    shift 2
    budget=$(( $(left) - 5 ))
    [ "$budget" -lt "$max" ] && max=$budget
    if [ "$max" -lt 15 ]; then
        echo "== $name: skipped ($(left) s left of the ${BUDGET} s budget)" | tee -a "$OUT/summary.txt"
        return 0
    fi
    echo "== $name (at most $max s)"
    local t0=$SECONDS rc=0
    timeout "$max" "$@" > "$OUT/$name.txt" 2>&1 || rc=$?
    cat "$OUT/$name.txt" | tail -n 40
    echo "== $name: exit $rc in $(( SECONDS - t0 )) s$([ $rc = 124 ] && echo ' (timed out)')" \
        | tee -a "$OUT/summary.txt"
}
# the bench subcommands this checkout has (from its own "unknown command" message)
CMDS=$(python3 -m bench __no_such_command__ 2>&1 | sed -n 's/.*choices: \(.*\))$/\1/p')
has_cmd() { [[ ", $CMDS, " == *", $1, "* ]]; }

if compgen -G ".wheels/mlxtend-*.whl" > /dev/null; then
    python3 -m pip install --quiet --no-deps --no-index .wheels/mlxtend-*.whl 2>&1 | tail -1 || true
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | tee "$OUT/gpu.txt"
echo "bench commands here: $CMDS" | tee "$OUT/summary.txt"

# 1. perf
step perf 80 python3 -m bench perf device="$DEV"

# 2. the confirm plan (another change builds `bench plan`; say so and go on where it is missing)
if has_cmd plan; then
    step plan 40 python3 -m bench plan prediction=all profile=confirm device="$DEV" workers="$WORKERS" \
        out="$OUT/confirm"
else
    echo "== plan: skipped: this checkout has no 'bench plan' (commands: $CMDS)" | tee -a "$OUT/summary.txt"
fi

# 3. batched vs sequential, bit for bit, once
step bitident 60 python3 - <<'EOF'
import os
import sys

import torch

from bench import catalog
from bench.data import load_dataset
from bench.train.methods import METHODS
from bench.train.trainer import fit_encoder

try:
    from bench.train import seedbatch
except ImportError:
    print("bench.train.seedbatch: not in this checkout; the batched-vs-sequential check is skipped")
    sys.exit(0)
catalog.load_all()
torch.set_num_threads(1)  # as bench run (threads=1): more threads only slow these small steps
dev = torch.device(os.environ.get("DEV", "cuda"))
ds = load_dataset("digits", device=dev)
cfg, seeds, kw = METHODS.get("infomax").Config(), [0, 1, 2], {"epochs": 2, "batch_size": 128, "device": dev}


def maxdiff(a, b):
    diffs = [float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a]
    same = all(torch.equal(a[k], b[k]) for k in a)
    return same, max(diffs, default=0.0)


seq = [fit_encoder("infomax", cfg, ds, 64, s, track=False, **kw)[0].state_dict() for s in seeds]
again = [fit_encoder("infomax", cfg, ds, 64, s, track=False, **kw)[0].state_dict() for s in seeds]
grp = [m.state_dict() for m, _ in seedbatch.train_group("infomax", cfg, [ds] * 3, 64, seeds, track=False, **kw)]
res = [maxdiff(a, b) for a, b in zip(seq, grp, strict=True)]
rep = [maxdiff(a, b) for a, b in zip(seq, again, strict=True)]
same, worst = all(r[0] for r in res), max(r[1] for r in res)
print(f"batched vs sequential on {dev} (infomax, digits, 2 epochs, S=3): "
      + ("bit-identical" if same else f"NOT bit-identical, max |d| = {worst:.3g}"))
print(f"sequential vs sequential again on {dev}: "
      + ("bit-identical" if all(r[0] for r in rep) else f"differs, max |d| = {max(r[1] for r in rep):.3g}"))
EOF

# 4. the training slice in one process: sequential, batched, compiled
step slice 110 python3 - <<'EOF'
import os
import time

import torch

from bench import catalog
from bench.config import RunConfig
from bench.data import load_dataset
from bench.train.methods import METHODS
from bench.train.trainer import fit_encoder

try:
    from bench.train import seedbatch
except ImportError:
    seedbatch = None
catalog.load_all()
torch.set_num_threads(1)  # as bench run (threads=1): more threads only slow these small steps
dev = torch.device(os.environ.get("DEV", "cuda"))
deadline = int(os.environ.get("DEADLINE", "0")) or time.time() + 110
epochs = RunConfig(profile="confirm").resolved_epochs("mnist5k")
ds = load_dataset("mnist5k", device=dev)
seeds = [100, 101, 102]
print(f"confirm slice on {dev}: mnist5k, K=64, batch 128, {epochs} epochs, seeds {seeds}; wall s per mode")


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn):
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t0, out


kw = {"epochs": epochs, "batch_size": 128, "device": dev, "track": False}
print(f"{'method':<8} {'mode':<22} {'wall s':>8} {'jobs/s':>7} {'vs sequential':>13}  note", flush=True)


def show(name, mode, s, seq_s, note=""):
    print(f"{name:<8} {mode:<22} {s:>8.2f} {len(seeds) / s:>7.2f} {seq_s / s:>12.2f}x  {note}", flush=True)


for name in ("infomax", "ae", "simclr"):  # compiled: infomax and ae only (simclr's compile alone takes minutes)
    cfg = METHODS.get(name).Config()
    seq_s, _ = timed(lambda: [fit_encoder(name, cfg, ds, 64, s, **kw) for s in seeds])
    show(name, "sequential eager", seq_s, seq_s)
    if seedbatch is not None and seedbatch.batchable(name) and time.time() < deadline - 30:
        s, _ = timed(lambda: seedbatch.train_group(name, cfg, [ds] * len(seeds), 64, seeds, **kw))
        show(name, f"batched S={len(seeds)}", s, seq_s)
    for label in ("compiled (cold)", "compiled (reused)") if name != "simclr" else ():
        if time.time() > deadline - 40:
            print(f"{name:<8} {label:<22} skipped: out of time", flush=True)
            continue
        s, out = timed(lambda: [fit_encoder(name, cfg, ds, 64, sd, compile=True, **kw) for sd in seeds])
        show(name, label, s, seq_s, out[0][1].get("compile", ""))
EOF

# 5. the slice through bench run, several workers on one GPU
cold_run() {  # cold_run NAME MAX ARGS...: a fresh out/cache per run, its time: line pulled out
    local name=$1 max=$2
    shift 2
    step "$name" "$max" python3 -m bench run device="$DEV" workers="$WORKERS" out="$OUT/$name" \
        reports="$OUT/$name/reports" "$@"
    [ -f "$OUT/$name.txt" ] || return 0
    grep -E "^time:" "$OUT/$name.txt" || echo "($name: no time: line; see $OUT/$name.txt)"
    echo "$name: $(find "$OUT/$name" -name meta.json -path '*cache*' 2>/dev/null | wc -l) encoders cached" \
        | tee -a "$OUT/summary.txt"
}
cold_run confirm_pruning 90 prediction=pruning profile=confirm 'seeds=[100,101,102]' batch_seeds=true
for c in false true; do
    cold_run "quick_compile_$c" 45 prediction=probe dataset=mnist5k 'methods=[infomax,ae]' \
        'seeds=[100,101,102]' compile=$c batch_seeds=false
done
# the confirm slice's table beside a CPU reference of the same run, when one is given (REF=run dir)
if [ -n "${REF:-}" ] && [ "$(left)" -gt 15 ]; then
    timeout "$(( $(left) - 5 ))" python3 - "$REF" "$OUT/confirm_pruning" <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import sys

from bench import results

try:
    gpu = results.read_run(results.latest_run(sys.argv[2], "pruning"))[0]
except Exception as e:  # the slice did not finish within its budget
    print(f"GPU table vs CPU reference: no finished GPU run ({type(e).__name__}: {e})")
    sys.exit(0)
same, why = results.same_values(results.read_run(sys.argv[1])[0], gpu)
print("GPU table vs CPU reference:", "identical" if same else why)
EOF
fi
echo "total: $(( BUDGET - $(left) )) s of the ${BUDGET} s budget" | tee -a "$OUT/summary.txt"
