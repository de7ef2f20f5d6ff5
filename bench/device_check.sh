#!/usr/bin/env bash
# bench/device_check.sh — the one prepared check of jaxconv on a machine with a GPU (issue 14).
#
#   bash bench/device_check.sh            # on the GPU machine: ~5 minutes, offline
#   bash bench/device_check.sh --dry-run  # anywhere: the same code paths on the CPU, < 1 minute
#
# Offline and install-free: it runs from this source tree with PYTHONPATH=. on whatever Python
# has jax, flax, optax (and torch, pytest when present); no pip, no network, no C++ extension
# (the oneDNN lowering is CPU-only and its tests skip without it). Everything it writes goes
# under one folder, $OUT when set, else ./device-check/:
#
#   env.txt                  nvidia-smi, versions, jax's devices, jaxconv's device kind
#   bench/<suite>.{json,md}  python -m bench results (bench/__init__.py documents the records)
#   bench-<suite>.log        each bench run's terminal output
#   tests.log, tests.xml     pytest's output and JUnit XML
#   summary.md               each part's exit status and seconds, pytest's last line
#
# Parts and their budgets on an H200 (the whole run is capped at $DEVICE_CHECK_BUDGET_S,
# default 290 s; each part gets the smaller of its own budget and what is left, and a part cut
# short by its budget is reported as such, rc 124):
#
#   env          ~10 s   jax start-up and device query (budget 20 s)
#   bottleneck   ~30 s   the seed's Inception 4a 5x5 branch, direct vs 1x1 bottleneck, with torch
#                        direct and bottleneck beside it: 2 batches x ~6 compiles of ~1 s (35 s)
#   conv1x1      ~50 s   GoogLeNet's ~30 distinct 1x1 convs x 2 batches x 3 variants (+ torch):
#                        ~180 small compiles of ~0.2 s, timing negligible (55 s)
#   inception    ~110 s  the nine Inception blocks x 2 batches x {forward, fwd+bwd} x {unfused,
#                        fused 1x1}: 72 compiles of ~1 s; timing ~10 x 2 calls of <= 2 ms each;
#                        torch running each block branch by branch beside them (130 s)
#   tests        the rest tests/test_kernels.py, test_ops.py, test_nn.py, test_depthwise.py,
#                        test_pooling.py, test_conv_transpose.py: ~750 tests, compile-bound
#                        (~10 min with 2 CPU workers); likely cut (at ~50 s). Rerun them alone:
#                        DEVICE_CHECK_PARTS=tests DEVICE_CHECK_BUDGET_S=420 bash bench/device_check.sh
#
# Every bench suite runs in bf16 at batches 32 and 128 with --peers torch (torch + cuDNN,
# channels_last), --repeats 10 --warmup 2, each in its own process so a suite cut short by its
# budget loses only itself (results are written when a suite ends). JAX does not preallocate
# GPU memory here (XLA_PYTHON_CLIENT_PREALLOCATE=false) so torch in the same process gets its
# share (python -m bench sets the same default itself). On a GPU bench times the device: calls
# queued ~2 ms per sample and synced once, jax inputs rotated through copies beyond the L2.
#
# DEVICE_CHECK_PARTS="inception tests" reruns only those parts (default: all four).
# Tests print each result as it comes (-v), so a run cut short still shows what passed.
#
# --dry-run: JAX_PLATFORMS=cpu, the same three suites under --quick (a tiny shape, batch 2,
# bf16, torch when installed, 2 repeats) in one bench process (start-up is most of their time
# on a CPU), and the same test files restricted by -k to a few fast tests: ~40 s on an idle
# 2-core machine (env ~3 s, suites ~20 s, tests ~15 s). CI runs it (.ci/run).
#
# Exit status: 0 when every part passed, else 1 (summary.md says which).
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
case "${1:-}" in
  "") ;;
  --dry-run) DRY=1 ;;
  -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench/device_check.sh: unknown argument '$1' (use --dry-run or --help)" >&2; exit 2 ;;
esac

PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/device-check}
mkdir -p "$OUT/bench"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONDONTWRITEBYTECODE=1

TESTS=(tests/test_kernels.py tests/test_ops.py tests/test_nn.py tests/test_depthwise.py
       tests/test_pooling.py tests/test_conv_transpose.py)
BENCH=(--dtype bfloat16 --repeats 10 --warmup 2 --no-plots)
TEST_ARGS=()
if [ "$DRY" = 1 ]; then
  export JAX_PLATFORMS=cpu JAXCONV_BENCH_TIMER=queued
  BUDGET=${DEVICE_CHECK_BUDGET_S:-100}  # a cap for a loaded machine; ~40 s on an idle one
  declare -A PART_S=([env]=20 [suites]=50 [tests]=40)
  BENCH+=(--quick --batch 2 --repeats 2 --warmup 1)
  # A few fast tests of each file: the same files, imports, fixtures and tolerances.
  TEST_ARGS=(-k "frozen_record or default_plan_rules or choose_reads or seed_1x1_example or \
issues_circular or output_is_the_branches or separable_ratio_is or issues_partial or \
string_padding_matches_lax")
else
  BUDGET=${DEVICE_CHECK_BUDGET_S:-290}
  declare -A PART_S=([env]=20 [bottleneck]=35 [conv1x1]=55 [inception]=130 [tests]=$BUDGET)
  BENCH+=(--batch 32,128)
fi
START=$SECONDS

{
  echo "# jaxconv device check$([ "$DRY" = 1 ] && echo ' (dry run, CPU)')"
  echo
  echo "| part | rc | seconds | note |"
  echo "|---|---|---|---|"
} > "$OUT/summary.md"
FAILED=0

# part NAME LOG CMD...: runs CMD with the part's budget (capped by what is left), logs it,
# and adds its row to summary.md.
part() {
  local name=$1 log=$2; shift 2
  local left=$((BUDGET - (SECONDS - START)))
  local limit=${PART_S[$name]}
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 5 ]; then
    echo "| $name | - | 0 | skipped: the ${BUDGET} s budget is spent |" >> "$OUT/summary.md"
    FAILED=1
    return
  fi
  echo "== $name (limit ${limit} s) -> $log" >&2
  local t0=$SECONDS rc=0
  timeout -k 5 "$limit" "$@" > "$log" 2>&1 || rc=$?
  local note=""
  [ "$rc" = 124 ] && note="cut short by its ${limit} s budget"
  [ "$name" = tests ] && note="$note $(grep -E '(passed|failed|error|no tests ran)' "$log" | tail -1)"
  echo "| $name | $rc | $((SECONDS - t0)) | ${note} |" >> "$OUT/summary.md"
  tail -3 "$log" >&2
  [ "$rc" = 0 ] || FAILED=1
}

env_report() {
  command -v nvidia-smi > /dev/null && nvidia-smi
  "$PY" - <<'EOF'
import importlib.metadata, platform
print("python", platform.python_version())
for name in ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "pytest", "matplotlib"):
    try:
        print(name, importlib.metadata.version(name))
    except importlib.metadata.PackageNotFoundError:
        print(name, "not installed")
import jax, jaxconv
print("devices", jax.devices())
print("jaxconv device_kind", jaxconv.convolution.device_kind())
EOF
}
export PY
export -f env_report
part env "$OUT/env.txt" bash -c env_report

have() { "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('$1') is None)"; }
have torch && BENCH+=(--peers torch)
PARTS=${DEVICE_CHECK_PARTS:-bottleneck conv1x1 inception tests}
SUITES=()
for suite in bottleneck conv1x1 inception; do
  [[ " $PARTS " == *" $suite "* ]] && SUITES+=("$suite")
done
if [ "$DRY" = 1 ] && [ "${#SUITES[@]}" -gt 0 ]; then  # one process: start-up is most of it
  part suites "$OUT/bench-suites.log" "$PY" -m bench "${SUITES[@]}" "${BENCH[@]}" --out "$OUT/bench"
else
  for suite in "${SUITES[@]}"; do
    part "$suite" "$OUT/bench-$suite.log" "$PY" -m bench "$suite" "${BENCH[@]}" --out "$OUT/bench"
  done
fi

if [[ " $PARTS " != *" tests "* ]]; then
  :
elif have pytest; then
  part tests "$OUT/tests.log" "$PY" -m pytest -v -p no:cacheprovider --durations=15 \
    --junitxml="$OUT/tests.xml" "${TEST_ARGS[@]}" "${TESTS[@]}"
else
  echo "| tests | - | 0 | skipped: pytest is not installed for $PY |" >> "$OUT/summary.md"
  FAILED=1
fi

echo >> "$OUT/summary.md"
echo "total $((SECONDS - START)) s; results in $OUT" >> "$OUT/summary.md"
cat "$OUT/summary.md" >&2
exit "$FAILED"
