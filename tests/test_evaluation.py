"""Evaluation: metrics bundle, image lookup, validation hold-out, pictures."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.evaluation import evaluator
from dhe_tf.evaluation import plots
from dhe_tf.data import pipeline
from dhe_tf.core.errors import ConfigError


def test_retrieval_metrics_on_hand_made_codes():
  # K = 4. Query 0000 (class 0). Database distances: 0 (class 0), 4 (class 1),
  # 1 (class 0), 1 (class 1), 3 (class 0).
  query = np.array([[0, 0, 0, 0]])
  database = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1],
                       [0, 0, 1, 0], [1, 1, 1, 0]])
  results, (precision, recall) = evaluator.retrieval_metrics(
      query, np.array([0]), database, np.array([0, 1, 0, 1, 0]))
  # Ranking (ties by index): 0 ✓, 2 ✓, 3 ✗, 4 ✓, 1 ✗.
  # AP = (1/1 + 2/2 + 3/4) / 3.
  assert results["mAP"] == pytest.approx((1 + 1 + 0.75) / 3)
  assert results["topk"] == "all"
  # Within radius 2: items 0, 2, 3 → precision 2/3, recall 2/3.
  assert results["P@H<=2"] == pytest.approx(2 / 3)
  assert results["R@H<=2"] == pytest.approx(2 / 3)
  assert "P@100" not in results  # The database has only 5 items.
  np.testing.assert_allclose(precision, [1, 2 / 3, 2 / 3, 3 / 4, 3 / 5])
  np.testing.assert_allclose(recall, [1 / 3, 2 / 3, 2 / 3, 1, 1])


def test_images_at_keeps_the_requested_order_and_shape():
  images = np.arange(6 * 2 * 2, dtype=np.uint8).reshape(6, 2, 2, 1)
  dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros((6, 3))))
  picked = evaluator.images_at(dataset, np.array([[4, 1], [1, 5]]))
  assert picked.shape == (2, 2, 2, 2, 1)
  np.testing.assert_array_equal(picked[0, 0], images[4])
  np.testing.assert_array_equal(picked[1, 0], images[1])
  np.testing.assert_array_equal(picked[1, 1], images[5])


def test_hold_out_is_disjoint_seeded_and_sized():
  dataset = tf.data.Dataset.range(50).map(lambda i: (i, i))
  held, classes = pipeline.draw_validation(50, 0.2, seed=3)
  assert classes is None and len(held) == 10
  fit, validation = pipeline.hold_out(dataset, 50, held)
  fit_ids = [int(x) for x, _ in fit]
  validation_ids = [int(x) for x, _ in validation]
  assert len(validation_ids) == 10 and len(fit_ids) == 40
  assert sorted(fit_ids + validation_ids) == list(range(50))
  np.testing.assert_array_equal(validation_ids, held)
  again, _ = pipeline.draw_validation(50, 0.2, seed=3)
  np.testing.assert_array_equal(again, held)
  assert fit.cardinality() == 40 and validation.cardinality() == 10


def test_validation_by_classes_holds_out_whole_classes():
  class_ids = np.array([0, 1, 2, 3, 4, 5, 6] * 4)
  # 0.1 of 7 classes rounds to 1; a class retrieving only itself would
  # score 1, so at least 2 are held out.
  held, classes = pipeline.draw_validation(28, 0.1, seed=0,
                                           class_ids=class_ids)
  assert len(classes) == 2 and len(set(classes)) == 2
  np.testing.assert_array_equal(held, np.flatnonzero(
      np.isin(class_ids, classes)))
  held, classes = pipeline.draw_validation(28, 0.5, seed=0,
                                           class_ids=class_ids)
  assert len(classes) == 4 and len(held) == 16
  with pytest.raises(ConfigError, match="leaves none to fit"):
    pipeline.draw_validation(4, 0.1, seed=0, class_ids=np.array([0, 1, 0, 1]))
  with pytest.raises(ConfigError, match="--validation_by=classes needs "
                     "single-label data; 1 training"):
    pipeline.single_label_ids(np.array([[1.0, 0.0], [1.0, 1.0]]),
                              "--validation_by=classes")


def test_pictures_are_png_files(tmp_path):
  path = os.path.join(tmp_path, "curve.png")
  data = plots.pr_curve(np.array([1.0, 0.5]), np.array([0.2, 1.0]), path,
                        title="t")
  with open(path, "rb") as f:
    assert f.read() == data
  assert data[:8] == b"\x89PNG\r\n\x1a\n"
  grid = plots.retrievals(np.zeros((2, 8, 8, 1), np.uint8),
                          np.zeros((2, 3, 8, 8, 1), np.uint8),
                          np.array([[1, 0, 1], [0, 0, 1]], bool),
                          np.array([[0, 1, 2], [1, 1, 3]]), None, title="t")
  assert grid[:4] == b"\x89PNG"
  assert not glob.glob(os.path.join(tmp_path, "*.tmp"))
