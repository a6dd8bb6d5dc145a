"""Training a DHE model end to end: data → model → loss → fit → evaluate.

`train(config, model_dir)` is everything `python -m dhe_tf.train` does, as a
plain function of an explicit configuration, so tests call it directly.
"""

import dataclasses
import math
import os
import shutil
import tempfile
import time

from absl import logging

import keras
import numpy as np
import tensorflow as tf

from dhe_tf import evaluation
from dhe_tf import losses
from dhe_tf import methods
from dhe_tf import model as model_lib
from dhe_tf import optimization
from dhe_tf import run_dir
from dhe_tf import scaling
from dhe_tf.data import datasets
from dhe_tf.data import pipeline
from dhe_tf.errors import ConfigError
from dhe_tf.errors import TrainingDivergedError

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
  distance: str = "expected"
  topk: int | None = None
  eval_batch_size: int = 256
  validation_fraction: float = 0.1
  validation_every: int = 5
  jit_compile: str = "auto"
  evaluate_test: bool = True
  hash_loss_warmup_epochs: float = 0.0
  # Scaling up (issue 7): precision, fine-tuning, distribution.
  mixed_precision: str = "none"
  backbone_lr_multiplier: float = 1.0
  freeze_backbone_epochs: int = 0
  lr_schedule: str = "constant"
  warmup_epochs: int = 0
  lr_decay_epochs: tuple = ()
  lr_decay_factor: float = 0.1
  weight_decay: float = 0.0
  strategy: str = "default"


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
  """Raises ConfigError naming the first impossible value of `config`."""
  config = resolve(config)
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
  if config.distance not in losses.DISTANCES:
    raise ConfigError(f"Unknown distance {config.distance!r}. Available: "
                      f"{', '.join(losses.DISTANCES)}")
  if config.validation_every < 1:
    raise ConfigError("validation_every must be at least 1. "
                      f"Received: validation_every={config.validation_every}")
  if config.topk is not None and config.topk < 1:
    raise ConfigError(f"topk must be at least 1. Received: topk={config.topk}")
  if not config.evaluate_test and not config.validation_fraction:
    raise ConfigError("evaluate_test=false needs a validation split "
                      "(validation_fraction > 0): nothing would be measured.")
  scaling.check(config.strategy, config.jit_compile, config.mixed_precision)
  _validate_fine_tuning(config)


def _validate_fine_tuning(config):
  if config.lr_schedule not in optimization.SCHEDULES:
    raise ConfigError(f"Unknown lr_schedule {config.lr_schedule!r}. "
                      f"Available: {', '.join(optimization.SCHEDULES)}")
  non_negative = {name: getattr(config, name) for name in (
      "backbone_lr_multiplier", "freeze_backbone_epochs", "warmup_epochs",
      "weight_decay")}
  for name, value in non_negative.items():
    if value < 0:
      raise ConfigError(f"{name} must be ≥ 0. Received: {name}={value}")
  for name in ("freeze_backbone_epochs", "warmup_epochs"):
    if getattr(config, name) >= config.epochs:
      raise ConfigError(f"{name} must be below epochs={config.epochs}. "
                        f"Received: {name}={getattr(config, name)}")
  if not 0 < config.lr_decay_factor <= 1:
    raise ConfigError("lr_decay_factor must be in (0, 1]. "
                      f"Received: lr_decay_factor={config.lr_decay_factor}")
  if config.lr_decay_epochs and config.lr_schedule != "step":
    raise ConfigError("lr_decay_epochs needs lr_schedule=step. Received: "
                      f"lr_schedule={config.lr_schedule}")
  for epoch in config.lr_decay_epochs:
    if not 0 < epoch < config.epochs:
      raise ConfigError(
          f"lr_decay_epochs must lie in (0, epochs={config.epochs}). "
          f"Received: lr_decay_epochs={config.lr_decay_epochs}")


def make_optimizer(model, config, *, steps_per_epoch):
  """The optimizer of `config` for `model`: FineTuningAdam on a schedule.

  The backbone (the sub-model named "backbone") learns at
  backbone_lr_multiplier × the rate of the new layers, and not at all for
  the first freeze_backbone_epochs; biases and batch-norm scales and
  offsets (every variable of rank ≤ 1) are not weight-decayed.
  """
  schedule = optimization.learning_rate_schedule(
      config.learning_rate, config.lr_schedule,
      steps_per_epoch=steps_per_epoch, epochs=config.epochs,
      warmup_epochs=config.warmup_epochs,
      decay_epochs=config.lr_decay_epochs,
      decay_factor=config.lr_decay_factor)
  optimizer = optimization.FineTuningAdam(
      schedule, backbone_lr_multiplier=config.backbone_lr_multiplier,
      frozen_steps=config.freeze_backbone_epochs * steps_per_epoch,
      decoupled_weight_decay=config.weight_decay)
  optimizer.set_backbone_variables(
      model.get_layer("backbone").trainable_variables)
  optimizer.exclude_from_weight_decay(
      var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
  return optimizer


def compile_model(model, config, *, multi_label, steps_per_epoch=1,
                  jit_compile=None):
  """Compiles `model` with the objective of `config`'s method.

  Objective: hash_loss_weight · L_method(hash)
           + classification_weight · cross-entropy(logits)
  (softmax cross-entropy for single-label data, sigmoid for multi-label;
  see dhe_tf.methods). A term of weight 0 is left out; with
  classification_weight = 0 the classifier is frozen and unused.

  With hash_loss_warmup_epochs > 0 the hash loss's weight grows linearly
  from 0 over that many epochs of `steps_per_epoch` steps. The optimizer is
  make_optimizer's; `jit_compile` (bool) overrides config.jit_compile, as
  resolved by scaling.resolve_jit_compile. Under a tf.distribute strategy,
  call it inside `strategy.scope()`.

  Returns:
    The callbacks the objective needs during fit (HashNet's continuation,
    the warm-up).
  """
  config = resolve(config)
  hash_loss = methods.hash_loss(
      config, num_classes=model.get_layer("logits").units)
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
  if jit_compile is None:
    jit_compile = _JIT_CHOICES[config.jit_compile]
  model.compile(optimizer=make_optimizer(model, config,
                                         steps_per_epoch=steps_per_epoch),
                loss=loss, loss_weights=loss_weights,
                jit_compile=jit_compile)
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
  values["lr_decay_epochs"] = tuple(values.get("lr_decay_epochs", ()))
  return TrainConfig(**values)


def load_run(model_dir):
  """Loads a finished dhe_tf.train run.

  Returns:
    (model, config): the Keras model of RUN/model.keras and the run's
    dhe_tf.training.TrainConfig from RUN/flags.json.

  Raises:
    ConfigError: a file of the run is missing.
  """
  flags_path = os.path.join(model_dir, "flags.json")
  model_path = os.path.join(model_dir, "model.keras")
  for path in (flags_path, model_path):
    if not os.path.isfile(path):
      raise ConfigError(f"{path} does not exist: --model_dir must be a "
                        "finished dhe_tf.train run.")
  config = config_from_json(run_dir.read_json(flags_path))
  return model_lib.load_model(model_path), config


class StopOnNaN(keras.callbacks.Callback):
  """Stops training at the first batch whose loss is NaN or infinite.

  Unlike keras.callbacks.TerminateOnNaN, which ends fit() as if it had
  finished, this raises TrainingDivergedError, so the backup of the last
  completed epoch (RUN/backup) stays and nothing is saved as a result.

  Args:
    backup_dir: where BackupAndRestore keeps the last completed epoch; named
      in the message.
  """

  def __init__(self, backup_dir):
    super().__init__()
    self.backup_dir = backup_dir
    self.epoch = 0

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is None or math.isfinite(float(loss)):
      return
    kept = (f"the weights after epoch {self.epoch} are kept in "
            f"{self.backup_dir}" if self.epoch else "no epoch had completed")
    raise TrainingDivergedError(
        f"loss is {float(loss)} at epoch {self.epoch + 1}, batch {batch + 1}:"
        f" training stopped; {kept}. Lower --learning_rate (or check the "
        "data) and start a new --model_dir.")


def _steps_per_epoch(size, batch_size):
  if size < batch_size:
    raise ConfigError(f"batch_size={batch_size} is larger than the {size} "
                      "images fitted on: an epoch would have no batch.")
  return size // batch_size  # Training drops the last partial batch.


def _announce(config, strategy, xla, policy, resumed, backup_dir):
  """Logs what the run really uses, and returns it for metrics.json."""
  replicas = strategy.num_replicas_in_sync
  xla_on, xla_reason = xla
  policy_name, policy_reason = policy
  logging.info("XLA %s (%s).", "on" if xla_on else "off", xla_reason)
  logging.info("Dtype policy %s (%s).", policy_name, policy_reason)
  logging.info("Strategy %s: %d replica(s), %g images per replica per step.",
               config.strategy, replicas, config.batch_size / replicas)
  if resumed and os.path.isdir(backup_dir):
    logging.info("Resuming the unfinished run from %s.", backup_dir)
  elif resumed:
    logging.info("Restarting the unfinished run: no epoch had completed.")
  return dict(xla=xla_on, dtype_policy=policy_name, replicas=replicas)


def _split_training_part(config, data):
  """(fit part, validation part or None, split with "validation")."""
  split = dict(data.split)
  if config.validation_fraction == 0:
    return data.parts["train"], None, split
  fit_part, validation, held = hold_out(
      data.parts["train"], len(data.split["train"]),
      config.validation_fraction, seed=config.split_seed)
  split["validation"] = data.split["train"][held]
  return fit_part, validation, split


def _task_paths(model_dir, strategy, chief):
  """(directory of this task's outputs, of its backup).

  The chief writes model_dir; another worker of a multi-worker run writes
  its outputs to a temporary directory and its backup beside the chief's,
  so they never collide even when model_dir is on a shared file system.
  """
  if chief:
    return model_dir, os.path.join(model_dir, "backup")
  return (tempfile.mkdtemp(prefix="dhe_tf_worker_"),
          os.path.join(model_dir, f"backup_{scaling.task_name(strategy)}"))


def _callbacks(config, data, logs, backup_dir, *, validation, fit_part):
  """The trainer's own fit() callbacks, in the order they must run.

  The backup of an epoch is written before anything else sees its end, and
  removed only once model.keras exists, so a kill at any point resumes.
  """
  callbacks = [
      StopOnNaN(backup_dir),
      keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
      keras.callbacks.TensorBoard(logs)]
  if validation is not None:
    callbacks.append(evaluation.ValidationMAP(
        validation, fit_part, os.path.join(logs, "validation"),
        every=config.validation_every, epochs=config.epochs,
        batch_size=config.eval_batch_size, topk=config.topk or data.topk))
  return callbacks


def train(config, model_dir, *, verbose=2, callbacks=()):
  """Trains, saves and evaluates one model; returns its metrics.

  Validates `config` and loads data and weights before anything is written,
  so a bad value or missing data leaves no directory behind. A model_dir
  holding an unfinished run of the same flags is resumed from its last
  completed epoch (RUN/backup, keras.callbacks.BackupAndRestore) and ends
  after the same number of epochs; TensorBoard curves continue at the
  epoch they stopped. One holding a finished run, or a run of other flags,
  is refused.

  Under --strategy=multi_worker every worker runs this; only the chief
  writes model_dir and evaluates. Other workers keep their backup in
  model_dir/backup_<task> (a local path of their machine) and everything
  else in a temporary directory they delete, and return None.

  Args:
    config: a TrainConfig.
    model_dir: the run directory (created if missing).
    verbose: Keras fit verbosity.
    callbacks: more keras callbacks for fit(), called after the trainer's
      own (so the backup of an epoch is written before they see its end).

  Returns:
    The dict written to RUN/metrics.json (None on non-chief workers).

  Raises:
    ConfigError, DataUnavailableError: before anything is written.
    TrainingDivergedError: the loss became NaN or infinite.
  """
  config = resolve(config)
  validate(config)
  # A multi-worker strategy must exist before TensorFlow runs anything.
  strategy = scaling.make_strategy(config.strategy)
  replicas = strategy.num_replicas_in_sync
  if config.batch_size < 2 * replicas:
    raise ConfigError(f"batch_size must give each of the {replicas} replicas "
                      f"at least 2 images. Received: batch_size="
                      f"{config.batch_size}")
  xla = scaling.resolve_jit_compile(config.jit_compile,
                                    strategy_name=config.strategy)
  policy = scaling.resolve_mixed_precision(config.mixed_precision)
  chief = scaling.is_chief(strategy)
  flags = dataclasses.asdict(config)
  resumed = chief and run_dir.check_resumable(model_dir, flags)
  keras.utils.set_random_seed(config.seed)
  data = load_data(config)
  fit_part, validation, split = _split_training_part(config, data)
  steps_per_epoch = _steps_per_epoch(len(split["train"]) - len(
      split.get("validation", ())), config.batch_size)
  with strategy.scope(), scaling.dtype_policy(policy[0]):
    model = model_lib.build_model(
        backbone=config.backbone, bits=config.bits,
        num_classes=data.num_classes, image_shape=data.image_shape,
        weights=config.weights, fc_units=config.fc_units,
        image_size=config.image_size)
    method_callbacks = compile_model(
        model, config, multi_label=data.multi_label,
        steps_per_epoch=steps_per_epoch, jit_compile=xla[0])
  if model.jit_compile != xla[0]:
    xla = (False, "a layer of the model does not support XLA")

  created = run_dir.create(model_dir)
  out_dir, backup_dir = _task_paths(model_dir, strategy, chief)
  try:
    if chief and not resumed:
      run_dir.write_json(os.path.join(out_dir, "flags.json"), flags)
      run_dir.write_split(os.path.join(out_dir, "split.npz"), split)
  except BaseException:
    run_dir.remove_created(created)
    raise
  execution = _announce(config, strategy, xla, policy, resumed, backup_dir)

  logs = os.path.join(out_dir, "logs")
  own_callbacks = _callbacks(config, data, logs, backup_dir,
                             validation=validation if chief else None,
                             fit_part=fit_part) + method_callbacks
  train_batches = pipeline.batches(fit_part, batch_size=config.batch_size,
                                   training=True, seed=config.seed)
  try:
    start = time.perf_counter()
    history = model.fit(_with_targets(train_batches), epochs=config.epochs,
                        callbacks=own_callbacks + list(callbacks),
                        shuffle=False,  # Done by batches.
                        verbose=verbose)
    train_seconds = time.perf_counter() - start
    if not chief:
      shutil.rmtree(backup_dir, ignore_errors=True)
      return None
  finally:
    if not chief:
      shutil.rmtree(out_dir, ignore_errors=True)
  run_dir.save_model(os.path.join(model_dir, "model.keras"), model)
  shutil.rmtree(backup_dir, ignore_errors=True)

  extra = dict(protocol=config.protocol, backbone=config.backbone,
               method=config.method,
               train_seconds=round(train_seconds, 1), **execution)
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
