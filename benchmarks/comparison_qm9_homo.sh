#!/usr/bin/env bash
# The QM9 HOMO comparison (issue 30; RESULTS.md "Accuracy on real data"): is an EST block worth
# its cost? `est-fairchem compare` (docs/guide/compare.md) on the real QM9 (qm9pack), 1,000
# training molecules drawn per seed from the 110,000, 1,500 steps of batch 8, a learning rate
# per model from a sweep, budgets from the isolated timing, paired seeds:
#   (a) Equiformer (baseline) against EST with graph attention (est_ga), 8 seeds;
#   (b) EquiformerV2 against EST-EquiformerV2 (est_eqv2), 8 seeds, compared pairwise;
#   (c) the pure EST sized to Equiformer's step cost (pure_est), 4 seeds;
#   (d) EquiformerV3 (eqv3; `make peers` installs it), 4 seeds;
# (c) and (d) run after every seed of (a) and (b) (--later). Runs at the baseline's training
# time only where a model's step cost differs from Equiformer's by more than 7 % (--same-time
# 0.07, the relative IQR of Equiformer's own timing in cost.json): EquiformerV3 (0.64x); the
# others' (0.94x-1.04x) steps runs are their time runs.
# Resumable: rerun the same command and it does only the missing runs. Extra arguments are
# passed on (e.g. --jobs 1). The convergence runs of pair (b), 4x the steps, 3 seeds, started
# before the remaining others (each takes about an hour here):
#   bash benchmarks/comparison_qm9_homo.sh --long-factor 4 --long-seeds 0 1 2 \
#       --long-models est_eqv2 eqv2 --long-first
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
QM9=data/qm9/lmdb  # the paths configs/qm9/compare/homo.yml reads
if [ ! -f "$QM9/metadata.json" ]; then
    "$BIN/est-fairchem" prepare-qm9 --raw qm9pack --out "$QM9" --subtract-atomrefs
fi
C=configs/qm9/compare
exec "$BIN/est-fairchem" compare "$C/homo.yml" \
    "equiformer=$C/equiformer.yml" "est_ga=$C/est_ga.yml" "eqv2=$C/eqv2.yml" \
    "est_eqv2=$C/est_eqv2.yml" "pure_est=$C/pure_est.yml" "eqv3=$C/eqv3.yml" \
    --pairs est_eqv2:eqv2 eqv3:eqv2 --model-seeds pure_est=4 eqv3=4 --later pure_est eqv3 \
    --train-size 1000 --steps 1500 --batch-size 8 --seeds 0 1 2 3 4 5 6 7 \
    --lrs 3e-4 1e-3 3e-3 --same-time 0.07 --jobs 2 --unit meV --scale 1000 \
    --out benchmarks/results/compare_qm9_homo "$@"
