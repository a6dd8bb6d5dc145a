"""Training a DHE model end to end: data → model → loss → fit → evaluate.

`train(config, model_dir)` is everything `python -m dhe_tf.train` does, as a
plain function of an explicit configuration, so tests call it directly.
"""

import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf

from dhe_tf import evaluation
from dhe_tf import losses
from dhe_tf import methods
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
  protocol: str = ""  # "" = the dataset's default protocol.
  split_seed: int = 0
  data_dir: str | None = None
  image_root: str | None = None
  on_bad_image: str = "error"
  data_cache: str | None = None
  backbone: str = "small_cnn"
  weights: str | None = None
  image_size: int | None = None
  fc_units: tuple = ()
  epochs: int = 15
  batch_size: int = 128
  learning_rate: float = 1e-3
  seed: int = 0
  method: str = "dhe"
  method_params: tuple = ()  # "key=value" hyper-parameters of a baseline.
  hash_loss_weight: float | None = None  # None = the method's default.
  classification_weight: float | None = None  # None = the method's default.
  margin: float = 0.6
  similar_weight: float = 0.25
  dissimilar_weight: float = 1.0
  quantization_weight: float = 0.1
  topk: int | None = None
  eval_batch_size: int = 256
  validation_fraction: float = 0.1
  validation_every: int = 5
  jit_compile: str = "auto"
  evaluate_test: bool = True
  hash_loss_warmup_epochs: float = 0.0


def resolve(config):
  """`config` with the defaults that depend on the dataset and method filled in.

  The resolved values are what flags.json records, so a run states the
  protocol and objective weights it actually used.
  """
  datasets.check_name(config.dataset)
  methods.check_method(config.method)
  method = methods.METHODS[config.method]
  if config.method == "dlbhc" and config.hash_loss_weight:
    raise ConfigError("dlbhc has no hash loss (classification alone); "
                      "leave hash_loss_weight unset.")
  return dataclasses.replace(
      config,
      protocol=config.protocol or datasets.default_protocol(config.dataset),
      hash_loss_weight=(method.hash_loss_weight
                        if config.hash_loss_weight is None
                        else config.hash_loss_weight),
      classification_weight=(method.classification_weight
                              if config.classification_weight is None
                              else config.classification_weight),
      method_params=tuple(config.method_params))


def validate(config):
  """Raises ConfigError naming the first impossible value of a resolved config."""
  datasets.check_name(config.dataset)
  methods.check_method(config.method)
  methods.parse_params(config.method, config.method_params)
  model_lib.check_backbone(config.backbone)
  positive = {"bits": config.bits, "epochs": config.epochs,
              "eval_batch_size": config.eval_batch_size}
  for name, value in positive.items():
    if value < 1:
      raise ConfigError(f"{name} must be at least 1. Received: {name}={value}")
  if config.batch_size < 2:
    raise ConfigError("batch_size must be at least 2 (the loss is over pairs)."
                      f" Received: batch_size={config.batch_size}")
  if config.hash_loss_warmup_epochs < 0:
    raise ConfigError("hash_loss_warmup_epochs must be ≥ 0. Received: "
                      f"hash_loss_warmup_epochs={config.hash_loss_warmup_epochs}")
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
  if not 0 <= config.validation_fraction < 1:
    raise ConfigError("validation_fraction must be in [0, 1). "
                      f"Received: validation_fraction={config.validation_fraction}")
  if config.validation_every < 1:
    raise ConfigError("validation_every must be at least 1. "
                      f"Received: validation_every={config.validation_every}")
  if config.topk is not None and config.topk < 1:
    raise ConfigError(f"topk must be at least 1. Received: topk={config.topk}")
  if not config.evaluate_test and not config.validation_fraction:
    raise ConfigError("evaluate_test=false needs a validation split "
                      "(validation_fraction > 0): nothing would be measured.")
  if config.jit_compile not in _JIT_CHOICES:
    raise ConfigError(f"Unknown jit_compile {config.jit_compile!r}. "
                      f"Available: {', '.join(_JIT_CHOICES)}")


def compile_model(model, config, *, num_classes, multi_label,
                  steps_per_epoch=1):
  """Compiles `model` with the objective of `config`'s method.

  Objective: hash_loss_weight · L_method(hash)
           + classification_weight · cross-entropy(logits)
  (softmax cross-entropy for single-label data, sigmoid for multi-label;
  see dhe_tf.methods). A term of weight 0 is left out; with
  classification_weight = 0 the classifier is frozen and unused.

  With hash_loss_warmup_epochs > 0 the hash loss's weight grows linearly
  from 0 over that many epochs of `steps_per_epoch` steps.

  Returns:
    The callbacks the objective needs during fit (HashNet's continuation,
    the warm-up).
  """
  hash_loss = methods.hash_loss(config, num_classes=num_classes)
  fit_callbacks = methods.callbacks(hash_loss)
  if hash_loss is not None and config.hash_loss_warmup_epochs > 0:
    hash_loss = losses.WarmedUpLoss(hash_loss)
    fit_callbacks.append(losses.LossWarmup(
        hash_loss, config.hash_loss_warmup_epochs * steps_per_epoch))
  loss, loss_weights = {}, {}
  if hash_loss is not None and config.hash_loss_weight > 0:
    loss["hash"] = hash_loss
    loss_weights["hash"] = config.hash_loss_weight
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
  return fit_callbacks


def hold_out(dataset, size, fraction, seed):
  """Splits a training part into (fit, validation) by a seeded draw.

  Args:
    dataset: unbatched training part with `size` elements.
    size: its number of elements.
    fraction: share of the elements held out for validation.
    seed: seed of the draw.

  Returns:
    (fit dataset, validation dataset, positions of the validation elements
    in `dataset`, int64 sorted).
  """
  count = int(round(size * fraction))
  held = np.sort(np.random.default_rng(seed).choice(size, count,
                                                    replace=False))
  mask = np.zeros(size, bool)
  mask[held] = True
  mask = tf.constant(mask)
  def keep(held_out):
    return lambda i, item: tf.equal(mask[i], held_out)
  def drop_index(i, item):
    return item
  # Filtering hides the size from Keras, which then warns at the end of the
  # first epoch that the data "ran out"; the sizes are known, so state them.
  fit = dataset.enumerate().filter(keep(False)).map(drop_index).apply(
      tf.data.experimental.assert_cardinality(size - count))
  validation = dataset.enumerate().filter(keep(True)).map(drop_index).apply(
      tf.data.experimental.assert_cardinality(count))
  return fit, validation, held.astype(np.int64)


def _log_image(log_dir, name, png):
  with tf.summary.create_file_writer(log_dir).as_default():
    tf.summary.image(name, tf.image.decode_png(png)[None], step=0)


def _with_targets(batches):
  # Both outputs learn from the same labels.
  return batches.map(lambda x, y: (x, {"hash": y, "logits": y}))


def load_data(config):
  """The HashingDataset a run of `config` trains and evaluates on."""
  return datasets.load_dataset(config.dataset, protocol=config.protocol,
                               split_seed=config.split_seed,
                               data_dir=config.data_dir,
                               image_root=config.image_root,
                               image_size=config.image_size,
                               on_bad_image=config.on_bad_image,
                               cache=config.data_cache, seed=config.seed)


def config_from_json(values):
  """The TrainConfig of a run, from the dict in its flags.json."""
  known = {field.name for field in dataclasses.fields(TrainConfig)}
  unknown = sorted(set(values) - known)
  if unknown:
    raise ConfigError(f"flags.json has fields this version does not know: "
                      f"{', '.join(unknown)}")
  values = dict(values)
  values["fc_units"] = tuple(values.get("fc_units", ()))
  values["method_params"] = tuple(values.get("method_params", ()))
  return TrainConfig(**values)


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
  config = resolve(config)
  validate(config)
  keras.utils.set_random_seed(config.seed)
  data = load_data(config)
  model = model_lib.build_model(
      backbone=config.backbone, bits=config.bits,
      num_classes=data.num_classes, image_shape=data.image_shape,
      weights=config.weights, fc_units=config.fc_units,
      image_size=config.image_size)
  fit_part, split = data.parts["train"], dict(data.split)
  fit_size = len(data.split["train"])
  if config.validation_fraction > 0:
    fit_part, validation, held = hold_out(
        fit_part, len(data.split["train"]), config.validation_fraction,
        seed=config.split_seed)
    split["validation"] = data.split["train"][held]
    fit_size -= len(held)
  method_callbacks = compile_model(
      model, config, num_classes=data.num_classes,
      multi_label=data.multi_label,
      steps_per_epoch=max(fit_size // config.batch_size, 1))

  created = run_dir.create(model_dir)
  try:
    run_dir.write_json(os.path.join(model_dir, "flags.json"),
                       dataclasses.asdict(config))
    run_dir.write_split(os.path.join(model_dir, "split.npz"), split)
  except BaseException:
    run_dir.remove_created(created)
    raise

  logs = os.path.join(model_dir, "logs")
  callbacks = [keras.callbacks.TensorBoard(logs)] + method_callbacks
  if config.validation_fraction > 0:
    callbacks.append(evaluation.ValidationMAP(
        validation, fit_part, os.path.join(logs, "validation"),
        every=config.validation_every, epochs=config.epochs,
        batch_size=config.eval_batch_size, topk=config.topk or data.topk))
  train_batches = pipeline.batches(fit_part, batch_size=config.batch_size,
                                   training=True, seed=config.seed)
  start = time.perf_counter()
  history = model.fit(_with_targets(train_batches), epochs=config.epochs,
                      callbacks=callbacks, shuffle=False,  # Done by batches.
                      verbose=verbose)
  train_seconds = time.perf_counter() - start
  run_dir.save_model(os.path.join(model_dir, "model.keras"), model)

  extra = dict(protocol=config.protocol, backbone=config.backbone,
               method=config.method,
               train_seconds=round(train_seconds, 1))
  if "val_mAP" in history.history:
    extra["validation_mAP"] = history.history["val_mAP"][-1]
  if not config.evaluate_test:  # Tuning: the queries stay unseen.
    results = dict(extra, bits=config.bits, dataset=config.dataset)
    run_dir.write_json(os.path.join(model_dir, "metrics.json"), results)
    return results
  results, curve = evaluation.evaluate_run(
      model, data, model_dir, batch_size=config.eval_batch_size,
      topk=config.topk, extra=extra)
  _log_image(os.path.join(logs, "test"), "precision_recall_curve", curve)
  return results
