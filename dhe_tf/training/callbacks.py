"""Every keras callback of a training run.

- `StopOnNaN`: a NaN or infinite loss ends the run with one clear error.
- `ValidationMAP`: mAP on the held-out validation split, every N epochs,
  and the codes' diagnostics (dhe_tf.evaluation.diagnostics), into the logs Keras'
  TensorBoard callback writes (as val_mAP, val_saturated, ...).
- `LossWarmup`, `HashNetContinuation`: schedules of a loss, set before each
  training step from the optimizer's step count (`training_step`), so a
  resumed run continues them where it stopped.
"""

import math

import keras
from dhe_tf.evaluation import validation
from dhe_tf.core.errors import TrainingDivergedError


def training_step(callback):
  """The optimizer's step count t of `callback`'s model (0 before any step).

  Read from the optimizer, not counted by the callback, so that a resumed
  run continues its schedule where it stopped. Without a model (a callback
  driven by hand) the callback counts its own calls.
  """
  model = callback.model
  if model is not None and getattr(model, "optimizer", None) is not None:
    return int(model.optimizer.iterations.numpy())
  callback.calls = getattr(callback, "calls", -1) + 1
  return callback.calls


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


class LossWarmup(keras.callbacks.Callback):
  """Sets WarmedUpLoss.scale to min(1, t / steps) before training step t."""

  def __init__(self, loss, steps):
    super().__init__()
    self.loss = loss
    self.steps = max(int(steps), 1)

  def on_train_batch_begin(self, batch, logs=None):
    self.loss.scale.assign(min(1.0, training_step(self) / self.steps))


class HashNetContinuation(keras.callbacks.Callback):
  """Sets HashNetLoss.beta to β_t before each training step t."""

  def __init__(self, loss):
    super().__init__()
    self.loss = loss

  def on_train_batch_begin(self, batch, logs=None):
    self.loss.beta.assign(self.loss.beta_at(training_step(self)))


class ValidationMAP(keras.callbacks.Callback):
  """Puts mAP on a held-out validation split into the logs every N epochs.

  The validation images are training images held out from fitting (never
  the test queries), scored by dhe_tf.evaluation.validation.score: they retrieve
  each other, as the test queries retrieve a database of unseen images. The value goes into the epoch's logs as "val_mAP", so the History
  records it and keras.callbacks.TensorBoard, placed after this callback,
  writes it as "epoch_mAP" under logs/validation beside the loss curves; so
  do the diagnostics of dhe_tf.evaluation.diagnostics.code_diagnostics, as
  "val_saturated", "val_bit_imbalance" etc. (`self.diagnostics` keeps the
  last ones).

  Args:
    images: unbatched (image, label) dataset of the validation images.
    every: evaluate after every `every`-th epoch and after the last one.
    epochs: the number of epochs of the run.
    batch_size: images per encoding batch.
    topk: k of mAP@k, None for all.
  """

  def __init__(self, images, *, every, epochs, batch_size=256, topk=None):
    super().__init__()
    self.images = images
    self.every = every
    self.epochs = epochs
    self.batch_size = batch_size
    self.topk = topk
    self.history = {}
    self.diagnostics = {}

  def on_epoch_end(self, epoch, logs=None):
    done = epoch + 1
    if done % self.every and done != self.epochs:
      return
    value, self.diagnostics = validation.score(
        self.model, self.images, batch_size=self.batch_size, topk=self.topk)
    self.history[done] = value
    if logs is not None:
      logs["val_mAP"] = value
      logs.update({f"val_{name}": v for name, v in self.diagnostics.items()})
