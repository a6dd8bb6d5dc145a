#!/usr/bin/env bash
# The GPU check of docs/scaling.md in one command (needs TensorFlow with CUDA):
#
#   tools/gpu_check.sh            # ~5–10 min on a GPU: compiles + one epoch timed
#   tools/gpu_check.sh --quick    # ~1 min: the CPU path (what CI runs)
#   PYTHON=venv/bin/python tools/gpu_check.sh   # another interpreter
#
# Prints the machine, then tools/benchmark_training.py's table: images/s of
# the real training step (dhe_tf.training.trainer.train: DLBHC and DHE) for ResNet50
# at 224 px on the embedded Fashion-MNIST images, batch 64, float32 and mixed
# precision (mixed_float16 on tensor-core GPUs), each without and with XLA.
# Without a GPU (or with --quick) it runs small_cnn on the tiny protocol
# against the plain Keras script, XLA off, so the script itself is tested on
# CPU (XLA on a CPU is tested in tests/test_scaling.py).
set -euo pipefail
cd "$(dirname "$0")/.."
# The interpreter with dhe_tf installed: $PYTHON, else python3 from PATH.
python="${PYTHON:-python3}"

if [[ "${1:-}" == "--quick" ]]; then
  quick=1
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--quick]" >&2
  exit 2
fi

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  2>/dev/null || echo "no nvidia-smi: CPU only"
echo "== throughput"
if [[ -z "${quick:-}" ]] && nvidia-smi >/dev/null 2>&1; then
  # Compiling ResNet50 four times takes a few minutes of its own.
  exec timeout 1200 "$python" tools/benchmark_training.py \
    --backbone=resnet50 --image_size=224 --batch_size=64 --epochs=2 \
    --rounds=1 --variants=dlbhc,dhe --precisions=none,auto
fi
exec timeout 600 "$python" tools/benchmark_training.py --backbone=small_cnn \
  --protocol=tiny --batch_size=64 --epochs=2 --rounds=1 \
  --variants=plain,dhe --precisions=none --xla=false
