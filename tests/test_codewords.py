"""Class codewords: Hadamard constructions, distances, balance, seeds."""

import itertools

import numpy as np
import pytest

from dhe_tf.core import codewords


def _distances(words):
  # Brute force: count differing signs of every pair of rows.
  return np.array([[int(np.sum(a != b)) for b in words] for a in words])


def test_hadamard_centres_are_half_the_bits_apart():
  centers = codewords.hash_centers(10, 16)
  distances = (16 - centers @ centers.T) / 2
  np.testing.assert_array_equal(np.diag(distances), 0)
  off = distances[~np.eye(10, dtype=bool)]
  assert off.min() == 8 and set(np.unique(off)) <= {8, 16}


def test_random_centres_are_balanced_distinct_and_seeded():
  centers = codewords.hash_centers(10, 12, seed=3)
  assert centers.shape == (10, 12)
  np.testing.assert_array_equal((centers > 0).sum(1), 6)
  distances = (12 - centers @ centers.T) / 2
  assert distances[~np.eye(10, dtype=bool)].min() >= 2
  np.testing.assert_array_equal(centers, codewords.hash_centers(10, 12, 3))



@pytest.mark.parametrize("order", [1, 2, 4, 8, 12, 20, 24, 40, 44, 48, 96])
def test_hadamard_matrix_is_hadamard_and_normalised(order):
  h = codewords.hadamard_matrix(order)
  np.testing.assert_array_equal(h @ h.T, order * np.eye(order))
  assert set(np.unique(h)) <= {-1.0, 1.0}
  assert (h[0] == 1).all() and (h[:, 0] == 1).all()


@pytest.mark.parametrize("order", [3, 6, 10, 28, 36, 52])
def test_hadamard_matrix_is_none_where_no_construction_applies(order):
  assert codewords.hadamard_matrix(order) is None


@pytest.mark.parametrize("bits", [12, 20, 24, 48])
def test_max_distance_codewords_are_half_the_bits_apart(bits):
  words = codewords.max_distance_codewords(10, bits)
  distances = _distances(words)
  off = distances[~np.eye(10, dtype=bool)]
  assert off.min() == off.max() == bits // 2
  assert codewords.minimum_distance(words) == bits // 2
  np.testing.assert_array_equal((words > 0).sum(1), bits // 2)


def test_max_distance_codewords_beat_random_centres_at_12_bits():
  # 6 is the optimum for 10 words of 12 bits: A(12, 7) = 4 < 10.
  assert codewords.minimum_distance(codewords.max_distance_codewords(10, 12)) == 6
  assert codewords.minimum_distance(codewords.hash_centers(10, 12)) < 6


def test_max_distance_codewords_balance_every_bit_and_follow_the_seed():
  words = codewords.max_distance_codewords(10, 12, seed=1)
  # No bit is the same for all classes, and none splits them worse than 7/3.
  assert np.abs(words.sum(0)).max() <= 4
  np.testing.assert_array_equal(
      words, codewords.max_distance_codewords(10, 12, seed=1))
  assert not np.array_equal(words, codewords.max_distance_codewords(10, 12, 2))


def test_max_distance_codewords_fall_back_to_random_centres():
  # No Hadamard matrix of order 10: the best of seeded balanced draws.
  words = codewords.max_distance_codewords(10, 10, seed=0, tries=50)
  assert words.shape == (10, 10)
  np.testing.assert_array_equal((words > 0).sum(1), 5)
  best_of_20 = codewords.minimum_distance(codewords.hash_centers(10, 10, 0))
  assert codewords.minimum_distance(words) >= best_of_20


def test_minimum_distance_matches_brute_force():
  rng = np.random.default_rng(0)
  for _ in range(5):
    words = rng.choice([-1.0, 1.0], size=(6, 9)).astype(np.float32)
    expected = min(int(np.sum(a != b))
                   for a, b in itertools.combinations(words, 2))
    assert codewords.minimum_distance(words) == expected
