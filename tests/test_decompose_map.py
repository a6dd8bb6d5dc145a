"""tools/decompose_map.py: its decomposition against dhe_tf.evaluation.metrics."""


import numpy as np
import pytest

from dhe_tf.evaluation import metrics
import tool_modules

decompose_map = tool_modules.load("decompose_map")  # Defines no flags.


def _outputs(rng, count, bits=6, classes=3):
  labels = rng.integers(0, classes, count)
  logits = rng.normal(size=(count, classes)) + 2 * np.eye(classes)[labels]
  return rng.uniform(size=(count, bits)), logits, labels


def test_average_precision_by_hamming_distance_is_the_library_s():
  rng = np.random.default_rng(0)
  codes = rng.integers(0, 2, (50, 5))
  labels = rng.integers(0, 3, 50)
  for i in range(5):
    distance = (codes[i] != codes).sum(axis=1)
    assert decompose_map.average_precision_by_score(
        distance, labels == labels[i]) == pytest.approx(
            metrics.mean_average_precision(codes[i:i + 1], labels[i:i + 1],
                                           codes, labels), abs=1e-12)


def test_decomposition_adds_up_and_ties_by_l1_of_binary_codes_change_nothing():
  rng = np.random.default_rng(1)
  query, database = _outputs(rng, 30), _outputs(rng, 90)
  numbers = decompose_map.decompose(query, database)
  codes = [(u >= 0.5).astype(int) for u, _, _ in (query, database)]
  assert numbers["mAP"] == pytest.approx(metrics.mean_average_precision(
      codes[0], query[2], codes[1], database[2]), abs=1e-12)
  accuracy = numbers["query_accuracy"]
  assert accuracy == np.mean(query[1].argmax(axis=1) == query[2])
  assert numbers["mAP"] == pytest.approx(
      accuracy * numbers["mAP_right"] + (1 - accuracy) * numbers["mAP_wrong"],
      abs=1e-12)
  shares = [share for _, share, _ in numbers["distance_to_predicted_code"]]
  assert sum(shares) == pytest.approx(1)
  # Binary activations: the L1 distance is the Hamming distance, so breaking
  # ties by it changes no order.
  binary = decompose_map.decompose((codes[0].astype(float), *query[1:]),
                                   (codes[1].astype(float), *database[1:]))
  assert binary["mAP_ties_by_l1"] == pytest.approx(binary["mAP"], abs=1e-12)
  assert "| bits | share of the database | classifier right |" in (
      decompose_map.report(numbers))
