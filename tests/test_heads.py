"""dhe_tf.model.heads: class codewords and the Hamming classifier, against their
formulas."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.core import codewords as codewords_lib
from dhe_tf.runs import config as config_lib
from dhe_tf.model import heads
from dhe_tf.model import network as model_lib
from dhe_tf.training import trainer


def test_class_codewords_map_logits_to_the_predicted_class_codeword():
  layer = heads.ClassCodewords(5, 12, seed=2)
  codewords = (codewords_lib.hash_centers(5, 12, 2) + 1) / 2
  logits = np.random.default_rng(0).normal(size=(20, 5)).astype("float32")
  np.testing.assert_array_equal(
      keras.ops.convert_to_numpy(layer(logits)),
      codewords[logits.argmax(axis=1)])
  again = heads.ClassCodewords.from_config(layer.get_config())
  assert again.get_config() == layer.get_config()
  np.testing.assert_array_equal(keras.ops.convert_to_numpy(again(logits)),
                                keras.ops.convert_to_numpy(layer(logits)))


def test_multi_label_class_codes_are_the_sign_of_summed_centres():
  layer = heads.ClassCodewords(4, 8, multi_label=True)
  centers = codewords_lib.hash_centers(4, 8)
  logits = np.array([[2.0, 1.0, -1.0, -3.0],   # classes 0 and 1
                     [-2.0, -0.5, -1.0, -3.0]],  # none: the top one, 1
                    "float32")
  total = np.stack([centers[0] + centers[1], centers[1]])
  total = np.where(total == 0, codewords_lib.tie_center(8)[None, :], total)
  np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(logits)),
                                (np.sign(total) + 1) / 2)


def _hamming_logits(u, class_logits, bias, scale):
  # NumPy: b_c − β Σ_k u_k (1 − m_ck) + m_ck (1 − u_k), m = σ(v).
  m = 1 / (1 + np.exp(-class_logits))
  distance = (u[:, None, :] * (1 - m[None]) +
              m[None] * (1 - u[:, None, :])).sum(-1)
  return bias[None, :] - scale * distance


def test_hamming_classifier_equals_its_formula_and_hamming_distance():
  rng = np.random.default_rng(0)
  layer = heads.HammingClassifier(5, 1.5)
  u = rng.uniform(size=(7, 12)).astype("float32")
  logits = keras.ops.convert_to_numpy(layer(u))
  class_logits, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
  assert class_logits.shape == (5, 12) and bias.shape == (5,)
  np.testing.assert_allclose(logits, _hamming_logits(u, class_logits, bias,
                                                     1.5), atol=1e-5)
  # With binary codes and saturated class codes, the distance is Hamming's:
  # each differing bit costs exactly β.
  layer.class_logits.assign(np.where(class_logits > 0, 30.0, -30.0))
  codes = (u > 0.5).astype("float32")
  hamming = (codes[:, None, :] != (class_logits > 0)[None]).sum(-1)
  np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(codes)),
                             -1.5 * hamming, atol=1e-4)


def test_hamming_classifier_gradients_are_finite_at_0_half_and_1():
  layer = heads.HammingClassifier(3, 2.0)
  u = tf.constant([[0.0, 0.5, 1.0, 0.0], [1.0, 1.0, 0.5, 0.5]])
  labels = tf.constant([0, 2])
  with tf.GradientTape() as tape:
    tape.watch(u)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        labels, layer(u))
  gradients = tape.gradient(loss, [u] + layer.trainable_weights)
  assert all(np.isfinite(g.numpy()).all() for g in gradients)
  # ∂logit_c/∂u_k = −β (1 − 2 m_ck): a bit pulls towards its class code.
  m = keras.ops.convert_to_numpy(layer.class_codes())
  jacobian = tf.GradientTape(persistent=True)
  with jacobian:
    jacobian.watch(u)
    out = layer(u)[0, 1]
  np.testing.assert_allclose(jacobian.gradient(out, u).numpy()[0],
                             -2.0 * (1 - 2 * m[1]), atol=1e-6)


def test_model_with_hamming_classifier_saves_and_loads(tmp_path):
  model = model_lib.build_model(backbone="small_cnn", bits=6, num_classes=3,
                                image_shape=(16, 16, 1),
                                hamming_classifier=2.0)
  assert isinstance(model.get_layer("logits"), heads.HammingClassifier)
  images = np.random.default_rng(1).uniform(0, 255, (4, 16, 16, 1)).astype(
      "float32")
  before = model.predict(images, verbose=0)
  path = os.path.join(tmp_path, "model.keras")
  model.save(path)
  after = model_lib.load_model(path).predict(images, verbose=0)
  for key in ("hash", "logits"):
    np.testing.assert_allclose(after[key], before[key], atol=1e-6)
  layer = model.get_layer("logits")
  np.testing.assert_allclose(before["logits"], _hamming_logits(
      before["hash"], *(keras.ops.convert_to_numpy(w) for w in layer.weights),
      2.0), atol=1e-4)


def test_a_run_trains_and_saves_the_hamming_classifier(tmp_path):
  config = config_lib.TrainConfig(
      dataset="embedded", protocol="tiny", backbone="small_cnn", bits=6,
      epochs=1, jit_compile="false", hamming_classifier=2.0,
      evaluate_test=False)
  results = trainer.train(config, str(tmp_path / "run"), verbose=0)
  assert 0 < results["validation_mAP"] <= 1
  model = model_lib.load_model(str(tmp_path / "run" / "model.keras"))
  layer = model.get_layer("logits")
  assert isinstance(layer, heads.HammingClassifier) and layer.scale == 2.0
  assert tuple(layer.class_logits.shape) == (10, 6)


def test_straight_through_is_the_code_forward_and_identity_backward():
  u = tf.constant([[0.2, 0.5, 0.7, 0.49], [1.0, 0.0, 0.51, 0.5]])
  weights = tf.constant([[1.0, -2.0, 3.0, 0.5]])
  with tf.GradientTape() as tape:
    tape.watch(u)
    binary = heads.StraightThrough()(u)
    loss = tf.reduce_sum(binary * weights)
  np.testing.assert_array_equal(binary.numpy(), (u.numpy() >= 0.5) * 1.0)
  np.testing.assert_array_equal(tape.gradient(loss, u).numpy(),
                                np.repeat(weights.numpy(), 2, axis=0))


def _classifier_model(classifier_reads, seed):
  """A 6-bit, 3-class small_cnn model whose classifier reads
  `classifier_reads`, 5 random images [5, 16, 16, 1], and the classifier's
  (kernel, bias)."""
  model = model_lib.build_model(backbone="small_cnn", bits=6, num_classes=3,
                                image_shape=(16, 16, 1),
                                classifier_reads=classifier_reads)
  images = np.random.default_rng(seed).uniform(
      0, 255, (5, 16, 16, 1)).astype("float32")
  dense = model.get_layer("logits")
  return model, images, tuple(keras.ops.convert_to_numpy(w)
                              for w in dense.weights)


def test_a_classifier_reading_codes_scores_the_binary_codes():
  model, images, (kernel, bias) = _classifier_model("codes", seed=2)
  outputs = model.predict(images, verbose=0)
  np.testing.assert_allclose(
      outputs["logits"], (outputs["hash"] >= 0.5) @ kernel + bias, atol=1e-5)


def test_a_classifier_reading_features_leaves_the_hash_layer_to_the_loss():
  model, images, (kernel, bias) = _classifier_model("features", seed=3)
  features = keras.Model(model.inputs,
                         model.get_layer("hash").input)(images)
  assert kernel.shape == (features.shape[-1], 3)
  np.testing.assert_allclose(model(images)["logits"],
                             np.asarray(features) @ kernel + bias, atol=1e-4)
  hash_layer = model.get_layer("hash")
  with tf.GradientTape(persistent=True) as tape:
    logits = model(images)["logits"]
    loss = keras.losses.sparse_categorical_crossentropy(
        tf.constant([0, 1, 2, 0, 1]), logits, from_logits=True)
  hash_grads = tape.gradient(loss, hash_layer.trainable_weights)
  assert all(g is None for g in hash_grads)
  backbone_grads = tape.gradient(
      loss, model.get_layer("backbone").trainable_weights)
  assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0
             for g in backbone_grads)
