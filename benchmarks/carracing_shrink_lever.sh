#!/bin/bash
# Notebook 06's CarRacing C (the laptop preset's controller section) with its training
# games drawn on the same bytes (shrink 1) and on the 2x smaller canvas (shrink 2), side
# by side (one worker each, at the same time, so both see the same machine), for C seeds 0
# and 1 on seed 0's V and M; then each C's test on the real pixels: 20 new tracks, the
# section's 300-step cap. README, "A lever measured".
#
#   WMTUTOR_RUNS=/tmp/crv bash benchmarks/carracing_shrink_lever.sh   # ~25 min on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
export WMTUTOR_PRESET=laptop OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
RUNS=${WMTUTOR_RUNS:?set WMTUTOR_RUNS to a folder for the runs}
W=${WMTUTOR:-.venv/bin/wmtutor}
R=$RUNS/carracing/laptop
for stage in gather train-vae encode train-mdnrnn; do $W $stage --env carracing --seed 0 --quiet; done
# seed 1 of C on seed 0's V, M and data (hard links: nothing copied, nothing changed)
[ -d "$R/seed1" ] || { mkdir -p "$R/seed1" && cp -al "$R/seed0/." "$R/seed1/"; }
for S in 0 1; do
  for K in 1 2; do
    ( /usr/bin/time -f "C seed $S, shrink $K: %e s" $W train-controller --env carracing \
        --seed $S --shrink $K --workers 1 --quiet --out "$RUNS/lever/s${S}_k${K}" \
        > "$RUNS/lever_s${S}_k${K}.txt" 2>&1 ) &
  done
  wait
done
for S in 0 1; do
  for K in 1 2; do
    tail -1 "$RUNS/lever_s${S}_k${K}.txt"
    $W evaluate --env carracing --seed $S --episodes 20 --quiet --controller "$RUNS/lever/s${S}_k${K}"
  done
done
