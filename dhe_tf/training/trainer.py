"""Training a hashing model end to end: data → model → objective → fit →
evaluate.

`train(config, model_dir)` is everything `python -m dhe_tf.train` does, as a
plain function of an explicit dhe_tf.runs.config.TrainConfig, so tests and tools
call it directly. What it leaves in model_dir is described in dhe_tf.runs.run_dir.
"""

import dataclasses
import os
import shutil
import tempfile
import time

from absl import logging

import keras
import tensorflow as tf

from dhe_tf.training import callbacks as callbacks_lib
from dhe_tf.runs import config as config_lib
from dhe_tf.evaluation import evaluator
from dhe_tf.training import hardware
from dhe_tf.model import network as model_lib
from dhe_tf.training import objective
from dhe_tf.runs import run_dir
from dhe_tf.data import pipeline
from dhe_tf.core.errors import ConfigError


def _log_image(log_dir, name, png):
  with tf.summary.create_file_writer(log_dir).as_default():
    tf.summary.image(name, tf.image.decode_png(png)[None], step=0)


def _with_targets(batches):
  # Both outputs learn from the same labels.
  return batches.map(lambda x, y: (x, {"hash": y, "logits": y}))


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


def _task_paths(model_dir, strategy, chief):
  """(directory of this task's outputs, of its backup).

  The chief writes model_dir; another worker of a multi-worker run writes
  its outputs to a temporary directory and its backup beside the chief's,
  so they never collide even when model_dir is on a shared file system.
  """
  if chief:
    return model_dir, os.path.join(model_dir, "backup")
  return (tempfile.mkdtemp(prefix="dhe_tf_worker_"),
          os.path.join(model_dir, f"backup_{hardware.task_name(strategy)}"))


def _callbacks(config, data, logs, backup_dir, *, validation):
  """The trainer's own fit() callbacks, in the order they must run.

  The backup of an epoch is written before anything else sees its end, and
  removed only once model.keras exists, so a kill at any point resumes.

  Returns:
    (the callbacks, the ValidationMAP among them or None).
  """
  callbacks = [
      callbacks_lib.StopOnNaN(backup_dir),
      keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False)]
  validation_map = None
  if validation is not None:  # Before TensorBoard, which logs its val_mAP.
    validation_map = callbacks_lib.ValidationMAP(
        validation, every=config.validation_every,
        epochs=config.epochs, batch_size=config.eval_batch_size,
        topk=config.topk or data.topk)
    callbacks.append(validation_map)
  return callbacks + [keras.callbacks.TensorBoard(logs)], validation_map


@dataclasses.dataclass
class _Prepared:
  """What `_prepare` checked and built, before anything is written."""
  config: object  # The validated TrainConfig.
  strategy: object  # tf.distribute strategy.
  chief: bool
  resumed: bool
  xla: tuple  # (on, why).
  policy: tuple  # (dtype policy name, why).
  data: object  # dhe_tf.data.datasets.HashingDataset.
  validation: object  # The validation images, or None.
  split: dict  # Indices of every part, as written to split.npz.
  train_batches: object  # tf.data.Dataset of (images, labels).
  model: object  # The compiled keras.Model.
  method_callbacks: list


def _prepare(config, model_dir):
  """Validates, loads data and weights, builds and compiles the model.

  Writes nothing, so a bad value or missing data leaves no directory.
  """
  config = config_lib.validate(config)
  # A multi-worker strategy must exist before TensorFlow runs anything.
  strategy = hardware.make_strategy(config.strategy)
  replicas = strategy.num_replicas_in_sync
  if config.batch_size < 2 * replicas:
    raise ConfigError(f"batch_size must give each of the {replicas} replicas "
                      f"at least 2 images. Received: batch_size="
                      f"{config.batch_size}")
  xla = hardware.resolve_jit_compile(config.jit_compile,
                                    strategy_name=config.strategy)
  policy = hardware.resolve_mixed_precision(config.mixed_precision)
  chief = hardware.is_chief(strategy)
  resumed = chief and run_dir.check_resumable(model_dir,
                                              config_lib.to_json(config))
  keras.utils.set_random_seed(config.seed)
  data = run_dir.load_data(config)
  if config.sampler == "balanced" and data.multi_label:
    raise ConfigError(f"--sampler=balanced needs single-label data; "
                      f"{config.dataset} is multi-label.")
  fit_part, validation, split = run_dir.split_training_part(config, data)
  steps_per_epoch = _steps_per_epoch(len(split["train"]) - len(
      split.get("validation", ())), config.batch_size)
  # Built before anything is written: the sampler checks the images' labels.
  train_batches = pipeline.batches(
      fit_part, batch_size=config.batch_size, training=True, seed=config.seed,
      augment=config.augment, sampler=config.sampler,
      classes_per_batch=config.classes_per_batch)
  with strategy.scope(), hardware.dtype_policy(policy[0]):
    model = model_lib.build_model(
        backbone=config.backbone, bits=config.bits,
        num_classes=data.num_classes, image_shape=data.image_shape,
        weights=config.weights, fc_units=config.fc_units,
        image_size=config.image_size,
        head=config.head, hamming_classifier=config.hamming_classifier,
        classifier_reads=config.classifier_reads,
        multi_label=data.multi_label)
    method_callbacks = objective.compile_model(
        model, config, multi_label=data.multi_label,
        steps_per_epoch=steps_per_epoch, jit_compile=xla[0])
  if model.jit_compile != xla[0]:
    xla = (False, "a layer of the model does not support XLA")
  return _Prepared(config=config, strategy=strategy, chief=chief,
                   resumed=resumed, xla=xla, policy=policy, data=data,
                   validation=validation, split=split,
                   train_batches=train_batches, model=model,
                   method_callbacks=method_callbacks)


def _fit(prepared, model_dir, *, verbose, callbacks):
  """Writes the run's start, fits, and saves model.keras (chief only).

  Returns:
    (keras History, seconds fitting, what _announce logged, the
    ValidationMAP callback or None); None on workers other than the chief.
  """
  p, config = prepared, prepared.config
  created = run_dir.create(model_dir)
  out_dir, backup_dir = _task_paths(model_dir, p.strategy, p.chief)
  try:
    if p.chief and not p.resumed:
      run_dir.write_json(os.path.join(out_dir, "flags.json"),
                         config_lib.to_json(config))
      run_dir.write_split(os.path.join(out_dir, "split.npz"), p.split)
  except BaseException:
    run_dir.remove_created(created)
    raise
  execution = _announce(config, p.strategy, p.xla, p.policy, p.resumed,
                        backup_dir)
  own_callbacks, validation_map = _callbacks(
      config, p.data, os.path.join(out_dir, "logs"), backup_dir,
      validation=p.validation if p.chief else None)
  try:
    start = time.perf_counter()
    history = p.model.fit(
        _with_targets(p.train_batches), epochs=config.epochs,
        callbacks=own_callbacks + p.method_callbacks + list(callbacks),
        shuffle=False,  # Done by batches.
        verbose=verbose)
    train_seconds = time.perf_counter() - start
    if not p.chief:
      shutil.rmtree(backup_dir, ignore_errors=True)
      return None
  finally:
    if not p.chief:
      shutil.rmtree(out_dir, ignore_errors=True)
  run_dir.save_model(os.path.join(model_dir, "model.keras"), p.model)
  shutil.rmtree(backup_dir, ignore_errors=True)
  return history, train_seconds, execution, validation_map


def _finish(prepared, model_dir, history, train_seconds, execution,
            validation_map):
  """Writes metrics.json: the training record and, unless tuning, the test."""
  config = prepared.config
  extra = dict(protocol=config.protocol, backbone=config.backbone,
               method=config.method,
               train_seconds=round(train_seconds, 1), **execution)
  if validation_map is not None and validation_map.history:
    curve = validation_map.history
    extra["validation_mAP"] = curve[max(curve)]
    # Epoch → validation mAP, to show convergence (epochs of this process:
    # a resumed run has the epochs after its restart).
    extra["validation_curve"] = {str(e): round(v, 5)
                                 for e, v in sorted(curve.items())}
    extra["validation_diagnostics"] = validation_map.diagnostics
  extra["train_loss_curve"] = [round(float(v), 5)
                               for v in history.history.get("loss", ())]
  if not config.evaluate_test:  # Tuning: the queries stay unseen.
    results = dict(extra, bits=config.bits, dataset=config.dataset)
    run_dir.write_json(os.path.join(model_dir, "metrics.json"), results)
    return results
  results, curve = evaluator.evaluate_run(
      prepared.model, prepared.data, model_dir,
      batch_size=config.eval_batch_size, topk=config.topk, extra=extra,
      score_classifier=evaluator.scores_classifier(config, prepared.data))
  _log_image(os.path.join(model_dir, "logs", "test"),
             "precision_recall_curve", curve)
  return results


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
    config: a dhe_tf.runs.config.TrainConfig.
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
  prepared = _prepare(config, model_dir)
  fitted = _fit(prepared, model_dir, verbose=verbose, callbacks=callbacks)
  if fitted is None:  # A worker other than the chief.
    return None
  return _finish(prepared, model_dir, *fitted)
