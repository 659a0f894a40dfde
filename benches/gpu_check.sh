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
# bert_bf16.json/.txt, bert_fp32.json, kernels.json/.txt (a table made from the JSON).
set -u
OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # device memory stats show the step, not a pool

if [ "${1:-}" = "--dry-run" ]; then   # the same commands at sizes a CPU finishes quickly
    SEQ=128; STEPS=2; KSEQ=128:256:x2; HASHES=1,2; ACC="--accelerator h200"; CAP=300
else
    SEQ=512; STEPS=20; KSEQ=512:16384:x2; HASHES=1,2,4,8; ACC="--accelerator h200"; CAP=240
fi

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/log.txt"; }
run() {   # run NAME ARGS...: 'comparator ARGS' capped at $CAP s, output to $OUT/NAME
    local name=$1; shift
    log "comparator $*  ->  $name"
    if timeout "$CAP" "$PY" -m comparator "$@" -o "$OUT/$name" 2>>"$OUT/log.txt"; then
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

BERT="bench --arch transformer --preset bert-base --seq $SEQ --batch 8 --steps $STEPS $ACC"
run bert_bf16.json $BERT --dtype bf16 --format json
run bert_bf16.txt  $BERT --dtype bf16 --format text --steps 5
run bert_fp32.json $BERT --dtype fp32 --format json
run kernels.json bench --kernel attention --seq "$KSEQ" --hashes "$HASHES" --steps 5 \
    --format json
"$PY" - "$OUT/kernels.json" >"$OUT/kernels.txt" 2>>"$OUT/log.txt" <<'PYEOF'
import json, sys
from tabulate import tabulate
recs = json.load(open(sys.argv[1]))
rows = [(r["seq_len"], r["variant"], r.get("fwd_s"), r.get("train_s"), r.get("train_flops"),
         r.get("skipped") or "") for r in recs if "variant" in r]
print(tabulate(rows, ["seq", "variant", "fwd s", "fwd+bwd s", "fwd+bwd FLOPs", "skipped"]))
print("crossovers:", json.dumps([r for r in recs if "crossovers" in r]))
PYEOF
log "gpu_check done"
