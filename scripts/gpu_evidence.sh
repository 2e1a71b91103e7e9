#!/usr/bin/env bash
# All the GPU evidence of one lent machine in ONE call (issue 20): about 8 minutes, nothing installed.
#
#   OUT=/some/dir bash scripts/gpu_evidence.sh                  # on the GPU machine (default --device cuda)
#   OUT=/tmp/ev bash scripts/gpu_evidence.sh --device cpu --quick --budget 200 --backends numpy,torch
#                                                               # the rehearsal on a CPU machine (tests do this)
#
# Steps, each under `timeout -s TERM` (an overrun keeps what finished: gpubench and the pytest plug-in mark the
# run interrupted, and every finished case is already committed), each with a share of --budget (default 470 s)
# and never past it; gpubench commands get a --time-limit a little under their step's, so they stop on their own:
#   envcheck   which Python and packages are here, whether gpubench is installed (else it runs from this
#              checkout: PYTHONPATH, no pip, no setuptools, no writable site-packages needed), nvidia-smi
#   env        gpubench env --json                      -> $OUT/env.json
#   calibrate  gpubench calibrate --device D            (one case per ceiling first)
#   fidelity   benchmarks/harness_accuracy.py --fidelity -> $OUT/fidelity.txt (gpubench's median against 100 calls
#              between two CUDA events: torch bf16 8192^3, cupy SAXPY 2^26)
#   tour       gpubench run --suite tour                (reuses the calibration's ceilings for D)
#   lecture    gpubench run --suite lecture             (the lecture's 5000^3 experiment, CPU and GPU)
#   pytest     a short pytest-benchmark run into the store (--gpubench-store) -> $OUT/bench.json
#   export     gpubench export --run all                -> $OUT/export.json
#   report     gpubench report (every run but the calibration) -> $OUT/report.html (render it later from the
#              returned store, `gpubench report --store gpubench.sqlite`, if it fails here)
# The store lives outside $OUT while the steps run and is copied in at the end, checkpointed (no -wal file).
# $OUT gets at most 8 files: evidence.log, steps.tsv, env.json, fidelity.txt, bench.json, export.json,
# report.html, gpubench.sqlite. Exit status: 0 when every step ran (a step's own failures are in steps.tsv).
set -u -o pipefail

device=cuda
budget=470
quick=""
backends=""
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device=${2:?--device needs a value}; shift 2 ;;
        --budget) budget=${2:?--budget needs seconds}; shift 2 ;;
        --quick) quick="--quick"; shift ;;
        --backends) backends=${2:?--backends needs a list}; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "gpu_evidence.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$budget" in ''|*[!0-9]*) echo "gpu_evidence.sh: --budget must be whole seconds" >&2; exit 2 ;; esac

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-./gpu-evidence}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/gpubench-evidence.XXXXXX")
store="$work/gpubench.sqlite"
log="$out/evidence.log"
steps="$out/steps.tsv"
PY=${PYTHON:-python3}
export GPUBENCH_STORE="$store" PYTHONUNBUFFERED=1 GPUBENCH_PROBE_TIMEOUT=${GPUBENCH_PROBE_TIMEOUT:-45}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
start=$(date +%s)
: > "$log"
printf 'step\texit\tseconds\tlimit\n' > "$steps"
cd "$repo" || exit 2

say() { echo "== $*" | tee -a "$log"; }
left() { echo $(( budget - ($(date +%s) - start) )); }
backend_args=()
[ -n "$backends" ] && backend_args=(--backend "$backends")
export PY out device repo

# step NAME PERCENT COMMAND...: run COMMAND (a program or one of the functions below) under `timeout -s TERM`, for
# at most PERCENT of the budget and never past the budget less RESERVE seconds kept for the steps that save the
# evidence (the shares add up to more than 100: most steps end early, and what they leave goes to the next). An
# argument @LIMIT@ becomes the time limit the command gives itself, a little under the step's, so that gpubench
# stops on its own before the TERM. Output goes to the log.
RESERVE=${RESERVE:-$(( budget / 10 ))}
step() {
    local name=$1 want=$(( budget * $2 / 100 )) reserve=$RESERVE
    shift 2
    if [ "$name" = export ] || [ "$name" = report ]; then reserve=0; fi
    local avail=$(( $(left) - reserve ))
    local limit=$(( want < avail ? want : avail ))
    if [ "$limit" -lt 5 ]; then
        say "$name: skipped, no time left in the budget of ${budget}s"
        printf '%s\t%s\t%s\t%s\n' "$name" "not run" 0 "$limit" >> "$steps"
        return 0
    fi
    local inner=$(( limit > 30 ? limit - 15 : limit * 2 / 3 ))
    local args=() a
    for a in "$@"; do args+=("${a//@LIMIT@/${inner}s}"); done
    say "$name (at most ${limit}s): ${args[*]}"
    local t0 rc
    t0=$(date +%s)
    # bash -c runs a function or a program alike; timeout signals the whole process group.
    timeout -s TERM -k 15 "$limit" bash -c '"$@"' "$name" "${args[@]}" >> "$log" 2>&1
    rc=$?
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$limit" >> "$steps"
    [ "$rc" -eq 124 ] && say "$name: stopped at its limit (${limit}s); what it finished is kept"
    return 0
}
gb() { "$PY" -m gpubench "$@"; }
export -f gb

# --- environment check: never aborts, says what it falls back to ----------------------------------------
envcheck() {
    "$PY" - "$repo" <<'EOF'
import importlib.metadata as md, importlib.util, os, platform, shutil, subprocess, sys
repo = sys.argv[1]
print(f"python {platform.python_version()} at {sys.executable}")
# Found, with the version of its distribution, without importing it (TensorFlow alone takes many seconds).
for module, dist in (("numpy", "numpy"), ("psutil", "psutil"), ("threadpoolctl", "threadpoolctl"),
                     ("pynvml", "nvidia-ml-py"), ("torch", "torch"), ("cupy", "cupy-cuda13x"), ("jax", "jax"),
                     ("tensorflow", "tensorflow"), ("pyopencl", "pyopencl"), ("pandas", "pandas"), ("scipy", "scipy"),
                     ("plotly", "plotly"), ("pytest", "pytest"), ("pytest_benchmark", "pytest-benchmark"),
                     ("setuptools", "setuptools")):
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    try:
        version = md.version(dist)
    except md.PackageNotFoundError:
        version = "found" if found else ""
    print(f"  {module:16} {version if found else 'missing'}")
try:
    dist = md.distribution("gpubench")
    print(f"gpubench installed ({dist.version}); this checkout's code comes first on PYTHONPATH")
except md.PackageNotFoundError:
    print("gpubench is not installed: running from this checkout (PYTHONPATH), entry points from its pyproject.toml")
import gpubench
print(f"gpubench {gpubench.__version__} from {os.path.dirname(gpubench.__file__)}")
try:
    import torch
    print(f"torch CUDA: available={torch.cuda.is_available()} devices={torch.cuda.device_count()} "
          f"cuda={torch.version.cuda}")
except Exception as exc:  # noqa: BLE001
    print(f"torch: {type(exc).__name__}: {exc}")
if shutil.which("nvidia-smi"):
    subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit,"
                    "pcie.link.gen.max,pcie.link.width.max", "--format=csv"], check=False, timeout=20)
else:
    print("nvidia-smi: not found")
EOF
}
export -f envcheck

say "gpubench GPU evidence: device $device, budget ${budget}s, out $out, store $store"
step envcheck 6 envcheck

# The pytest plug-in is registered by gpubench's pytest11 entry point only when gpubench is installed.
plugin=(-p gpubench.pytest_plugin)
if "$PY" -c "import sys, importlib.metadata as m; sys.exit(0 if any(e.value == 'gpubench.pytest_plugin' for e in m.entry_points(group='pytest11')) else 1)" 2>/dev/null; then
    plugin=()
fi

# --- gpubench's own commands ----------------------------------------------------------------------------
env_json() { gb env --json "$@" > "$out/env.json"; }
export -f env_json
step env 10 env_json "${backend_args[@]}"
step calibrate 20 gb calibrate --device "$device" "${backend_args[@]}" $quick --time-limit @LIMIT@ \
    --label evidence-calibrate

# --- the harness fidelity (issue 20's last row) ------------------------------------------------------------------
fidelity() { "$PY" benchmarks/harness_accuracy.py --fidelity --device "$device" "$@" | tee "$out/fidelity.txt"; }
export -f fidelity
step fidelity 10 fidelity $quick

step tour 30 gb run --suite tour "${backend_args[@]}" $quick --time-limit @LIMIT@ --label evidence-tour
step lecture 13 gb run --suite lecture "${backend_args[@]}" $quick --time-limit @LIMIT@ --label evidence-lecture

# --- a short pytest-benchmark run, every case committed to the store as it finishes ---------------------------
if [ "$device" = cuda ]; then
    select=(-m cuda --gpubench-full -k "(matmul and torch and 4096) or (saxpy and cupy and 67108864)")
else
    select=(-m "not gpu and not cuda and not opencl" -k "(matmul and numpy) or (saxpy and numpy)")
fi
step pytest 13 "$PY" -m pytest benchmarks "${plugin[@]}" "${select[@]}" -q -p no:cacheprovider -rs \
    --gpubench-store "$store" --gpubench-label evidence-pytest --benchmark-json "$out/bench.json"

# --- export and report -------------------------------------------------------------------------------------
step export 8 gb export --run all -o "$out/export.json"
report() {
    local ids
    ids=$("$PY" -c "
import json, subprocess, sys
runs = json.loads(subprocess.run([sys.executable, '-m', 'gpubench', 'runs', '--json'], capture_output=True,
                                 text=True, check=True).stdout)
print(' '.join(str(r['id']) for r in runs if r['suite'] != 'calibrate'))")
    # shellcheck disable=SC2086 - the run ids are words
    gb report $ids -o "$out/report.html"
}
export -f report
step report 10 report

# --- the store: checkpointed, one file, into $OUT ----------------------------------------------------------------
"$PY" - "$store" "$out/gpubench.sqlite" >> "$log" 2>&1 <<'EOF'
import shutil, sqlite3, sys
src, dst = sys.argv[1], sys.argv[2]
try:
    db = sqlite3.connect(src)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")  # folds and removes the write-ahead log
    db.close()
    shutil.copyfile(src, dst)
    print(f"store checkpointed and copied to {dst}")
except Exception as exc:  # noqa: BLE001
    print(f"store not copied: {type(exc).__name__}: {exc}")
EOF
rm -rf "$work"
say "done in $(( $(date +%s) - start ))s; steps:"
cat "$steps" | tee -a "$log"
exit 0
