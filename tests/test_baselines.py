"""Baseline hashing losses against their formulas, on hand-made batches."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.training import callbacks
from dhe_tf.losses import baselines
from dhe_tf.core import codewords as codewords_lib
from dhe_tf.losses import hamming_embedding as losses

_RNG = np.random.default_rng(0)
U = _RNG.uniform(0.02, 0.98, (6, 8)).astype("float32")
IDS = np.array([0, 0, 1, 2, 1, 0])
ONE_HOT = np.eye(3, dtype="float32")[IDS]
MULTI_HOT = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1],
                      [1, 0, 1]], "float32")


def _similarity(labels):
  labels = np.asarray(labels, np.float32)
  return (labels @ labels.T > 0.5).astype(np.float64)


def _pairs_mean(values, mask):
  return (values * mask).sum() / max(mask.sum(), 1.0)


def _off_diagonal(n):
  return 1.0 - np.eye(n)


def _softplus(x):
  return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _value(loss, labels, u=U):
  return float(loss(labels, u))


@pytest.mark.parametrize("labels", [ONE_HOT, MULTI_HOT])
def test_dpsh_equals_formula(labels):
  v = 2.0 * U.astype(np.float64) - 1.0
  s = _similarity(labels)
  pairs = _off_diagonal(len(v))
  theta = 0.5 * v @ v.T
  likelihood = _pairs_mean(_softplus(theta) - s * theta, pairs)
  quantization = np.mean((v - np.sign(v)) ** 2)
  expected = likelihood + 0.3 * quantization
  loss = baselines.DPSHLoss(quantization_weight=0.3)
  assert _value(loss, labels) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("labels", [ONE_HOT, MULTI_HOT])
def test_dsh_equals_formula(labels):
  v = 2.0 * U.astype(np.float64) - 1.0
  k = v.shape[1]
  s = _similarity(labels) * _off_diagonal(len(v))
  dissimilar = (1 - _similarity(labels)) * _off_diagonal(len(v))
  d = ((v[:, None, :] - v[None, :, :]) ** 2).sum(-1)
  pairs = 0.5 * s * d + 0.5 * dissimilar * np.maximum(1.5 * k - d, 0)
  contrastive = _pairs_mean(pairs, s + dissimilar)
  regularizer = np.abs(np.abs(v) - 1).sum(1).mean()
  expected = contrastive + 0.05 * regularizer
  loss = baselines.DSHLoss(margin=1.5, regularizer_weight=0.05)
  assert _value(loss, labels) == pytest.approx(expected, rel=1e-5)


def _hashnet_reference(labels, u, scale, beta):
  v = np.clip(2.0 * u.astype(np.float64) - 1.0, -1 + 1e-6, 1 - 1e-6)
  h = np.tanh(beta * np.arctanh(v))
  k = h.shape[1]
  s = _similarity(labels) * _off_diagonal(len(h))
  dissimilar = (1 - _similarity(labels)) * _off_diagonal(len(h))
  theta = scale / k * h @ h.T
  loss = _softplus(theta) - s * theta
  return _pairs_mean(loss, s) + _pairs_mean(loss, dissimilar)


@pytest.mark.parametrize("labels", [ONE_HOT, MULTI_HOT])
def test_hashnet_equals_formula_at_start_of_continuation(labels):
  # β = 1: the codes are exactly 2u − 1.
  loss = baselines.HashNetLoss(scale=10.0)
  expected = _hashnet_reference(labels, U, 10.0, 1.0)
  assert _value(loss, labels) == pytest.approx(expected, rel=1e-4)


def test_hashnet_continuation_sharpens_codes_with_steps():
  loss = baselines.HashNetLoss(scale=10.0, gamma=0.5, power=0.5)
  callback = callbacks.HashNetContinuation(loss)
  for batch in range(3):  # Steps 0, 1, 2 → β = (1 + 0.5·2)^0.5 before step 2.
    callback.on_train_batch_begin(batch)
  assert float(loss.beta) == pytest.approx(2.0 ** 0.5)
  expected = _hashnet_reference(ONE_HOT, U, 10.0, 2.0 ** 0.5)
  assert _value(loss, ONE_HOT) == pytest.approx(expected, rel=1e-4)


def _bce(p, t):
  p = np.clip(p, 1e-6, 1 - 1e-6)
  return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()


def test_csq_equals_formula_with_single_labels():
  loss = baselines.CSQLoss(num_classes=3, bits=8, quantization_weight=0.2)
  centers = codewords_lib.hash_centers(3, 8)
  targets = (centers[IDS] + 1) / 2
  v = 2.0 * U.astype(np.float64) - 1.0
  expected = _bce(U.astype(np.float64), targets) + 0.2 * np.mean(
      (np.abs(v) - 1) ** 2)
  assert _value(loss, ONE_HOT) == pytest.approx(expected, rel=1e-5)
  assert _value(loss, IDS) == pytest.approx(expected, rel=1e-5)


def test_csq_multi_hot_target_is_sign_of_summed_centres():
  loss = baselines.CSQLoss(num_classes=3, bits=8)
  total = MULTI_HOT @ loss.centers
  total = np.where(total == 0, loss.tie_center[None, :], total)
  np.testing.assert_array_equal(
      keras.ops.convert_to_numpy(loss.targets(MULTI_HOT)),
      (np.sign(total) + 1) / 2)
  # Two classes with Hadamard centres agree on half the bits: ties exist.
  assert (MULTI_HOT @ loss.centers == 0).any()


def test_csq_loss_vanishes_at_the_centres():
  loss = baselines.CSQLoss(num_classes=3, bits=8, quantization_weight=1.0)
  at_center = np.clip((loss.centers[IDS] + 1) / 2, 1e-6, 1 - 1e-6)
  assert _value(loss, ONE_HOT, at_center.astype("float32")) < 1e-4


def _orthohash_reference(labels, u, scale, margin, quantization_weight):
  y = np.asarray(labels, np.float64)
  p = np.clip(u.astype(np.float64), 1e-6, 1 - 1e-6)
  z = np.log(p) - np.log(1 - p)
  codewords = codewords_lib.hash_centers(y.shape[1], u.shape[1])

  def cosine(a, b):
    return (a @ b.T) / np.outer(np.linalg.norm(a, axis=1),
                                np.linalg.norm(b, axis=1))

  logits = scale * (cosine(z, codewords) - margin * y)
  log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  targets = y / y.sum(1, keepdims=True)
  cross_entropy = -(targets * log_softmax).sum(1).mean()
  quantization = np.mean(1 - np.diag(cosine(z, np.sign(z))))
  return cross_entropy + quantization_weight * quantization


@pytest.mark.parametrize("labels", [ONE_HOT, MULTI_HOT],
                         ids=["single", "multi"])
def test_orthohash_equals_formula(labels):
  loss = baselines.OrthoHashLoss(num_classes=3, bits=8, scale=6.0,
                                 margin=0.3, quantization_weight=0.5)
  assert _value(loss, labels) == pytest.approx(
      _orthohash_reference(labels, U, 6.0, 0.3, 0.5), rel=1e-5)
  if labels is ONE_HOT:
    assert _value(loss, IDS) == pytest.approx(_value(loss, ONE_HOT))


def _sigmoid(z):
  return (1 / (1 + np.exp(-z))).astype("float32")


def test_orthohash_margin_and_scale_act_on_the_cosines():
  loss = baselines.OrthoHashLoss
  codewords = codewords_lib.hash_centers(3, 8)
  # Codes pointing at their class's codeword (pre-activation ±2).
  at_codeword = _sigmoid(2.0 * codewords[IDS])
  values = {(s, m): _value(loss(3, 8, scale=s, margin=m), ONE_HOT,
                           at_codeword)
            for s in (4.0, 8.0, 16.0) for m in (0.0, 0.2, 0.4)}
  # cos = 1 to the own codeword, the margin lowers it: a larger loss.
  assert values[8.0, 0.0] < values[8.0, 0.2] < values[8.0, 0.4]
  # A larger scale sharpens a right answer's softmax.
  assert values[16.0, 0.2] < values[8.0, 0.2] < values[4.0, 0.2]
  # Only the direction of z counts: cosines ignore its length.
  assert _value(loss(3, 8), ONE_HOT, _sigmoid(5.0 * codewords[IDS])) == (
      pytest.approx(values[8.0, 0.2], rel=1e-4))
  # Codes at ±1 · c have no quantization error; the default weight is 0.
  assert _value(loss(3, 8, quantization_weight=1.0), ONE_HOT,
                at_codeword) == pytest.approx(values[8.0, 0.2], abs=1e-5)
  assert loss(3, 8).quantization_weight == 0.0


ALL_LOSSES = [
    losses.HammingEmbeddingLoss(),
    baselines.DPSHLoss(),
    baselines.DSHLoss(),
    baselines.HashNetLoss(),
    baselines.CSQLoss(num_classes=3, bits=8),
    baselines.OrthoHashLoss(num_classes=3, bits=8, quantization_weight=0.1),
]


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda l: l.name)
@pytest.mark.parametrize("u", [U, np.zeros_like(U), np.ones_like(U),
                               np.full_like(U, 0.5)],
                         ids=["inside", "zeros", "ones", "half"])
def test_gradients_are_finite_even_at_saturation(loss, u):
  u = tf.Variable(u)
  with tf.GradientTape() as tape:
    value = loss(MULTI_HOT, u)
  gradient = tape.gradient(value, u)
  assert np.isfinite(float(value))
  assert np.all(np.isfinite(gradient.numpy()))


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda l: l.name)
def test_config_round_trip_gives_the_same_loss(loss):
  again = keras.losses.deserialize(keras.losses.serialize(loss))
  assert type(again) is type(loss)
  assert again.get_config() == loss.get_config()
  assert float(again(ONE_HOT, U)) == pytest.approx(float(loss(ONE_HOT, U)))
