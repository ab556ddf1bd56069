#!/usr/bin/env bash
# The GPU measurements of benchmarks/RESULTS.md ("On a GPU") in one go, on one CUDA device:
# throughput (float32 and AMP, with kernel profiles), the per-part profile and recompute memory
# for EST-45M, the default EST-31M and IS2RE EST, each against its plain model.
#
#   bash benchmarks/gpu_suite.sh [OUT_DIR]     # default: benchmarks/results/gpu-YYYY-MM-DD
#   ACCURACY=1 bash benchmarks/gpu_suite.sh    # then the accuracy study at --size large (hours;
#                                              # resumable: the command it prints keeps finished runs)
#
# Each run writes OUT_DIR/NAME.json and NAME.log; a run that fails is reported and the suite
# goes on. OUT_DIR must not exist yet (earlier results are never overwritten).
set -u
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/gpu-$(date +%F)}
if [ -e "$out" ]; then
    echo "gpu_suite.sh: $out already exists; pass a new folder" >&2
    exit 2
fi
mkdir -p "$out"
python=${PYTHON:-python}
common=(--device cuda --batch-size 8 --batches 4)

run() {
    local name=$1
    shift
    echo "== $name: $*"
    if "$python" "$@" --out "$out/$name.json" > "$out/$name.log" 2>&1; then
        grep -E '"ratio_(samples_per_s|peak_cuda|control)"|step_flop_ratio|dispatched_ops' "$out/$name.json"
    else
        echo "   failed: see $out/$name.log"
    fi
}

t=benchmarks/throughput.py
# the default against 1.0x: 8 rounds, with a second EquiformerV2 as the noise control
run throughput_default_cuda $t --size default "${common[@]}" --rounds 8 --control --kernel-profile
run throughput_default_amp_cuda $t --size default "${common[@]}" --rounds 8 --control --amp
run throughput_paper_cuda $t --size paper "${common[@]}" --rounds 3 --kernel-profile
run throughput_paper_amp_cuda $t --size paper "${common[@]}" --rounds 3 --amp
run memory_paper_recompute_cuda $t --size paper "${common[@]}" --rounds 2 --est-option recompute_update=true
run throughput_is2re_paper_cuda $t --size is2re-paper "${common[@]}" --rounds 3
run profile_paper_cuda benchmarks/profile_update.py --size paper --device cuda --batch-size 8 --repeats 5
run profile_default_cuda benchmarks/profile_update.py --size default --device cuda --batch-size 8 --repeats 5
if [ "${ACCURACY:-0}" = 1 ]; then
    accuracy=(benchmarks/accuracy.py --size large --results "$out/accuracy_large"
              --work runs/accuracy_large)
    echo "== accuracy: $python ${accuracy[*]}   (rerun it to resume)"
    "$python" "${accuracy[@]}" > "$out/accuracy_large.log" 2>&1 \
        || echo "   stopped: see $out/accuracy_large.log"
fi
echo "results in $out"
