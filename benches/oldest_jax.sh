#!/usr/bin/env bash
# The counting tests on the oldest JAX and Flax that pyproject.toml accepts.
#
#   benches/oldest_jax.sh [VENV]        (default /tmp/comparator-oldest-jax; reused if there)
#   JAX=0.6.2 FLAX=0.11.2 benches/oldest_jax.sh /tmp/oldjax-0.6.2   (another pair)
#
# Builds a virtual environment outside the repository with jax, jaxlib and flax pinned to
# the lower bounds of pyproject.toml (or JAX / FLAX), the other dependencies at their
# newest, the project installed without dependencies; prints the versions, runs the
# counting tests below (traced against analytic counts, the fast and symbolic traces, the
# walk, the step, memory, the adapter to JAX's internals) and the time they took.
# Not part of CI (.ci/run): it downloads wheels and takes several minutes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-/tmp/comparator-oldest-jax}
PY=${PYTHON:-python3}

COUNTING_TESTS=(
  tests/test_trace.py tests/test_trace_memory.py tests/test_fasttrace.py tests/test_step.py
  tests/test_memory.py tests/test_jaxcompat.py tests/test_transformer.py tests/test_albert.py
  tests/test_electra.py tests/test_reformer.py tests/test_conventions.py tests/test_properties.py
)

lower() {   # the version after ">=" in pyproject.toml's dependency on $1
  "$PY" - "$ROOT/pyproject.toml" "$1" <<'EOF'
import re, sys
try:
    import tomllib
except ImportError:   # Python 3.10
    import tomli as tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
spec = next(d for d in deps if re.match(rf"{sys.argv[2]}\s*[><=]", d))
print(re.search(r">=\s*([\w.]+)", spec).group(1))
EOF
}
JAX=${JAX:-$(lower jax)}
FLAX=${FLAX:-$(lower flax)}

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
echo "== installing jax==$JAX jaxlib==$JAX flax==$FLAX into $VENV"
"$VENV/bin/pip" install -q "jax==$JAX" "jaxlib==$JAX" "flax==$FLAX" numpy tabulate numba \
  pytest hypothesis matplotlib 2>&1 | grep -v "is ignored" || true
"$VENV/bin/pip" install -q --no-deps -e "$ROOT" 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" - <<'EOF'
import sys, jax, jaxlib, flax, numpy
from comparator.count import jaxcompat
print(f"== python {sys.version.split()[0]}, jax {jax.__version__}, jaxlib {jaxlib.__version__}, "
      f"flax {flax.__version__}, numpy {numpy.__version__}")
print("== symbolic path:", "on" if jaxcompat.available() else f"off ({jaxcompat.plain_reason()})")
EOF
echo "== python -m pytest ${COUNTING_TESTS[*]}"
cd "$ROOT"
start=$(date +%s)
status=0
"$VENV/bin/python" -m pytest -p no:cacheprovider "${COUNTING_TESTS[@]}" || status=$?
echo "== exit status $status after $(( $(date +%s) - start )) s"
exit $status
