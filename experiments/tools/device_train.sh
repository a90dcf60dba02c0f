#!/usr/bin/env bash
# Train the `cpu`-architecture Sudoku models (symbolic and image; BENCH="even_pixels
# counting_polygons" for the image benchmarks, any benchmark names) side by side on one GPU within
# a hard wall-clock deadline, then refine them there if time is left. For sessions lent a GPU for a
# few minutes: the step count is sized from a measured rate so the cosine learning rate ends
# decayed, and every phase is cut by `timeout` so the run directories are always tarred before
# the deadline (a command killed by the device's own limit may bring nothing back).
#   1. a 400-step (CAL_STEPS) calibration run of each (both at once, as in the real run) gives steps/s;
#   2. steps = rate * (time left - RESERVE) * 0.7, rounded to 500, validation and checkpoints every
#      steps/10 (a training cut by the deadline keeps its last checkpoint and best params);
#   3. tar each run directory into OUT_DIR; refine (300 puzzles per split) only if REFINE_S fit.
# Usage: bash experiments/tools/device_train.sh OUT_DIR DEADLINE_S REFINE_S
#   e.g. within a 600 s command: bash experiments/tools/device_train.sh "$OUT" 540 0
# Local check (2 CPU cores, about 4 min): VARIANT=smoke BATCH=8 WORKERS=1 CAL_STEPS=40 bash \
#   experiments/tools/device_train.sh /tmp/dev 200 60   (BENCH="even_pixels counting_polygons": the same)
# History: a first try on an H200 (2026-11-26) with a fixed 300 s training budget plus a 90 s
# refine ran past the command's 600 s limit and nothing came back; hence the deadline.
set -u
out=$1; deadline=$2; refine_s=$3
start=$SECONDS
left() { echo $(( deadline - (SECONDS - start) )); }
log() { echo "[$(( SECONDS - start ))s] $*"; }
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.4
variant=${VARIANT:-cpu}  # VARIANT, BATCH, WORKERS: overrides for a quick local check (smoke)
common=(--config.train.batch_size="${BATCH:-256}" --config.train.data_workers="${WORKERS:-6}"
        --config.train.max_to_keep=1)
read -r -a bench <<< "${BENCH:-sudoku_symbolic mnist_sudoku}"  # the configs to train, side by side
cal=${CAL_STEPS:-400}  # calibration steps
reserve=$(( refine_s + 30 ))  # kept back for the tar and the refine

calibrate() {
  timeout $(( $(left) / 3 )) python -m experiments.main --config "experiments/configs/$1.py:$variant" \
    --workdir "/tmp/cal_$1" --mode train "${common[@]}" --config.train.steps=100000 \
    --config.train.eval_every=100000 --config.train.log_every=$(( cal / 4 )) \
    --config.train.checkpoint_every=$cal --stop_at_step $cal > "$out/calibrate_$1.log" 2>&1
}
rate() {  # median steps/s of the rows after the first (which holds the compile), if any
  python -c "import json,statistics,sys; r=[json.loads(l)['steps_per_s'] for l in open(sys.argv[1])]; print(statistics.median(r[1:] or r))" "/tmp/cal_$1/metrics.jsonl"
}

log "calibrating"
for b in "${bench[@]}"; do calibrate "$b" & done; wait
train_left=$(( $(left) - reserve ))
for b in "${bench[@]}"; do
  r=$(rate "$b") || { log "calibration of $b failed"; tail -20 "$out/calibrate_$b.log"; exit 1; }
  steps=$(python -c "print(max(1000, int(float('$r') * $train_left * 0.7) // 500 * 500))")
  every=$(( steps / 10 ))
  log "$b: $r steps/s -> $steps steps in at most $train_left s"
  timeout "$train_left" python -m experiments.main --config "experiments/configs/$b.py:$variant" \
    --workdir "runs/gpu_$b" --mode train "${common[@]}" --config.train.steps=$steps \
    --config.train.eval_every=$every --config.train.checkpoint_every=$every \
    > "$out/train_$b.log" 2>&1 &
done
wait
for b in "${bench[@]}"; do tail -c 300 "$out/train_$b.log"; echo; tar cf "$out/$b.tar" -C runs "gpu_$b"; done
log "trained and tarred"
if [ "$refine_s" -gt 0 ] && [ "$(left)" -gt "$(( refine_s + 10 ))" ]; then
  for b in "${bench[@]}"; do
    timeout "$refine_s" python -m experiments.main --config "experiments/configs/$b.py:$variant" \
      --workdir "runs/gpu_$b" --mode refine > "$out/refine_$b.log" 2>&1 &
  done
  wait
  for b in "${bench[@]}"; do
    tail -25 "$out/refine_$b.log"
    [ -f "runs/gpu_$b/results.json" ] && tar cf "$out/$b.tar" -C runs "gpu_$b"  # with results
  done
fi
log "done"
ls -la "$out"
