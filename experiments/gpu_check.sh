#!/usr/bin/env bash
# The GPU checks of issue 13 (item 7) in one go, for a session that has a CUDA machine: run from the
# repository root, `bash experiments/gpu_check.sh`. Budget: at most 10 minutes on one H100 (each step
# has its own timeout; a failing step is recorded and the next one runs). Everything it prints
# also lands in $OUT (default experiments/gpu/<date>), CSV rows included; put the figures and the
# GPU name from gpu.txt in the note.
#
#   1. the test suite with CUDA visible (device "auto" picks the GPU)              ~4 min
#   2. bench engram --device cuda: host table (pinned RAM, side-stream prefetch)
#      vs device table; goal host <= 1.01x device                                    ~1 min
#   3. bench model --device cuda for the four architectures (bf16 autocast)         ~2 min
#   4. bench htm --device cuda (the torch path of the temporal memory)              ~1 min
#   5. one training run on the GPU: cogsim run --device cuda (bf16, pinned host
#      Engram table) and torchrun with NCCL on one GPU (a world of 1 skips the
#      process group; NCCL between ranks needs a GPU per rank) — paths that never ran on a GPU   ~1 min
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-experiments/gpu/$(date +%Y%m%d-%H%M)}"
mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/steps.txt"; }
step() {  # step NAME SECONDS COMMAND...: run with a timeout, keep its output and status
  local name=$1 secs=$2; shift 2
  log "$name: $*"
  local t0=$SECONDS
  timeout "$secs" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.txt"
  log "$name: exit $rc after $((SECONDS - t0)) s"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  uptime; } 2>&1 | tee "$OUT/gpu.txt"

step pytest 220 python -m pytest -q -x -p no:cacheprovider
step bench_engram 80 python -m cogsim bench engram --device cuda --parts step,hashing --csv "$OUT/engram.csv"
for arch in transformer engram engram_snn full; do
  step "bench_model_$arch" 40 python -m cogsim bench model "architectures/$arch.yaml" --device cuda --repeat 5 \
    --csv "$OUT/model.csv"
done
step bench_htm 45 python -m cogsim bench htm --device cuda --only repeating --steps 2000 --csv "$OUT/htm.csv"
step run_cuda_host 50 python -m cogsim run architectures/engram.yaml --device cuda --steps 20 --no-viz --quiet \
  --set nodes.engram.placement=host --set data.probe_count=0 --out "$OUT/run_host"
step torchrun_nccl 50 python -m torch.distributed.run --standalone --nproc_per_node=1 -m cogsim run \
  architectures/engram.yaml --device cuda --steps 20 --no-viz --quiet --set nodes.engram.placement=sharded \
  --set data.probe_count=0 --out "$OUT/run_sharded"
log "done; results in $OUT"
