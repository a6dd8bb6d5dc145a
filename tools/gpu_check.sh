#!/usr/bin/env bash
# The GPU check of README 'Scaling up' in one command (needs TensorFlow with CUDA):
#
#   tools/gpu_check.sh            # ~3 min: 2 min of timed steps + compiles
#   tools/gpu_check.sh --quick    # ~30 s: 3 timed steps each (what CI runs on CPU)
#
# Prints the machine, then tools/benchmark_training.py's table: images/s of
# the real training step (DHE loss + classification) for ResNet50 at 224 px,
# batch 64, float32 and mixed precision (mixed_float16 on tensor-core GPUs),
# each without and with XLA, and the speed-ups. On a machine without a GPU
# it runs the same comparison for small_cnn at 32 px, so the script itself
# is tested on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

budget=120 steps=200 warmup=5
if [[ "${1:-}" == "--quick" ]]; then
  budget=4 steps=3 warmup=1
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--quick]" >&2
  exit 2
fi

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  2>/dev/null || echo "no nvidia-smi: CPU only"
echo "== throughput (budget ${budget} s of timed steps)"
# Compiling ResNet50 four times takes a few minutes of its own; the hard
# limit leaves room for it.
exec timeout $((budget + 300)) python tools/benchmark_training.py \
  --backbone=auto --batch_size=64 --mixed_precision=auto \
  --steps="$steps" --warmup_steps="$warmup" --budget_s="$budget"
