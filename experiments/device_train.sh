#!/usr/bin/env bash
# Train the `cpu`-architecture Sudoku models (symbolic and image) side by side on one GPU for a
# fixed wall-clock budget, then refine them there; used for the shipped models when a session is
# lent a GPU (the README says which ones). The step count is sized from a measured rate, so the
# cosine learning rate ends decayed when the budget runs out:
#   1. a 400-step calibration run of each (both at once, as in the real run) gives steps/s;
#   2. steps = rate * TRAIN_S * 0.85, rounded to 500; validation and checkpoints every steps/10;
#   3. both train, then each is refined (300 puzzles per split) if REFINE_S > 0.
# Usage: bash experiments/device_train.sh OUT_DIR TRAIN_S REFINE_S
# Writes OUT_DIR/{sudoku_symbolic,mnist_sudoku}.tar (the run directories) and logs.
set -u
out=$1; train_s=$2; refine_s=$3
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.4
variant=${VARIANT:-cpu}  # VARIANT, BATCH, WORKERS: overrides for a quick local check (smoke)
common=(--config.train.batch_size="${BATCH:-256}" --config.train.data_workers="${WORKERS:-6}"
        --config.train.max_to_keep=1)
bench=(sudoku_symbolic mnist_sudoku)

calibrate() {
  python -m experiments.main --config "experiments/configs/$1.py:$variant" --workdir "/tmp/cal_$1" \
    --mode train "${common[@]}" --config.train.steps=100000 --config.train.eval_every=100000 \
    --config.train.log_every=100 --config.train.checkpoint_every=400 --stop_at_step 400 \
    > "$out/calibrate_$1.log" 2>&1
}
rate() {  # median steps/s of the rows after the first (which holds the compile)
  python -c "import json,statistics,sys; r=[json.loads(l)['steps_per_s'] for l in open(sys.argv[1])][1:]; print(statistics.median(r))" "/tmp/cal_$1/metrics.jsonl"
}

for b in "${bench[@]}"; do calibrate "$b" & done; wait
for b in "${bench[@]}"; do
  r=$(rate "$b") || { echo "calibration of $b failed"; tail -20 "$out/calibrate_$b.log"; exit 1; }
  steps=$(python -c "print(max(1000, int(float('$r') * $train_s * 0.85) // 500 * 500))")
  every=$(( steps / 10 ))
  echo "$b: $r steps/s -> $steps steps"
  python -m experiments.main --config "experiments/configs/$b.py:$variant" --workdir "runs/gpu_$b" \
    --mode train "${common[@]}" --config.train.steps=$steps --config.train.eval_every=$every \
    --config.train.checkpoint_every=$every > "$out/train_$b.log" 2>&1 &
done
wait
for b in "${bench[@]}"; do tail -3 "$out/train_$b.log"; done
for b in "${bench[@]}"; do tar cf "$out/$b.tar" -C runs "gpu_$b"; done
if [ "$refine_s" -gt 0 ]; then
  for b in "${bench[@]}"; do
    timeout "$refine_s" python -m experiments.main --config "experiments/configs/$b.py:$variant" \
      --workdir "runs/gpu_$b" --mode refine > "$out/refine_$b.log" 2>&1 &
  done
  wait
  for b in "${bench[@]}"; do
    tail -25 "$out/refine_$b.log"
    tar cf "$out/$b.tar" -C runs "gpu_$b"  # again, with results.json and plots if refine ended
  done
fi
ls -la "$out"
