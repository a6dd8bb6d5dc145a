"""XLA, mixed precision, fine-tuning optimizer and schedules, run-dir resume
rules: everything of docs/scaling.md that runs in this process on a CPU."""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.runs import config as config_lib
from dhe_tf.training import objective
from dhe_tf.training import hardware
from dhe_tf.losses import baselines
from dhe_tf.losses import hamming_embedding as losses
from dhe_tf.model import network as model_lib
from dhe_tf.training import optimization
from dhe_tf.runs import run_dir
from dhe_tf.core.errors import ConfigError

# Every hashing loss must compile under XLA.
XLA_LOSSES = [losses.HammingEmbeddingLoss(),
              losses.HammingEmbeddingLoss(distance="squared"),
              losses.HammingEmbeddingLoss(codeword_weight=1.0, num_classes=3,
                                          bits=12),
              losses.HammingEmbeddingLoss(codeword_weight=1.0, num_classes=3,
                                          bits=12, codeword_loss="softmax"),
              losses.WarmedUpLoss(losses.HammingEmbeddingLoss()),
              baselines.DPSHLoss(), baselines.DSHLoss(),
              baselines.HashNetLoss(),
              baselines.CSQLoss(num_classes=3, bits=12)]


def _batch(n=8, side=16, classes=4, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.uniform(0, 255, (n, side, side, 1)).astype("float32")
  labels = np.eye(classes, dtype="float32")[np.arange(n) % classes]
  return images, labels


def _small(classes=4, bits=12):
  return model_lib.build_model(backbone="small_cnn", bits=bits,
                               num_classes=classes, image_shape=(16, 16, 1))


@pytest.mark.parametrize("loss", XLA_LOSSES, ids=lambda l: l.name)
def test_loss_and_its_gradient_compile_under_xla(loss):
  rng = np.random.default_rng(0)
  labels = tf.constant(np.eye(3, dtype="float32")[rng.integers(0, 3, 16)])
  u = tf.constant(rng.uniform(0.05, 0.95, (16, 12)).astype("float32"))
  def value_and_gradient(labels, u):
    with tf.GradientTape() as tape:
      tape.watch(u)
      value = loss(labels, u)
    return value, tape.gradient(value, u)
  eager = value_and_gradient(labels, u)
  compiled = tf.function(value_and_gradient, jit_compile=True)
  xla = compiled(labels, u)
  # It really went through XLA: the compiler produced HLO for it.
  assert "HloModule" in compiled.experimental_get_compiler_ir(
      labels, u)(stage="hlo")
  np.testing.assert_allclose(xla[0], eager[0], rtol=1e-5)
  np.testing.assert_allclose(xla[1], eager[1], rtol=1e-4, atol=1e-7)


def test_train_step_with_jit_compile_true_matches_the_step_without():
  images, labels = _batch()
  targets = {"hash": labels, "logits": labels}
  config = config_lib.TrainConfig(bits=12, learning_rate=1e-3)
  results = []
  for xla in (False, True):
    keras.utils.set_random_seed(0)
    model = _small()
    objective.compile_model(model, config, multi_label=False, jit_compile=xla)
    assert model.jit_compile is xla
    history = model.fit(images, targets, batch_size=4, epochs=1, verbose=0,
                        shuffle=False)
    results.append((history.history["loss"], model.get_weights()))
  (loss, weights), (xla_loss, xla_weights) = results
  assert np.all(np.isfinite(xla_loss))
  np.testing.assert_allclose(xla_loss, loss, rtol=1e-4)
  for a, b in zip(xla_weights, weights):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


_CPU_ONLY = pytest.mark.skipif(bool(hardware.gpus()),
                               reason="expectations of a CPU-only machine")


@_CPU_ONLY
def test_jit_resolution_on_cpu_says_why():
  assert hardware.resolve_jit_compile("auto", strategy_name="default") == (
      False, "jit_compile=auto and no GPU: XLA pays off on GPUs")
  assert hardware.resolve_jit_compile("true", strategy_name="default")[0]
  assert not hardware.resolve_jit_compile("false", strategy_name="default")[0]
  with pytest.raises(ConfigError, match="XLA cannot compile the all-reduce"):
    hardware.resolve_jit_compile("true", strategy_name="multi_worker")


def test_mixed_bfloat16_keeps_codes_logits_and_loss_in_float32():
  images, labels = _batch()
  config = config_lib.TrainConfig(bits=12)
  with hardware.dtype_policy("mixed_bfloat16"):
    model = _small()
    objective.compile_model(model, config, multi_label=False, jit_compile=False)
  assert keras.mixed_precision.dtype_policy().name == "float32"  # Restored.
  backbone = model.get_layer("backbone")
  conv = [l for l in backbone.layers if "conv" in l.name][0]
  assert conv.compute_dtype == "bfloat16" and conv.variable_dtype == "float32"
  for name in ("hash", "logits"):
    assert model.get_layer(name).compute_dtype == "float32"
  outputs = model(images)
  assert outputs["hash"].dtype == "float32"
  assert outputs["logits"].dtype == "float32"
  history = model.fit(images, {"hash": labels, "logits": labels},
                      batch_size=8, epochs=1, verbose=0, shuffle=False)
  assert np.all(np.isfinite(history.history["loss"]))
  assert all(v.dtype == "float32" for v in model.trainable_variables)


@_CPU_ONLY
def test_mixed_precision_auto_is_float32_without_a_gpu():
  assert hardware.resolve_mixed_precision("auto")[0] == "float32"
  assert hardware.resolve_mixed_precision("mixed_bfloat16")[0] == (
      "mixed_bfloat16")


def _one_step(optimizer, model, images, labels):
  """Applies one step; returns (backbone, head) weight changes."""
  before = [v.numpy() for v in model.trainable_variables]
  with tf.GradientTape() as tape:
    outputs = model(images, training=True)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)(
        labels, outputs["logits"]) + keras.ops.mean(outputs["hash"])
  variables = model.trainable_variables
  optimizer.apply(tape.gradient(loss, variables), variables)
  backbone = {id(v) for v in model.get_layer("backbone").trainable_variables}
  changes = {True: [], False: []}
  for v, b in zip(variables, before):
    changes[id(v) in backbone].append(np.abs(v.numpy() - b).ravel())
  return np.concatenate(changes[True]), np.concatenate(changes[False])


def _median_moving(change):
  return np.median(change[change > 0])


def test_backbone_moves_at_the_multiple_of_the_learning_rate():
  # Adam's first step moves every weight with a gradient by η (m̂/√v̂ = ±1),
  # so the step sizes show each variable's rate directly.
  images, labels = _batch()
  model = _small()
  optimizer = optimization.FineTuningAdam(1e-3, backbone_lr_multiplier=0.1)
  optimizer.set_backbone_variables(
      model.get_layer("backbone").trainable_variables)
  backbone, head = _one_step(optimizer, model, images, labels)
  assert _median_moving(head) == pytest.approx(1e-3, rel=0.01)
  assert _median_moving(backbone) == pytest.approx(1e-4, rel=0.01)


def test_frozen_backbone_moves_only_after_the_frozen_steps():
  images, labels = _batch()
  model = _small()
  optimizer = optimization.FineTuningAdam(1e-3, backbone_lr_multiplier=0.5,
                                          frozen_steps=1)
  optimizer.set_backbone_variables(
      model.get_layer("backbone").trainable_variables)
  backbone, head = _one_step(optimizer, model, images, labels)
  assert backbone.max() == 0 and head.max() > 0
  backbone, _ = _one_step(optimizer, model, images, labels)
  assert backbone.max() > 0


def test_decoupled_weight_decay_uses_each_variable_s_own_rate():
  # Without a gradient Adam does not move a weight; decay alone shrinks it
  # by λ·η_v·w.
  head = keras.Variable(np.full((3,), 2.0, "float32"))
  body = keras.Variable(np.full((3,), 2.0, "float32"))
  optimizer = optimization.FineTuningAdam(
      0.1, backbone_lr_multiplier=0.5, decoupled_weight_decay=0.01)
  optimizer.set_backbone_variables([body])
  zero = np.zeros((3,), "float32")
  optimizer.apply([zero, zero], [head, body])
  np.testing.assert_allclose(head.numpy(), 2.0 - 0.01 * 0.1 * 2.0, rtol=1e-6)
  np.testing.assert_allclose(body.numpy(), 2.0 - 0.01 * 0.05 * 2.0, rtol=1e-6)


def test_optimizer_config_round_trip():
  optimizer = optimization.FineTuningAdam(
      optimization.LinearWarmup(1e-3, 10), backbone_lr_multiplier=0.1,
      frozen_steps=5, decoupled_weight_decay=1e-4)
  restored = optimization.FineTuningAdam.from_config(optimizer.get_config())
  assert restored.get_config() == optimizer.get_config()


def _rates(schedule, steps):
  return [float(schedule(step)) if callable(schedule) else schedule
          for step in steps]


def test_schedules_warm_up_then_decay():
  constant = optimization.learning_rate_schedule(
      1.0, "constant", steps_per_epoch=10, epochs=5)
  assert constant == 1.0
  warm = optimization.learning_rate_schedule(
      1.0, "constant", steps_per_epoch=10, epochs=5, warmup_epochs=1)
  np.testing.assert_allclose(_rates(warm, [0, 4, 9, 30]), [0.1, 0.5, 1, 1])
  step = optimization.learning_rate_schedule(
      1.0, "step", steps_per_epoch=10, epochs=5, decay_epochs=(2, 4),
      decay_factor=0.1)
  np.testing.assert_allclose(_rates(step, [0, 20, 21, 41]),
                             [1, 1, 0.1, 0.01], rtol=1e-6)
  cosine = optimization.learning_rate_schedule(
      1.0, "cosine", steps_per_epoch=10, epochs=5, warmup_epochs=1)
  np.testing.assert_allclose(_rates(cosine, [10, 30, 50]), [1, 0.5, 0],
                             atol=1e-6)
  assert _rates(cosine, [0])[0] < 0.2


def test_warmup_schedule_round_trip():
  schedule = optimization.LinearWarmup(
      keras.optimizers.schedules.PiecewiseConstantDecay([5], [1.0, 0.1]), 3)
  restored = optimization.LinearWarmup.from_config(schedule.get_config())
  assert _rates(restored, [0, 4, 6]) == pytest.approx(_rates(schedule,
                                                             [0, 4, 6]))


@pytest.mark.parametrize("changes, message", [
    (dict(strategy="tpu"),
     "Unknown strategy 'tpu'. Available: default, mirrored, multi_worker"),
    (dict(mixed_precision="fp8"), "Unknown mixed_precision 'fp8'."),
    (dict(jit_compile="yes"), "Unknown jit_compile 'yes'."),
    (dict(lr_schedule="linear"),
     "Unknown lr_schedule 'linear'. Available: constant, cosine, step"),
    (dict(backbone_lr_multiplier=-1), "Received: backbone_lr_multiplier=-1"),
    (dict(freeze_backbone_epochs=15), "freeze_backbone_epochs must be below"),
    (dict(lr_decay_epochs=(3,)), "lr_decay_epochs needs lr_schedule=step"),
    (dict(lr_schedule="step", lr_decay_epochs=(20,)),
     "Received: lr_decay_epochs=(20,)"),
    (dict(weight_decay=-0.1), "Received: weight_decay=-0.1"),
    (dict(strategy="multi_worker"), "needs the TF_CONFIG environment"),
])
def test_bad_scaling_flags_are_named(monkeypatch, changes, message):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ConfigError, match=re.escape(message)):
    config_lib.validate(config_lib.TrainConfig(**changes))


def test_a_finished_run_or_other_flags_are_refused_an_unfinished_resumed(
    tmp_path):
  path = str(tmp_path)
  flags = {"bits": 12, "fc_units": (), "epochs": 3}
  assert run_dir.check_resumable(path, flags) is False  # A new run.
  run_dir.write_json(os.path.join(path, "flags.json"), flags)
  assert run_dir.check_resumable(path, flags) is True
  with pytest.raises(ConfigError, match=re.escape(
      "other flags (bits=12 there, 32 now)")):
    run_dir.check_resumable(path, dict(flags, bits=32))
  open(os.path.join(path, "model.keras"), "w").close()
  with pytest.raises(ConfigError, match="holds a finished run"):
    run_dir.check_resumable(path, flags)


def test_label_smoothing_reaches_the_classification_loss():
  images, labels = _batch()
  config = config_lib.TrainConfig(bits=12, method="dlbhc",
                                  label_smoothing=0.2)
  model = _small()
  objective.compile_model(model, config, multi_label=False, jit_compile=False)
  logits = keras.ops.convert_to_numpy(model(images)["logits"]).astype(
      np.float64)
  targets = labels * 0.8 + 0.2 / labels.shape[1]
  log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  expected = -(targets * log_p).sum(1).mean()
  value = model.evaluate(images, {"hash": labels, "logits": labels},
                         batch_size=8, verbose=0, return_dict=True)["loss"]
  assert value == pytest.approx(expected, rel=1e-4)
