r"""Measures training throughput, in images per second, with and without XLA.

    python tools/benchmark_training.py                   # small_cnn, ~1 min
    python tools/benchmark_training.py --backbone=resnet50 --image_size=224 \
        --mixed_precision=auto                           # on a GPU
    tools/gpu_check.sh                                   # the GPU check

Runs the real training step of dhe_tf.train (model of dhe_tf.model, DHE
loss + classification, FineTuningAdam) on synthetic images held on the
device's host in memory, for each variant in one process:

  * float32 without XLA (the reference), float32 with XLA;
  * with --mixed_precision (auto: mixed_float16 on a GPU with tensor cores,
    nothing on a CPU): the same two with that policy.

Each variant is compiled and warmed up for --warmup_steps, then timed over
--steps steps or its share of --budget_s, whichever ends first. Prints a
Markdown table and the speed-ups relative to the reference.

Output on 2 cores of an Intel Xeon @ 2.50GHz, shared with other jobs, see
README, "Scaling up".
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow loads.

import gc  # pylint: disable=g-import-not-at-top
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from dhe_tf import config as config_lib
from dhe_tf import hardware
from dhe_tf import model as model_lib
from dhe_tf import objective

_BACKBONE = flags.DEFINE_string(
    "backbone", "small_cnn", "small_cnn, vgg16, resnet50, or auto: resnet50 "
    "at 224 px on a GPU, small_cnn at 32 px on a CPU.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32,
                                   "Side of the synthetic images.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per step.")
_BITS = flags.DEFINE_integer("bits", 32, "Code length.")
_STEPS = flags.DEFINE_integer("steps", 50, "Timed steps per variant (at "
                              "most; see --budget_s).")
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 3, "Untimed steps per "
                                     "variant (the first compiles).")
_BUDGET_S = flags.DEFINE_float("budget_s", 120, "Seconds for the timed steps "
                               "of all variants together.")
_MIXED_PRECISION = flags.DEFINE_string(
    "mixed_precision", "auto", "Policy of the mixed-precision variants: auto, "
    "none (no such variants), mixed_float16 or mixed_bfloat16.")
_CHUNK = 5  # Steps per fit() call while timing.


def synthetic_batches(batch_size, side, num_classes=10, seed=0):
  """An endless dataset of one fixed random batch, as dhe_tf.train feeds it."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (batch_size, side, side, 3)).astype("float32")
  labels = np.eye(num_classes, dtype="float32")[
      rng.integers(0, num_classes, batch_size)]
  return tf.data.Dataset.from_tensors(
      (images, {"hash": labels, "logits": labels})).repeat().prefetch(2)


def measure(backbone, side, *, batch_size, bits, xla, policy, steps,
            warmup_steps, seconds):
  """Images per second of the training step of one variant."""
  keras.backend.clear_session()
  gc.collect()
  config = config_lib.TrainConfig(backbone=backbone, bits=bits,
                                batch_size=batch_size, image_size=side,
                                learning_rate=1e-4)
  with hardware.dtype_policy(policy):
    model = model_lib.build_model(backbone=backbone, bits=bits,
                                  num_classes=10,
                                  image_shape=(side, side, 3),
                                  image_size=side if backbone != "small_cnn"
                                  else None)
    objective.compile_model(model, config, multi_label=False, jit_compile=xla)
  data = synthetic_batches(batch_size, side)
  model.fit(data, epochs=1, steps_per_epoch=warmup_steps, shuffle=False,
            verbose=0)
  done, start = 0, time.perf_counter()
  while done < steps and time.perf_counter() - start < seconds:
    chunk = min(_CHUNK, steps - done)
    model.fit(data, epochs=1, steps_per_epoch=chunk, shuffle=False,
              verbose=0)
    done += chunk
  return done * batch_size / (time.perf_counter() - start), done


def _device():
  names = [tf.config.experimental.get_device_details(gpu).get("device_name",
                                                              "GPU")
           for gpu in hardware.gpus()]
  return ", ".join(names) if names else f"CPU ({os.cpu_count()} cores)"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  backbone, side = _BACKBONE.value, _IMAGE_SIZE.value
  if backbone == "auto":
    backbone, side = ("resnet50", 224) if hardware.gpus() else ("small_cnn", 32)
  policies = ["float32"]
  if _MIXED_PRECISION.value != "none":
    policy, reason = hardware.resolve_mixed_precision(_MIXED_PRECISION.value)
    print(f"Mixed precision: {policy} ({reason})")
    if policy != "float32":
      policies.append(policy)
  variants = [(policy, xla) for policy in policies for xla in (False, True)]
  print(f"{backbone} at {side} px, batch {_BATCH_SIZE.value}, {_device()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}\n")
  rows = []
  for policy, xla in variants:
    rate, steps = measure(backbone, side, batch_size=_BATCH_SIZE.value,
                          bits=_BITS.value, xla=xla, policy=policy,
                          steps=_STEPS.value, warmup_steps=_WARMUP_STEPS.value,
                          seconds=_BUDGET_S.value / len(variants))
    rows.append((policy, xla, rate, steps))
  reference = rows[0][2]
  print("| backbone | px | batch | precision | XLA | steps | images/s | "
        "× float32 no XLA |")
  print("|---|---|---|---|---|---|---|---|")
  for policy, xla, rate, steps in rows:
    print(f"| {backbone} | {side} | {_BATCH_SIZE.value} | {policy} | "
          f"{'on' if xla else 'off'} | {steps} | {rate:.1f} | "
          f"{rate / reference:.2f} |")
  print()
  for policy in policies:
    off, on = [rate for p, _, rate, _ in rows if p == policy]
    print(f"XLA speed-up ({policy}): {on / off:.2f}×")
  if len(policies) > 1:
    print(f"Mixed precision speed-up (XLA on): "
          f"{rows[3][2] / rows[1][2]:.2f}×")


if __name__ == "__main__":
  app.run(main)
