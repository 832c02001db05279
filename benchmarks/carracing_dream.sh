#!/bin/bash
# CarRacing's C trained in M's dream (the game's `dream.reward`: M's reward head pays the
# tiles), no real step spent on C; then one round of iterative training (the dream C plays
# 64 real games of 1000 steps, as many as the random rollouts, M learns from them for 30
# more epochs, C is trained again in the new dream); each C tested on 20 new tracks of
# the real game, the full 1000 steps, random play beside it. README, "Training C in the
# CarRacing dream".
#
#   WMTUTOR_RUNS=/tmp/cr0 bash benchmarks/carracing_dream.sh 0   # seed 0; V and M made if missing
set -euo pipefail
cd "$(dirname "$0")/.."
export WMTUTOR_PRESET=laptop
S=${1:-0}
W=${WMTUTOR:-.venv/bin/wmtutor}
: "${WMTUTOR_RUNS:?set WMTUTOR_RUNS to a folder for the runs}"
# The dream's CMA-ES sizes (the laptop `controller` section is sized for the real game):
# a generation of 16 candidates x 4 dreams of the full 1000 steps is one batch.
C="--popsize 16 --trials 4 --generations 60 --max-steps 1000 --curriculum-start 0
   --eval-every 10 --eval-episodes 32"
for K in 0 1; do
  /usr/bin/time -f "round $K: C in the dream (and round $K's M): %e s" \
    $W train-controller --env carracing --seed "$S" --in-dream --round $K $C --quiet \
      --round-episodes 64
  $W evaluate --env carracing --seed "$S" --in-dream --round $K --episodes 20 --max-steps 1000 --quiet
done
