#!/usr/bin/env bash
# The GPU check of issue 5, prepared for a lent accelerator (one NVIDIA H200): the real
# training step of bert-base at seq 512 in bf16 measured against the catalogue's H200 bf16
# peak (fp32 beside it, against the fp32 peak), and the attention kernels across lengths.
#
#   OUT=/some/dir bash benches/gpu_check.sh            # on the GPU machine, repo root
#   OUT=/tmp/gc   bash benches/gpu_check.sh --dry-run  # anywhere: tiny sizes, CPU is fine
#
# Installs nothing: the device image already holds jax with its CUDA plugin, flax, numba
# and tabulate (.library/device/KINDS.md), and the machine reaches no registry, so
# 'pip install -e .' / 'jax[cuda12]' could not run there anyway; the repository goes on
# PYTHONPATH instead.  Budget: well under 8 minutes on one H200 (each command is also
# capped by 'timeout'); a failing command is logged and the next one still runs.
# Writes under $OUT (at most 8 files, as the device tool returns): env.json, log.txt,
# bert_bf16.json, kernels.json, profile.json (comparator calibrate on the GPU: the
# calibrated profile of issue 14), predict.json (bench --predict: measured steps beside
# the time model on that profile and a flat MFU, transformer and reformer at two
# lengths), memory.json (comparator memory --run: issue 18's memory model beside XLA:GPU's
# buffer assignment and the measured peak, every architecture and policy), summary.txt
# (tables made from the JSON).
set -u
OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # device memory stats show the step, not a pool

if [ "${1:-}" = "--dry-run" ]; then   # the same commands at sizes a CPU finishes quickly
    SEQ=128; BATCH=1; STEPS=2; KSEQ=128:256:x2; HASHES=1,2; QUICK=--quick
    PSEQ=256,512; PSIZE="--d-model 64 --layers 2 --heads 2"; ACC=""; PROFILE_ACC=""
    MEM="--seq 256 --batch 1 --d-model 64 --layers 2 --heads 2"
else
    SEQ=512; BATCH=8; STEPS=20; KSEQ=512:16384:x2; HASHES=1,2,4,8; QUICK=""
    PSEQ=1024,4096; PSIZE="--d-model 512 --layers 4"; ACC="--accelerator h200"
    PROFILE_ACC="--accelerator h200"
    MEM="--seq 1024 --batch 2 --d-model 256 --layers 2"
fi

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/log.txt"; }
run() {   # run CAP NAME ARGS...: 'comparator ARGS' capped at CAP s, output to $OUT/NAME
    local cap=$1 name=$2; shift 2
    log "comparator $*  ->  $name"
    if timeout "$cap" "$PY" -m comparator "$@" -o "$OUT/$name" 2>>"$OUT/log.txt"; then
        log "ok $name"
    else
        log "FAILED ($?) $name"
    fi
}

log "gpu_check start (${1:-full})"
"$PY" - >"$OUT/env.json" 2>>"$OUT/log.txt" <<'PYEOF'
import json, platform, jax
d = jax.devices()[0]
print(json.dumps({"jax": jax.__version__, "python": platform.python_version(),
                  "platform": d.platform, "device_kind": d.device_kind,
                  "devices": len(jax.devices()), "memory_stats": d.memory_stats()},
                 indent=1, default=str))
PYEOF
cat "$OUT/env.json" | tee -a "$OUT/log.txt"

# worst case 100 + 120 + 120 + 160 + 150 s if every command hits its cap; expected about 6 min
BERT="bench --arch transformer --preset bert-base --seq $SEQ --batch $BATCH --steps $STEPS"
run 120 bert_bf16.json $BERT $ACC --dtype bf16 --format json
# issue 14: calibrate the GPU (its matmul grid, bandwidth, sort/gather/scatter, overhead),
# then validate the time model on it against measured steps (flat MFU beside it)
run 100 profile.json calibrate $QUICK $PROFILE_ACC --dtype fp32,bf16 --format json
run 160 predict.json bench --arch transformer,reformer $PSIZE --seq "$PSEQ" --steps 5 \
    --predict --profile "$OUT/profile.json" --format json
run 120 kernels.json bench --kernel attention --seq "$KSEQ" --hashes "$HASHES" --steps 5 \
    --format json
# issue 18: the memory model (memory-minimising schedule off the CPU) against XLA:GPU's
# buffer assignment and the measured peak (peak bytes in use), every architecture and policy
run 150 memory.json memory --arch all $MEM --run --format json
"$PY" - "$OUT" >"$OUT/summary.txt" 2>>"$OUT/log.txt" <<'PYEOF'
import json, os, sys
from tabulate import tabulate
out = sys.argv[1]
keys = ("arch", "dtype", "seq_len", "batch", "step_s", "tokens_per_s", "achieved_flops",
        "utilisation", "peak_flops", "xla_temp_bytes", "device_peak_bytes", "skipped")
for name in ("bert_bf16.json",):
    if os.path.exists(f"{out}/{name}"):
        recs = json.load(open(f"{out}/{name}"))
        print(name, "\n" + tabulate([[r.get(k) for k in keys] for r in recs], keys), "\n")
if os.path.exists(f"{out}/predict.json"):
    recs = [r for r in json.load(open(f"{out}/predict.json")) if "measured_step_s" in r]
    pk = ("arch", "seq_len", "measured_step_s", "predicted_step_s", "predicted_step_s_mfu")
    print("predict.json\n" + tabulate([[r.get(k) for k in pk] for r in recs], pk), "\n")
if os.path.exists(f"{out}/memory.json"):
    recs = json.load(open(f"{out}/memory.json"))
    mk = ("arch", "policy", "seq_len", "batch", "estimated_bytes", "xla_bytes", "ratio",
          "measured_peak_bytes", "schedule")
    print("memory.json\n" + tabulate([[r.get(k) for k in mk] for r in recs], mk), "\n")
if os.path.exists(f"{out}/kernels.json"):
    recs = json.load(open(f"{out}/kernels.json"))
    rows = [(r["seq_len"], r["variant"], r.get("fwd_s"), r.get("train_s"),
             r.get("train_flops"), r.get("skipped") or "") for r in recs if "variant" in r]
    print(tabulate(rows, ["seq", "variant", "fwd s", "fwd+bwd s", "fwd+bwd FLOPs", "skipped"]))
    print("crossovers:", json.dumps([r for r in recs if "crossovers" in r]))
PYEOF
log "gpu_check done"
