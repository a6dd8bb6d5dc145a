"""Training a DHE model end to end: data → model → loss → fit → evaluate.

`train(config, model_dir)` is everything `python -m dhe_tf.train` does, as a
plain function of an explicit configuration, so tests call it directly.
"""

import dataclasses
import os
import time

import keras

from dhe_tf import evaluation
from dhe_tf import losses
from dhe_tf import model as model_lib
from dhe_tf import run_dir
from dhe_tf.data import datasets
from dhe_tf.data import pipeline
from dhe_tf.errors import ConfigError

_JIT_CHOICES = {"auto": "auto", "true": True, "false": False}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run depends on; written to RUN/flags.json.

  Field names and defaults mirror the flags of dhe_tf.train, where each is
  documented.
  """
  bits: int = 32
  dataset: str = "embedded"
  protocol: str = "1k5k"
  split_seed: int = 0
  data_dir: str | None = None
  backbone: str = "small_cnn"
  weights: str | None = None
  image_size: int | None = None
  fc_units: tuple = ()
  epochs: int = 15
  batch_size: int = 128
  learning_rate: float = 1e-3
  seed: int = 0
  hash_loss_weight: float = 1.0
  classification_weight: float = 1.0
  margin: float = 0.6
  similar_weight: float = 0.25
  dissimilar_weight: float = 1.0
  quantization_weight: float = 0.1
  topk: int | None = None
  eval_batch_size: int = 256
  jit_compile: str = "auto"


def validate(config):
  """Raises ConfigError naming the first impossible value of `config`."""
  datasets.check_name(config.dataset)
  model_lib.check_backbone(config.backbone)
  positive = {"bits": config.bits, "epochs": config.epochs,
              "eval_batch_size": config.eval_batch_size}
  for name, value in positive.items():
    if value < 1:
      raise ConfigError(f"{name} must be at least 1. Received: {name}={value}")
  if config.batch_size < 2:
    raise ConfigError("batch_size must be at least 2 (the loss is over pairs)."
                      f" Received: batch_size={config.batch_size}")
  if config.learning_rate <= 0:
    raise ConfigError("learning_rate must be positive. "
                      f"Received: learning_rate={config.learning_rate}")
  weights = {name: getattr(config, name) for name in (
      "hash_loss_weight", "classification_weight", "similar_weight",
      "dissimilar_weight", "quantization_weight")}
  for name, value in weights.items():
    if value < 0:
      raise ConfigError(f"{name} must be ≥ 0. Received: {name}={value}")
  if config.hash_loss_weight == 0 and config.classification_weight == 0:
    raise ConfigError("hash_loss_weight and classification_weight are both 0:"
                      " nothing to train.")
  if not 0 < config.margin <= 1:
    raise ConfigError("margin is a fraction of the bits, in (0, 1]. "
                      f"Received: margin={config.margin}")
  if config.topk is not None and config.topk < 1:
    raise ConfigError(f"topk must be at least 1. Received: topk={config.topk}")
  if config.jit_compile not in _JIT_CHOICES:
    raise ConfigError(f"Unknown jit_compile {config.jit_compile!r}. "
                      f"Available: {', '.join(_JIT_CHOICES)}")


def compile_model(model, config, *, multi_label):
  """Compiles `model` with the DHE objective of `config`.

  Objective: hash_loss_weight · HammingEmbeddingLoss(hash)
           + classification_weight · cross-entropy(logits)
  (softmax cross-entropy for single-label data, sigmoid for multi-label).
  With classification_weight = 0 the classifier is frozen and unused.
  """
  loss = {"hash": losses.HammingEmbeddingLoss(
      margin=config.margin, similar_weight=config.similar_weight,
      dissimilar_weight=config.dissimilar_weight,
      quantization_weight=config.quantization_weight)}
  loss_weights = {"hash": config.hash_loss_weight}
  if config.classification_weight > 0:
    if multi_label:
      loss["logits"] = keras.losses.BinaryCrossentropy(from_logits=True)
    else:
      loss["logits"] = keras.losses.CategoricalCrossentropy(from_logits=True)
    loss_weights["logits"] = config.classification_weight
  else:
    model.get_layer("logits").trainable = False
  model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                loss=loss, loss_weights=loss_weights,
                jit_compile=_JIT_CHOICES[config.jit_compile])


def _with_targets(batches):
  # Both outputs learn from the same labels.
  return batches.map(lambda x, y: (x, {"hash": y, "logits": y}))


def train(config, model_dir, *, verbose=2):
  """Trains, saves and evaluates one model; returns its metrics.

  Validates `config` and loads data and weights before anything is written,
  so a bad value or missing data leaves no directory behind.

  Args:
    config: a TrainConfig.
    model_dir: the run directory (created if missing).
    verbose: Keras fit verbosity.

  Returns:
    The dict written to RUN/metrics.json.
  """
  validate(config)
  keras.utils.set_random_seed(config.seed)
  data = datasets.load_dataset(config.dataset, protocol=config.protocol,
                               split_seed=config.split_seed,
                               data_dir=config.data_dir)
  model = model_lib.build_model(
      backbone=config.backbone, bits=config.bits,
      num_classes=data.num_classes, image_shape=data.image_shape,
      weights=config.weights, fc_units=config.fc_units,
      image_size=config.image_size)
  compile_model(model, config, multi_label=data.multi_label)

  created = run_dir.create(model_dir)
  try:
    run_dir.write_json(os.path.join(model_dir, "flags.json"),
                       dataclasses.asdict(config))
    run_dir.write_split(os.path.join(model_dir, "split.npz"), data.split)
  except BaseException:
    run_dir.remove_created(created)
    raise

  train_batches = pipeline.batches(data.parts["train"],
                                   batch_size=config.batch_size,
                                   training=True, seed=config.seed)
  start = time.perf_counter()
  model.fit(_with_targets(train_batches), epochs=config.epochs,
            callbacks=[keras.callbacks.TensorBoard(
                os.path.join(model_dir, "logs"))],
            shuffle=False, verbose=verbose)  # Shuffled by the pipeline.
  train_seconds = time.perf_counter() - start
  run_dir.save_model(os.path.join(model_dir, "model.keras"), model)

  results = evaluation.evaluate(model, data, batch_size=config.eval_batch_size,
                                topk=config.topk)
  results.update(dataset=config.dataset, protocol=config.protocol,
                 backbone=config.backbone,
                 train_seconds=round(train_seconds, 1))
  run_dir.write_json(os.path.join(model_dir, "metrics.json"), results)
  return results
