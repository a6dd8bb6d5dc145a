"""dhe_tf.evaluation.diagnostics: each number equals its definition on hand-made codes."""

import numpy as np
import pytest

from dhe_tf.evaluation import diagnostics


def test_every_diagnostic_equals_its_definition():
  # Database: 4 images × 3 bits; codes 110, 110, 001, 011.
  database = np.array([[0.99, 0.7, 0.2],
                       [0.6, 0.98, 0.01],
                       [0.3, 0.4, 0.97],
                       [0.1, 0.51, 0.5]], np.float32)
  database_labels = np.eye(2, dtype=np.float32)[[0, 0, 1, 1]]
  # Queries: codes 110 (class 0) and 011 (class 1).
  queries = np.array([[0.9, 0.9, 0.1], [0.1, 0.9, 0.9]], np.float32)
  query_labels = np.eye(2, dtype=np.float32)[[0, 1]]
  result = diagnostics.code_diagnostics(queries, query_labels, database,
                                        database_labels)
  # Saturated (within 0.05 of 0 or 1): 0.99, 0.98, 0.01, 0.97 of 12.
  assert result["saturated"] == pytest.approx(4 / 12)
  codes = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]])
  assert result["quantization_gap"] == pytest.approx(
      np.abs(database - codes).mean())
  # Bit means 0.5, 0.75, 0.5 → |·−½| = 0, ¼, 0.
  assert result["bit_imbalance"] == pytest.approx(0.25 / 3)
  assert result["distinct_codes"] == 3
  # Query 110: database distances 0, 0 (same class), 3, 2 (other).
  # Query 011: 2, 2 (other class), 1, 0 (same class).
  # Within 2 bits: query 110 gets 110, 110, 011 (2 of 3 relevant); query
  # 011 gets all four (2 of 4 relevant).
  assert result["precision_h2"] == pytest.approx((2 / 3 + 1 / 2) / 2)
  assert result["hamming_similar"] == pytest.approx((0 + 0 + 1 + 0) / 4)
  assert result["hamming_dissimilar"] == pytest.approx((3 + 2 + 2 + 2) / 4)
  # Majority codes: class 0 {110, 110} → 110; class 1 {001, 011} → 011
  # (bit 1 is set in half of them: ≥ ½ counts as 1). 2 bits apart.
  assert result["class_code_min_distance"] == 2
  assert result["class_code_mean_distance"] == 2
  # Distances to the majority code: 0, 0 (class 0), 1, 0 (class 1).
  assert result["within_class_spread"] == pytest.approx(1 / 4)


def test_class_codes_of_three_classes_and_multi_hot_labels():
  codes = np.array([[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]],
                   np.float32)
  # Image 3 carries classes 0 and 2.
  labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]], np.float32)
  result = diagnostics.code_diagnostics(codes, labels, codes, labels)
  # Class 0: {0000, 0001} → 0001; class 1: 1100; class 2: {1111, 0001} → 1111.
  # Distances: 0001–1100: 3, 0001–1111: 3, 1100–1111: 2.
  assert result["class_code_min_distance"] == 2
  assert result["class_code_mean_distance"] == pytest.approx(8 / 3)
  # (image, label) to majority: 1, 0 (class 0); 0 (class 1); 0, 3 (class 2).
  assert result["within_class_spread"] == pytest.approx(4 / 5)


def test_no_pair_of_a_kind_is_nan_not_an_error():
  u = np.array([[0.9, 0.1]], np.float32)
  labels = np.array([[1.0, 0.0]], np.float32)
  result = diagnostics.code_diagnostics(u, labels, u, labels)
  assert result["hamming_similar"] == 0
  assert np.isnan(result["hamming_dissimilar"])


def test_leave_one_out_compares_each_code_with_the_others_only():
  # Codes 00, 01, 00 of classes 0, 0, 1: the similar pairs (0, 1) and
  # (1, 0) are 1 bit apart, the dissimilar ones 0, 1, 1, 0 bits; counting
  # each code against itself would add three similar pairs at distance 0.
  u = np.array([[0.1, 0.2], [0.3, 0.9], [0.2, 0.1]], np.float32)
  labels = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
  result = diagnostics.code_diagnostics(u, labels, u, labels,
                                        exclude_self=True)
  assert result["hamming_similar"] == 1
  assert result["hamming_dissimilar"] == pytest.approx(2 / 4)
  # Within radius 2 every code retrieves both others: precision 1/2, 1/2, 0.
  assert result["precision_h2"] == pytest.approx(1 / 3)
  with_self = diagnostics.code_diagnostics(u, labels, u, labels)
  assert with_self["hamming_similar"] == pytest.approx(2 / 5)
