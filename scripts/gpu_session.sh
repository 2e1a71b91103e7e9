#!/usr/bin/env bash
# The first GPU run of gpubench (issue 10), in stages that each fit one 10-minute call of a lent
# machine, leaving everything in one store under $OUT. Written and checked on a CPU-only machine:
# no stage has run on a GPU yet, so expect to fix what breaks.
#
#   bash scripts/gpu_session.sh setup      # install gpubench (no network: --no-deps), env, nvidia-smi
#   bash scripts/gpu_session.sh calibrate  # the machine's ceilings
#   bash scripts/gpu_session.sh kernels    # matmul, saxpy, transfer, lecture
#   bash scripts/gpu_session.sh models     # conv, attention, mnist, allreduce (skip on one GPU)
#   bash scripts/gpu_session.sh pytest     # pytest benchmarks --gpubench-full, imported
#   bash scripts/gpu_session.sh export     # the export of every run, for results/samples/
#
# Every stage installs gpubench first (a fresh machine is bare) and leaves the store and its log in
# $OUT. To go on with the same store in a later call, copy the store that came back into an ignored
# folder `store/` of the checkout (`echo /store/ >> .git/info/exclude`) and carry it.
set -uo pipefail
stage=${1:?stage: setup, calibrate, kernels, models, pytest or export}
out=${OUT:-./gpu-out}
mkdir -p "$out"
export GPUBENCH_STORE="$out/gpu.sqlite" PYTHONUNBUFFERED=1
if [ -f store/gpu.sqlite ] && [ ! -f "$GPUBENCH_STORE" ]; then
    cp store/gpu.sqlite "$GPUBENCH_STORE"   # the store carried from earlier stages
fi
log="$out/$stage.log"
{
    python3 -m pip install -q --no-deps --no-build-isolation -e . || exit 1
    case "$stage" in
        setup)
            nvidia-smi
            gpubench env --json > "$out/env.json"
            gpubench list ;;
        calibrate)
            gpubench calibrate ;;
        kernels)
            for s in matmul saxpy transfer lecture; do gpubench run --suite "$s" --label "gpu-$s"; done ;;
        models)
            for s in conv attention mnist allreduce; do gpubench run --suite "$s" --label "gpu-$s"; done ;;
        pytest)
            python3 -m pytest benchmarks --gpubench-full -p no:cacheprovider --benchmark-json="$out/bench.json" -q
            gpubench import "$out/bench.json" --label gpu-pytest ;;
        export)
            gpubench runs
            gpubench export --run all -o "$out/export.json" ;;
        *)
            echo "unknown stage $stage"; exit 2 ;;
    esac
} 2>&1 | tee "$log"
