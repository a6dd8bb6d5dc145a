"""How the weights move: Adam with a slower backbone, decoupled weight decay,
and learning-rate schedules for fine-tuning a pretrained CNN.

Fine-tuning the way the field does it: the new layers (fc_*, hash, logits)
start from random weights and learn at the full learning rate η, while the
pretrained backbone moves at m·η (m = --backbone_lr_multiplier, e.g. 0.1) and
may be held still (m = 0) for the first --freeze_backbone_epochs, so that the
random head does not send large gradients into pretrained features. η itself
follows a schedule (constant, cosine or step decay, after a linear warm-up).
"""

import keras
from keras import ops

from dhe_tf.core.errors import ConfigError

SCHEDULES = ("constant", "cosine", "step")


@keras.saving.register_keras_serializable(package="dhe_tf")
class FineTuningAdam(keras.optimizers.Adam):
  """Adam whose backbone variables use a multiple of the learning rate.

  With η_t the (scheduled) learning rate of step t, a variable of the
  backbone takes the Adam step with rate

      η_b(t) = 0          if t < frozen_steps
             = m · η_t    otherwise

  and every other variable with η_t. Decoupled weight decay (AdamW,
  Loshchilov & Hutter 2019) shrinks each decayed variable w before its Adam
  step by w ← w − λ · η_v(t) · w, with η_v its own rate, as PyTorch's AdamW does
  for parameter groups of different learning rates. Which variables are
  decayed is set with `exclude_from_weight_decay` (make_optimizer exempts
  biases and batch-norm scales and offsets).

  "Frozen" here means a learning rate of 0: gradients of the backbone are
  still computed, its Adam moments and batch-norm statistics still update.
  It costs the backbone's backward pass during the warm-up, but one compiled
  train step serves the whole run and a resumed run restores the phase from
  the optimizer's step counter.

  Args:
    learning_rate: η, a float or a keras.optimizers.schedules schedule.
    backbone_lr_multiplier: m ≥ 0. Default 1.0.
    frozen_steps: steps during which the backbone does not move. Default 0.
    decoupled_weight_decay: λ ≥ 0; 0 is plain Adam. Default 0.0.
    **kwargs: forwarded to keras.optimizers.Adam (beta_1, epsilon, …).

  Call `set_backbone_variables(model.get_layer("backbone")
  .trainable_variables)` before the first step. The set is not part of the
  config: an optimizer restored from a saved model treats every variable as
  head (m = 1) until it is called again.

  Example:

  >>> optimizer = FineTuningAdam(1e-3, backbone_lr_multiplier=0.1)
  >>> # optimizer.set_backbone_variables(backbone.trainable_variables)
  """

  def __init__(self, learning_rate=0.001, backbone_lr_multiplier=1.0,
               frozen_steps=0, decoupled_weight_decay=0.0,
               name="fine_tuning_adam", **kwargs):
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.backbone_lr_multiplier = backbone_lr_multiplier
    self.frozen_steps = frozen_steps
    self.decoupled_weight_decay = decoupled_weight_decay
    self._backbone_keys = set()

  def set_backbone_variables(self, variables):
    """Marks `variables` as the backbone's (rate η_b(t) above)."""
    self._backbone_keys = {self._var_key(v) for v in variables}

  def _backbone_rate(self, learning_rate):
    multiplier = ops.cast(self.backbone_lr_multiplier, learning_rate.dtype)
    if self.frozen_steps:
      multiplier = ops.where(self.iterations < self.frozen_steps,
                             ops.zeros_like(multiplier), multiplier)
    return learning_rate * multiplier

  def update_step(self, gradient, variable, learning_rate):
    learning_rate = ops.cast(learning_rate, variable.dtype)
    if self._var_key(variable) in self._backbone_keys:
      learning_rate = self._backbone_rate(learning_rate)
    if self.decoupled_weight_decay and self._use_weight_decay(variable):
      decay = ops.cast(self.decoupled_weight_decay, variable.dtype)
      self.assign_sub(variable, variable * decay * learning_rate)
    super().update_step(gradient, variable, learning_rate)

  def get_config(self):
    config = super().get_config()
    config.update(backbone_lr_multiplier=self.backbone_lr_multiplier,
                  frozen_steps=self.frozen_steps,
                  decoupled_weight_decay=self.decoupled_weight_decay)
    return config


@keras.saving.register_keras_serializable(package="dhe_tf")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
  """Ramps a learning rate up linearly, then follows `after`.

      η(t) = after(t) · min(1, (t + 1) / warmup_steps)

  Args:
    after: a float or a LearningRateSchedule of the absolute step t.
    warmup_steps: length of the ramp, ≥ 1.
  """

  def __init__(self, after, warmup_steps):
    self.after = after
    self.warmup_steps = warmup_steps

  def __call__(self, step):
    step = ops.cast(step, "float32")
    after = self.after(step) if callable(self.after) else self.after
    ramp = ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
    return ops.cast(after, "float32") * ramp

  def get_config(self):
    after = self.after
    if isinstance(after, keras.optimizers.schedules.LearningRateSchedule):
      after = keras.optimizers.schedules.serialize(after)
    return {"after": after, "warmup_steps": self.warmup_steps}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    if isinstance(config["after"], dict):
      config["after"] = keras.optimizers.schedules.deserialize(config["after"])
    return cls(**config)


def learning_rate_schedule(learning_rate, kind, *, steps_per_epoch, epochs,
                           warmup_epochs=0, decay_epochs=(), decay_factor=0.1):
  """The learning rate η_t of a run, per optimizer step t.

  Args:
    learning_rate: η, the peak rate.
    kind: "constant" (η), "cosine" (η · ½(1 + cos(π · t' / T')) over the
      steps after the warm-up, down to 0 at the last step) or "step"
      (η · decay_factor^(number of decay_epochs passed)).
    steps_per_epoch: optimizer steps per epoch (global batches).
    epochs: epochs of the run.
    warmup_epochs: epochs of linear ramp from η/warmup_steps to η first.
    decay_epochs: epochs after which "step" multiplies η by decay_factor.
    decay_factor: the factor of "step".

  Returns:
    A float (constant, no warm-up) or a LearningRateSchedule.
  """
  warmup_steps = warmup_epochs * steps_per_epoch
  if kind == "cosine":
    return keras.optimizers.schedules.CosineDecay(
        learning_rate / warmup_steps if warmup_steps else learning_rate,
        decay_steps=max(1, (epochs - warmup_epochs) * steps_per_epoch),
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps)
  if kind == "step" and decay_epochs:
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [epoch * steps_per_epoch for epoch in sorted(decay_epochs)],
        [learning_rate * decay_factor ** i
         for i in range(len(decay_epochs) + 1)])
  else:
    schedule = learning_rate
  return LinearWarmup(schedule, warmup_steps) if warmup_steps else schedule


def check_schedule(kind, *, epochs, freeze_backbone_epochs=0,
                   warmup_epochs=0, decay_epochs=(), decay_factor=0.1):
  """Raises ConfigError naming the first setting of a schedule that cannot
  work (see learning_rate_schedule and FineTuningAdam for their meaning)."""
  if kind not in SCHEDULES:
    raise ConfigError(f"Unknown lr_schedule {kind!r}. "
                      f"Available: {', '.join(SCHEDULES)}")
  for name, value in (("freeze_backbone_epochs", freeze_backbone_epochs),
                      ("warmup_epochs", warmup_epochs)):
    if value >= epochs:
      raise ConfigError(f"{name} must be below epochs={epochs}. "
                        f"Received: {name}={value}")
  if not 0 < decay_factor <= 1:
    raise ConfigError("lr_decay_factor must be in (0, 1]. "
                      f"Received: lr_decay_factor={decay_factor}")
  if decay_epochs and kind != "step":
    raise ConfigError("lr_decay_epochs needs lr_schedule=step. Received: "
                      f"lr_schedule={kind}")
  for epoch in decay_epochs:
    if not 0 < epoch < epochs:
      raise ConfigError(f"lr_decay_epochs must lie in (0, epochs={epochs}). "
                        f"Received: lr_decay_epochs={tuple(decay_epochs)}")


def make_optimizer(model, config, *, steps_per_epoch):
  """The optimizer of a run: FineTuningAdam on its learning-rate schedule.

  The backbone (the sub-model named "backbone") learns at
  backbone_lr_multiplier × the rate of the new layers, and not at all for
  the first freeze_backbone_epochs; biases and batch-norm scales and
  offsets (every variable of rank ≤ 1) are not weight-decayed.

  Args:
    model: a model from dhe_tf.model.build_model.
    config: a dhe_tf.runs.config.TrainConfig.
    steps_per_epoch: optimizer steps per epoch.
  """
  schedule = learning_rate_schedule(
      config.learning_rate, config.lr_schedule,
      steps_per_epoch=steps_per_epoch, epochs=config.epochs,
      warmup_epochs=config.warmup_epochs,
      decay_epochs=config.lr_decay_epochs,
      decay_factor=config.lr_decay_factor)
  optimizer = FineTuningAdam(
      schedule, backbone_lr_multiplier=config.backbone_lr_multiplier,
      frozen_steps=config.freeze_backbone_epochs * steps_per_epoch,
      decoupled_weight_decay=config.weight_decay)
  optimizer.set_backbone_variables(
      model.get_layer("backbone").trainable_variables)
  optimizer.exclude_from_weight_decay(
      var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
  return optimizer
