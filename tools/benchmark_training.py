r"""Training speed of dhe_tf against a plain Keras script, side by side.

    python tools/benchmark_training.py      # cnn on Fashion-MNIST, ~4 min
    python tools/benchmark_training.py --data_dir=/usr/share/datasets/fashion-mnist
    python tools/benchmark_training.py --backbone=resnet50 --image_size=224 \
        --variants=dlbhc,dhe --precisions=none,auto     # on a GPU

Variants, each timed XLA off and on, in one process:

- `plain`: a plain Keras script of the same network, batch and images, with
  no dhe_tf code: `from_tensor_slices → shuffle → batch → prefetch`, Adam,
  softmax cross-entropy on a classifier over a Dense(K, sigmoid) layer.
  The reference (only for the backbones built from scratch: cnn, small_cnn).
- `dlbhc`, `dhe`, ... (any --method): `dhe_tf.training.trainer.train` itself, the
  step `python -m dhe_tf.train` runs: its input pipeline, model, objective,
  optimizer (FineTuningAdam) and callbacks.

Every variant runs inside one `fit()` for --epochs epochs of the training
images (--dataset / --protocol: 4,500 fitted images of 1k5k); the first epoch
compiles and warms up, the later ones are timed from the end of their first
step to the end of their last (what runs between epochs, such as the
validation mAP, is not a training step and is left out). Variants alternate
over --rounds rounds, and the table gives the median, because a shared
machine's speed drifts. The rate of each dhe_tf variant is compared with
`plain` and with `dlbhc` at the same XLA setting.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow loads.

import gc  # pylint: disable=g-import-not-at-top
import statistics
import tempfile
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from dhe_tf.runs import config as config_lib
from dhe_tf.core import errors
from dhe_tf.training import hardware
from dhe_tf.runs import run_dir
from dhe_tf.training import trainer

_BACKBONE = flags.DEFINE_string("backbone", "cnn", "Backbone of every variant.")
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", 0, "Side the pretrained backbones see (0: their default).")
_DATASET = flags.DEFINE_string("dataset", "embedded", "Dataset (dhe_tf.train "
                               "--dataset); fashion_mnist with --data_dir.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where the dataset is.")
_PROTOCOL = flags.DEFINE_string("protocol", "1k5k", "Split protocol.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Images per step.")
_BITS = flags.DEFINE_integer("bits", 12, "Code length.")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Epochs per fit(); the first is "
                               "not timed.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Times every variant runs, "
                               "alternating.")
_VARIANTS = flags.DEFINE_list("variants", ["plain", "dlbhc", "dhe"],
                              "plain and/or dhe_tf methods.")
_XLA = flags.DEFINE_list("xla", ["false", "true"], "XLA settings to time.")
_PRECISIONS = flags.DEFINE_list(
    "precisions", ["none"], "--mixed_precision values of the dhe_tf "
    "variants: none, auto, mixed_float16, mixed_bfloat16 (plain: none).")


class StepTimer(keras.callbacks.Callback):
  """Times the steps of the epochs after the first, inside one fit()."""

  def __init__(self):
    super().__init__()
    self.steps, self.seconds, self._epoch, self._first = 0, 0.0, 0, None
    self._last, self._count = None, 0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch, self._first, self._count = epoch, None, 0

  def on_train_batch_end(self, batch, logs=None):
    if self._epoch == 0:
      return
    now = time.perf_counter()
    if self._first is None:
      self._first = now
    else:
      self._last, self._count = now, self._count + 1

  def on_epoch_end(self, epoch, logs=None):
    if epoch > 0 and self._count:
      self.steps += self._count
      self.seconds += self._last - self._first


def _training_arrays(config):
  """(images uint8 [N, H, W, C], one-hot labels [N, C]) the trainer fits on."""
  data = run_dir.load_data(config)
  fit_part, _, _ = run_dir.split_training_part(config, data)
  images, labels = zip(*fit_part.as_numpy_iterator())
  return np.stack(images), np.stack(labels)


def plain_network(image_shape, bits, num_classes, backbone):
  """The network of dhe_tf's `cnn` / `small_cnn` backbone, in plain Keras."""
  blocks = {"cnn": ((32, True), (64, True), (128, True)),
            "small_cnn": ((16, True), (32, True), (64, False))}[backbone]
  inputs = keras.Input(image_shape)
  x = keras.layers.Rescaling(1 / 255)(inputs)
  for filters, pool in blocks:
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    if pool:
      x = keras.layers.MaxPooling2D()(x)
  if backbone == "cnn":
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
  else:
    x = keras.layers.GlobalAveragePooling2D()(x)
  x = keras.layers.Dense(bits, activation="sigmoid")(x)
  return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def time_plain(images, labels, *, xla, seed):
  """(steps, seconds) of the plain Keras script."""
  model = plain_network(images.shape[1:], _BITS.value, labels.shape[1],
                        _BACKBONE.value)
  model.compile(keras.optimizers.Adam(1e-3),
                keras.losses.CategoricalCrossentropy(from_logits=True),
                jit_compile=xla)
  batches = (tf.data.Dataset.from_tensor_slices((images, labels))
             .shuffle(len(images), seed=seed)
             .batch(_BATCH_SIZE.value, drop_remainder=True)
             .map(lambda x, y: (tf.cast(x, tf.float32), y))
             .prefetch(tf.data.AUTOTUNE))
  timer = StepTimer()
  model.fit(batches, epochs=_EPOCHS.value, callbacks=[timer], verbose=0)
  return timer.steps, timer.seconds


def time_dhe_tf(config, *, xla):
  """(steps, seconds) of dhe_tf.training.trainer.train's training steps."""
  config = config_lib.TrainConfig(**{
      **config_lib.to_json(config), "jit_compile": str(xla).lower()})
  timer = StepTimer()
  with tempfile.TemporaryDirectory() as directory:
    trainer.train(config, os.path.join(directory, "run"), verbose=0,
                  callbacks=[timer])
  return timer.steps, timer.seconds


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  with errors.reported_in_one_line("benchmark_training"):
    xla_values = [hardware.JIT_VALUES[v] for v in _XLA.value]
    base = config_lib.TrainConfig(
        dataset=_DATASET.value, data_dir=_DATA_DIR.value,
        protocol=_PROTOCOL.value, backbone=_BACKBONE.value, bits=_BITS.value,
        batch_size=_BATCH_SIZE.value, epochs=_EPOCHS.value,
        image_size=_IMAGE_SIZE.value or None,
        validation_fraction=0.1,
        validation_every=_EPOCHS.value, evaluate_test=False)
    if "plain" in _VARIANTS.value and _BACKBONE.value not in ("cnn",
                                                              "small_cnn"):
      raise errors.ConfigError("The plain script builds cnn and small_cnn "
                               "only; drop 'plain' from --variants.")
    variants = []
    for name in _VARIANTS.value:
      for precision in (["none"] if name == "plain" else _PRECISIONS.value):
        policy, _ = hardware.resolve_mixed_precision(precision)
        if name != "plain":
          config_lib.validate(config_lib.TrainConfig(**{
              **config_lib.to_json(base), "method": name,
              "mixed_precision": precision}))
        label = name if policy == "float32" else f"{name} {policy}"
        if label not in [v[0] for v in variants]:
          variants.append((label, name, precision))
    images, labels = (_training_arrays(base) if "plain" in _VARIANTS.value
                      else (None, None))
    rates = {}
    for round_ in range(_ROUNDS.value):
      for label, name, precision in variants:
        for xla in xla_values:
          keras.backend.clear_session()
          gc.collect()
          keras.utils.set_random_seed(round_)
          if name == "plain":
            steps, seconds = time_plain(images, labels, xla=xla, seed=round_)
          else:
            steps, seconds = time_dhe_tf(
                config_lib.TrainConfig(**{
                    **config_lib.to_json(base), "method": name,
                    "seed": round_, "mixed_precision": precision}), xla=xla)
          if not steps:
            raise errors.ConfigError(
                "An epoch has under 2 steps to time: lower --batch_size or "
                "use a larger --protocol.")
          rate = steps * _BATCH_SIZE.value / seconds
          rates.setdefault((label, xla), []).append(rate)
          print(f"round {round_}: {label} XLA {'on' if xla else 'off'}: "
                f"{rate:.0f} images/s over {steps} steps", flush=True)
    print_table(rates, xla_values)


def print_table(rates, xla_values):
  """The Markdown table of median images/s and the ratios to the references."""
  median = {key: statistics.median(values) for key, values in rates.items()}
  names = list(dict.fromkeys(name for name, _ in rates))
  print(f"\n{_BACKBONE.value}, {_DATASET.value} {_PROTOCOL.value}, batch "
        f"{_BATCH_SIZE.value}, {_BITS.value} bits, {os.cpu_count()} CPU "
        f"cores, GPUs: {len(hardware.gpus())}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}; median of {_ROUNDS.value} round(s)\n")
  print("| variant | XLA | images/s (each round) | median | × plain | "
        "× dlbhc |")
  print("|---|---|---|---|---|---|")
  for name in names:
    for xla in xla_values:
      rate = median[(name, xla)]
      cells = [f"{rate / median[(ref, xla)]:.2f}" if (ref, xla) in median
               else "" for ref in ("plain", "dlbhc")]
      each = ", ".join(f"{r:.0f}" for r in rates[(name, xla)])
      print(f"| {name} | {'on' if xla else 'off'} | {each} | {rate:.0f} | "
            f"{' | '.join(cells)} |")
  if len(xla_values) == 2:
    print()
    for name in names:
      off, on = median[(name, False)], median[(name, True)]
      print(f"XLA on/off, {name}: {on / off:.2f}×")


if __name__ == "__main__":
  app.run(main)
