"""The Hamming embedding loss against its formula, on hand-made batches."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.training import callbacks
from dhe_tf.losses import hamming_embedding as losses
from dhe_tf.losses import pairs


def test_relaxed_distance_equals_hamming_distance_on_binary_codes():
  codes = np.random.default_rng(0).integers(0, 2, (20, 13)).astype("float32")
  exact = (codes[:, None, :] != codes[None, :, :]).sum(-1)
  relaxed = keras.ops.convert_to_numpy(pairs.relaxed_hamming_distance(codes))
  np.testing.assert_allclose(relaxed, exact, atol=1e-5)


def test_relaxed_distance_is_expected_number_of_differing_bits():
  # u = (0.5, 1) vs (0, 0): bit 0 differs w.p. 0.5, bit 1 always: 1.5.
  u = np.array([[0.5, 1.0], [0.0, 0.0]], "float32")
  d = keras.ops.convert_to_numpy(pairs.relaxed_hamming_distance(u))
  np.testing.assert_allclose(d, [[0.5, 1.5], [1.5, 0.0]], atol=1e-6)


@pytest.mark.parametrize("labels", [
    [0, 0, 1, 2],                                   # class ids
    [[0], [0], [1], [2]],                           # class ids [N, 1]
    np.eye(3, dtype="float32")[[0, 0, 1, 2]],       # one-hot
])
def test_similarity_of_single_labels(labels):
  s = keras.ops.convert_to_numpy(pairs.pairwise_similarity(labels))
  expected = [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
  np.testing.assert_array_equal(s, expected)


def test_similarity_of_multi_hot_labels_is_sharing_one_label():
  labels = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]], "float32")
  s = keras.ops.convert_to_numpy(pairs.pairwise_similarity(labels))
  np.testing.assert_array_equal(s, [[1, 1, 0], [1, 1, 0], [0, 0, 1]])


def test_loss_equals_formula_on_hand_made_batch():
  # K = 2 bits; images 0 and 1 share class 0, image 2 is class 1.
  u = np.array([[0.9, 0.2], [0.6, 0.2], [0.1, 0.7]], "float32")
  labels = [0, 0, 1]
  # d01 = .9*.4 + .1*.6 + .2*.8 + .8*.2 = 0.36 + 0.06 + 0.16 + 0.16 = 0.74
  # d02 = .9*.9 + .1*.1 + .2*.3 + .8*.7 = 0.81 + 0.01 + 0.06 + 0.56 = 1.44
  # d12 = .6*.9 + .4*.1 + .2*.3 + .8*.7 = 0.54 + 0.04 + 0.06 + 0.56 = 1.20
  pull = 0.74 / 2                                     # mean over S = {01, 10}
  push = (max(0, 0.8 - 1.44 / 2) + max(0, 0.8 - 1.20 / 2)) / 2   # 0.08, 0.2
  quantization = 4 * np.mean(u * (1 - u))
  expected = 2.0 * pull + 0.5 * push + 0.3 * quantization
  loss = losses.HammingEmbeddingLoss(margin=0.8, similar_weight=2.0,
                                     dissimilar_weight=0.5,
                                     quantization_weight=0.3)
  assert float(loss(labels, u)) == pytest.approx(expected, rel=1e-5)


def test_perfect_codes_have_zero_loss():
  labels = np.eye(2, dtype="float32")[[0, 0, 1]]
  codes = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]], "float32")
  assert float(losses.HammingEmbeddingLoss()(labels, codes)) == 0.0


def test_loss_decreases_when_similar_pair_moves_closer():
  labels = [0, 0, 1]
  far = np.array([[0.9, 0.9], [0.2, 0.3], [0.1, 0.5]], "float32")
  near = far.copy()
  near[1] = [0.7, 0.8]
  loss = losses.HammingEmbeddingLoss(quantization_weight=0.0)
  assert float(loss(labels, near)) < float(loss(labels, far))


def test_batch_without_similar_pairs_is_finite():
  u = np.array([[0.3, 0.6], [0.8, 0.1]], "float32")
  value = float(losses.HammingEmbeddingLoss()([0, 1], u))
  assert np.isfinite(value)


@pytest.mark.parametrize("value", [0.0, 1e-7, 1 - 1e-7, 1.0])
def test_gradients_are_finite_at_saturated_activations(value):
  u = tf.Variable(np.full((4, 6), value, "float32"))
  labels = tf.constant([0, 0, 1, 1])
  with tf.GradientTape() as tape:
    loss = losses.HammingEmbeddingLoss()(labels, u)
  gradient = tape.gradient(loss, u).numpy()
  assert np.all(np.isfinite(gradient))
  assert np.isfinite(float(loss))


def test_multi_hot_labels_pull_images_sharing_one_concept():
  labels = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 0]], "float32")
  u = np.array([[1, 0], [0, 1], [0, 1]], "float32")
  # Pairs sharing a concept: (0,1) at distance 2 of 2 bits → pull = 1.
  # Dissimilar: (0,2) at 2/2 → no push; (1,2) at 0 → push 0.5. Mean 0.25.
  loss = losses.HammingEmbeddingLoss(margin=0.5, similar_weight=1.0,
                                     quantization_weight=0.0)
  assert float(loss(labels, u)) == pytest.approx(1.0 + 0.25)


def test_config_round_trip():
  loss = losses.HammingEmbeddingLoss(margin=0.4, similar_weight=2.0,
                                     dissimilar_weight=3.0,
                                     quantization_weight=0.01, name="he")
  restored = losses.HammingEmbeddingLoss.from_config(loss.get_config())
  assert restored.get_config() == loss.get_config()
  serialized = keras.saving.serialize_keras_object(loss)
  again = keras.saving.deserialize_keras_object(serialized)
  assert isinstance(again, losses.HammingEmbeddingLoss)
  assert again.margin == 0.4 and again.quantization_weight == 0.01


def test_warmed_up_loss_grows_linearly_then_stays():
  inner = losses.HammingEmbeddingLoss()
  loss = losses.WarmedUpLoss(inner)
  warmup = callbacks.LossWarmup(loss, steps=4)
  labels = [0, 0, 1, 1]
  u = np.random.default_rng(1).uniform(0, 1, (4, 6)).astype("float32")
  full = float(inner(labels, u))
  seen = []
  for step in range(6):
    warmup.on_train_batch_begin(step)
    seen.append(float(loss(labels, u)))
  np.testing.assert_allclose(seen, np.array([0, .25, .5, .75, 1, 1]) * full,
                             rtol=1e-6)
  again = keras.losses.deserialize(keras.losses.serialize(loss))
  assert isinstance(again.loss, losses.HammingEmbeddingLoss)
  assert again.loss.get_config() == inner.get_config()


def test_squared_distance_is_hamming_on_binary_codes_and_zero_on_itself():
  codes = np.random.default_rng(2).integers(0, 2, (9, 11)).astype("float32")
  exact = (codes[:, None, :] != codes[None, :, :]).sum(-1)
  np.testing.assert_allclose(
      keras.ops.convert_to_numpy(pairs.squared_distance(codes)), exact,
      atol=1e-5)
  # Two undecided codes: expected distance K/2, squared distance 0.
  half = np.full((2, 4), 0.5, "float32")
  np.testing.assert_allclose(
      keras.ops.convert_to_numpy(pairs.relaxed_hamming_distance(half)),
      [[2, 2], [2, 2]], atol=1e-6)
  np.testing.assert_allclose(
      keras.ops.convert_to_numpy(pairs.squared_distance(half)), 0, atol=1e-6)


def test_loss_with_squared_distance_equals_formula():
  rng = np.random.default_rng(3)
  u = rng.uniform(0, 1, (6, 5)).astype("float32")
  ids = np.array([0, 1, 0, 2, 1, 0])
  s = (ids[:, None] == ids[None, :]) & ~np.eye(6, dtype=bool)
  d = ~np.eye(6, dtype=bool) & ~s
  dist = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1) / 5
  expected = (0.3 * dist[s].mean() + 0.7 * np.maximum(0.45 - dist[d], 0).mean()
              + 0.2 * (4 * u * (1 - u)).mean())
  loss = losses.HammingEmbeddingLoss(margin=0.45, similar_weight=0.3,
                                     dissimilar_weight=0.7,
                                     quantization_weight=0.2,
                                     distance="squared")
  assert float(loss(ids, u)) == pytest.approx(expected, rel=1e-5)
  again = losses.HammingEmbeddingLoss.from_config(loss.get_config())
  assert again.distance == "squared"
  with pytest.raises(ValueError, match="Unknown distance 'cosine'"):
    losses.HammingEmbeddingLoss(distance="cosine")


def _codeword_term_reference(labels, u, codewords, radius):
  # NumPy: the class-codeword term of HammingEmbeddingLoss, loop by loop.
  u, w = np.asarray(u, np.float64), np.asarray(codewords, np.float64)
  bits = u.shape[1]
  separation = min(np.sum(a != b) for i, a in enumerate(w)
                   for b in w[i + 1:]) / bits
  own, others = [], []
  for i in range(len(u)):
    e = np.abs(u[i][None, :] - w).sum(1) / bits
    mine = np.flatnonzero(labels[i])
    own.append(np.mean([max(0.0, e[c] - radius) for c in mine]))
    others += [max(0.0, separation - e[c]) for c in range(len(w))
               if c not in mine]
  return np.mean(own) + np.mean(others)


def _codeword_loss(weight=2.0, radius=0.0, classes=4, bits=12):
  # Only the codeword term: the pairwise and quantization terms off.
  return losses.HammingEmbeddingLoss(
      similar_weight=0.0, dissimilar_weight=0.0, quantization_weight=0.0,
      codeword_weight=weight, codeword_radius=radius, num_classes=classes,
      bits=bits)


@pytest.mark.parametrize("radius", [0.0, 0.1])
@pytest.mark.parametrize("multi", [False, True])
def test_codeword_term_equals_formula(radius, multi):
  rng = np.random.default_rng(1)
  u = rng.uniform(0, 1, (6, 12)).astype("float32")
  labels = np.eye(4, dtype="float32")[[0, 1, 1, 2, 3, 0]]
  if multi:
    labels[0, 2] = labels[3, 1] = 1.0
  loss = _codeword_loss(radius=radius)
  expected = 2.0 * _codeword_term_reference(labels, u, loss.codewords, radius)
  assert float(loss(labels, u)) == pytest.approx(expected, rel=1e-5)


def test_codeword_distance_is_zero_at_the_codeword_and_hamming_on_bits():
  w = np.array([[1, 0, 1, 1], [0, 0, 1, 0]], "float32")
  u = np.array([[1, 0, 1, 1], [0.5, 0.5, 0.5, 0.5], [0, 1, 0, 0]], "float32")
  d = keras.ops.convert_to_numpy(pairs.codeword_distance(u, w))
  np.testing.assert_allclose(d, [[0, 2], [2, 2], [4, 2]], atol=1e-6)


def test_images_at_their_codewords_have_zero_loss():
  # 10 classes in 12 bits: codewords 6 bits apart, the pairwise margin 0.5.
  loss = losses.HammingEmbeddingLoss(margin=0.5, codeword_weight=1.0,
                                     num_classes=10, bits=12)
  ids = [0, 3, 3, 7, 9, 1]
  assert float(loss(ids, loss.codewords[ids].astype("float32"))) == 0.0
  # One image moved 2 bits towards another class's codeword costs.
  moved = loss.codewords[ids].astype("float32")
  other = loss.codewords[5]
  flip = np.flatnonzero(moved[0] != other)[:2]
  moved[0, flip] = other[flip]
  assert float(loss(ids, moved)) > 0.0


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_codeword_term_gradients_are_finite(value):
  u = tf.Variable(np.full((4, 12), value, "float32"))
  with tf.GradientTape() as tape:
    loss = _codeword_loss()(tf.constant([0, 1, 2, 3]), u)
  assert np.all(np.isfinite(tape.gradient(loss, u).numpy()))


def test_codeword_term_needs_classes_and_bits_and_round_trips():
  with pytest.raises(ValueError, match="num_classes and bits"):
    losses.HammingEmbeddingLoss(codeword_weight=1.0)
  loss = _codeword_loss(radius=0.1)
  again = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(loss))
  assert again.get_config() == loss.get_config()
  np.testing.assert_array_equal(again.codewords, loss.codewords)


def test_softmax_codeword_term_equals_formula():
  rng = np.random.default_rng(2)
  u = rng.uniform(0, 1, (5, 12)).astype("float32")
  labels = np.eye(4, dtype="float32")[[0, 1, 2, 3, 0]]
  labels[1, 3] = 1.0  # Multi-hot: the target spreads over both labels.
  loss = losses.HammingEmbeddingLoss(
      similar_weight=0.0, dissimilar_weight=0.0, quantization_weight=0.0,
      codeword_weight=0.5, codeword_loss="softmax", codeword_scale=10.0,
      codeword_margin=0.2, num_classes=4, bits=12)
  w = loss.codewords.astype(np.float64)
  e = np.abs(u.astype(np.float64)[:, None, :] - w[None]).sum(-1) / 12
  logits = -10.0 * (e + 0.2 * labels)
  log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  t = labels / labels.sum(1, keepdims=True)
  expected = 0.5 * -(t * log_p).sum(1).mean()
  assert float(loss(labels, u)) == pytest.approx(expected, rel=1e-5)
  with pytest.raises(ValueError, match="Unknown codeword_loss 'arc'"):
    losses.HammingEmbeddingLoss(codeword_loss="arc")
