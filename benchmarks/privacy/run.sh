#!/usr/bin/env bash
# Run the privacy-utility benchmark end to end and rewrite the results page.
#
# Creates two virtualenvs under BENCH_DIR when they are missing or their requirements
# changed: one with the pipeline's pinned TensorFlow Privacy requirements plus matplotlib,
# one with PyTorch and Opacus. Then it encodes the Adult files once, trains both sides
# seed by seed, alternating between them so that load from other processes falls on
# both, and writes docs/benchmarks/privacy.{md,png} and the per-run results.
#
# Settings, as environment variables:
#   BENCH_DATA_DIR          folder with adult.data and adult.test (default ../shared/data/adult)
#   BENCH_SEEDS             seeds, space-separated (default "0 1 2 3 4")
#   BENCH_EPSILONS          target epsilons, space-separated (default "0.5 1 2 4 8")
#   BENCH_THREADS           intra-op and inter-op threads of each side; 0 keeps each
#                           library's default (default 1, see docs/benchmarks/privacy.md)
#   BENCH_DP_LEARNING_RATE  Adam learning rate of the DP runs on both sides (default 0.002)
#   BENCH_DP_L2_NORM_CLIP   per-example clipping norm on both sides (default 1.0)
#   BENCH_TIMEOUT_SECONDS   limit on each training process, one side and one seed (default 900)
#   BENCH_DIR               environments, caches and run files (default .local/bench-privacy)
#   BENCH_DOCS_DIR          where the page and plot go (default docs/benchmarks)
#   PYTHON                  interpreter for the virtualenvs (default python3.11)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/benchmarks/privacy
bench_dir=${BENCH_DIR:-$repo/.local/bench-privacy}
data_dir=${BENCH_DATA_DIR:-$repo/../shared/data/adult}
seeds=${BENCH_SEEDS:-0 1 2 3 4}
epsilons=${BENCH_EPSILONS:-0.5 1 2 4 8}
threads=${BENCH_THREADS:-1}
dp_learning_rate=${BENCH_DP_LEARNING_RATE:-0.002}
dp_l2_norm_clip=${BENCH_DP_L2_NORM_CLIP:-1.0}
run_timeout=${BENCH_TIMEOUT_SECONDS:-900}
docs_dir=${BENCH_DOCS_DIR:-$repo/docs/benchmarks}
python=${PYTHON:-python3.11}

started_at=$(date +%s)
run_dir=$bench_dir/run
cache_dir=$bench_dir/cache
tf_venv=$bench_dir/venv-tf
opacus_venv=$bench_dir/venv-opacus

log() { echo "[bench-privacy $(date +%H:%M:%S)] $*"; }

# Create the virtualenv FOLDER from REQUIREMENTS unless its stamp records the same digest
# of REQUIREMENTS and of the further files that it includes.
ensure_venv() {
  local folder=$1 requirements=$2
  shift 2
  local digest
  digest=$(cat "$requirements" "$@" | sha256sum | cut -d' ' -f1)
  if [[ -f $folder/.installed && $(cat "$folder/.installed") == "$digest" ]]; then
    log "Environment $folder is up to date"
    return
  fi
  log "Creating $folder from $requirements"
  rm -rf "$folder"
  "$python" -m venv "$folder"
  # This machine's pip configuration names local index folders that may be missing, and
  # pip warns about each for every package.
  "$folder/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" 2>&1 |
    { grep -v "is ignored: it is neither a file nor a directory" || true; }
  echo "$digest" >"$folder/.installed"
}

ensure_venv "$tf_venv" "$here/requirements-tf.txt" "$repo/include/requirements-lifecycle.txt"
ensure_venv "$opacus_venv" "$here/requirements-opacus.txt"

rm -rf "$run_dir"
mkdir -p "$run_dir/results" "$run_dir/logs" "$cache_dir" "$docs_dir"
export PYTHONPATH=$repo/include

uptime_file=$run_dir/uptime.txt
echo "start: $(uptime)" | tee "$uptime_file"
"$tf_venv/bin/python" "$here/machine.py" >"$run_dir/machine.json"
log "Encoding the Adult files from $data_dir"
"$tf_venv/bin/python" "$here/prepare_data.py" --data-dir "$data_dir" \
  --output "$run_dir/adult-encoded.npz"
runs_started_at=$(date +%s)

# $epsilons is unquoted so that each epsilon becomes its own argument.
common=(
  --data "$run_dir/adult-encoded.npz"
  --epsilons $epsilons
  --threads "$threads"
  --dp-learning-rate "$dp_learning_rate"
  --dp-l2-norm-clip "$dp_l2_norm_clip"
)
# Train one side for one seed and print the summary line of each of its runs.
# timeout --foreground leaves the training process in the terminal's process group, so
# Ctrl-C reaches it. The time limit still applies, because the process spawns no children.
run_side() {
  local side=$1 side_python=$2 script=$3 seed=$4
  local log_file=$run_dir/logs/$side.log
  log "Seed $seed: $side"
  if ! timeout --foreground "$run_timeout" "$side_python" "$here/$script" "${common[@]}" \
    --seeds "$seed" --output "$run_dir/results/$side.jsonl" \
    --plan-cache "$cache_dir/plans-$side.json" >>"$log_file" 2>&1; then
    log "Training failed or timed out after $run_timeout s; see $log_file"
    exit 1
  fi
  grep -h ": seed $seed," "$log_file" | cut -d' ' -f3- || true
}

for seed in $seeds; do
  run_side tensorflow-privacy "$tf_venv/bin/python" train_tf.py "$seed"
  run_side opacus "$opacus_venv/bin/python" train_opacus.py "$seed"
  echo "after seed $seed: $(uptime)" | tee -a "$uptime_file"
done

log "Writing the report to $docs_dir"
"$tf_venv/bin/python" "$here/report.py" --results "$run_dir/results" \
  --data-summary "$run_dir/adult-encoded.json" --machine "$run_dir/machine.json" \
  --uptime "$uptime_file" --docs "$docs_dir" \
  --started-at "$started_at" --runs-started-at "$runs_started_at" >"$run_dir/report.md"
log "Done in $(($(date +%s) - started_at)) s; results in $docs_dir/privacy.md"
