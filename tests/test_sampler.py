"""Class-balanced training batches: --sampler=balanced --classes_per_batch=P."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.runs import config as config_lib
from dhe_tf.runs import run_dir
from dhe_tf.training import trainer
from dhe_tf.data import datasets
from dhe_tf.data import pipeline
from dhe_tf.core.errors import ConfigError

# 100 images of 6 classes, unevenly: class 4 is absent, class 2 has 5.
_COUNTS = (10, 20, 5, 30, 0, 35)


def _dataset(counts=_COUNTS):
  """(image k filled with k, one-hot label of its class), and class ids."""
  class_ids = np.repeat(np.arange(len(counts)), counts)
  class_ids = np.random.default_rng(0).permutation(class_ids)
  images = np.broadcast_to(np.arange(len(class_ids), dtype=np.uint8)[
      :, None, None, None], (len(class_ids), 4, 4, 1)).copy()
  labels = np.eye(len(counts), dtype=np.float32)[class_ids]
  return tf.data.Dataset.from_tensor_slices((images, labels)), class_ids


def _epochs(batches, epochs=2):
  """[epoch][batch] -> (image ids [B], class ids [B])."""
  return [[(x.numpy()[:, 0, 0, 0].astype(int), np.argmax(y.numpy(), 1))
           for x, y in batches] for _ in range(epochs)]


def _balanced(seed=0, **kwargs):
  dataset, class_ids = _dataset()
  kwargs = dict(dict(batch_size=12, classes_per_batch=3), **kwargs)
  return pipeline.batches(dataset, training=True, seed=seed,
                          sampler="balanced", **kwargs), class_ids


def test_every_batch_is_p_classes_of_m_images_for_an_epoch_of_n_over_b():
  batches, class_ids = _balanced()
  assert batches.cardinality().numpy() == 100 // 12
  seen = set()
  for epoch in _epochs(batches):
    assert len(epoch) == 100 // 12
    for images, classes in epoch:
      np.testing.assert_array_equal(class_ids[images], classes)
      found, count = np.unique(classes, return_counts=True)
      assert len(found) == 3 and list(count) == [4, 4, 4]
      seen |= set(found)
  assert seen == {0, 1, 2, 3, 5}  # Class 4 has no image and is never drawn.


def test_sampling_is_seeded_and_new_every_epoch():
  first, _ = _balanced(seed=5)
  again, _ = _balanced(seed=5)
  other, _ = _balanced(seed=6)
  runs = [_epochs(b) for b in (first, again, other)]
  flat = lambda run, e: np.concatenate([i for i, _ in run[e]])
  np.testing.assert_array_equal(flat(runs[0], 0), flat(runs[1], 0))
  np.testing.assert_array_equal(flat(runs[0], 1), flat(runs[1], 1))
  assert not np.array_equal(flat(runs[0], 0), flat(runs[2], 0))
  assert not np.array_equal(flat(runs[0], 0), flat(runs[0], 1))


def test_augmentation_applies_after_sampling():
  plain, _ = _balanced(seed=3)
  augmented, _ = _balanced(seed=3, augment="shift_flip")
  (x0, y0), (x1, y1) = next(iter(plain)), next(iter(augmented))
  np.testing.assert_array_equal(y0, y1)  # Same draw of images.
  assert x1.shape == x0.shape and not np.array_equal(x0, x1)
  # A shift fills zeros into the constant images.
  assert np.any(x1.numpy() == 0) and np.all(np.isin(x1, np.concatenate(
      [[0], x0.numpy().ravel()])))


@pytest.mark.parametrize("kwargs,message", [
    (dict(classes_per_batch=1), "needs 2 ≤ classes_per_batch"),
    (dict(classes_per_batch=6, batch_size=12), "≤ the 5 classes"),
    (dict(classes_per_batch=5, batch_size=12), "batch_size must be divisible"),
])
def test_impossible_p_is_refused(kwargs, message):
  with pytest.raises(ConfigError, match=message):
    _balanced(**kwargs)


@pytest.mark.parametrize("batch_size,num_classes,p", [
    (128, 10, 8), (128, 7, 4), (12, 5, 4), (12, 12, 6), (30, 10, 10),
    (4, 10, 2)])
def test_default_p_is_the_most_classes_in_equal_shares(batch_size,
                                                       num_classes, p):
  assert pipeline.default_classes_per_batch(batch_size, num_classes) == p
  assert batch_size % p == 0 and batch_size // p >= 2


@pytest.mark.parametrize("batch_size,num_classes", [(128, 1), (9, 2), (2, 5)])
def test_no_default_p_is_refused_with_what_to_set(batch_size, num_classes):
  with pytest.raises(ConfigError, match="set --classes_per_batch"):
    pipeline.default_classes_per_batch(batch_size, num_classes)


def test_balanced_without_p_fills_batches_from_the_classes_present():
  batches, class_ids = _balanced(classes_per_batch=0)  # 5 classes present.
  for images, classes in _epochs(batches, epochs=1)[0]:
    np.testing.assert_array_equal(class_ids[images], classes)
    _, count = np.unique(classes, return_counts=True)
    assert list(count) == [3, 3, 3, 3]  # P = 4 of batch 12.


def test_config_checks_sampler_and_p():
  validate = lambda **kw: config_lib.validate(config_lib.TrainConfig(**kw))
  assert validate(sampler="balanced", classes_per_batch=4,
                  batch_size=128).classes_per_batch == 4
  with pytest.raises(ConfigError, match="Unknown sampler 'x'. Available: "
                     "shuffle, balanced"):
    validate(sampler="x")
  with pytest.raises(ConfigError, match="classes_per_batch applies to "
                     "--sampler=balanced only"):
    validate(classes_per_batch=4)
  # --sampler=balanced alone: P is chosen from the classes (8 of 10 here).
  assert validate(sampler="balanced").classes_per_batch == 0
  with pytest.raises(ConfigError, match="needs 2 ≤ classes_per_batch ≤ the "
                     "10 classes of the training images. Received: "
                     "batch_size=128, classes_per_batch=11"):
    validate(sampler="balanced", classes_per_batch=11)
  with pytest.raises(ConfigError, match="divisible"):
    validate(sampler="balanced", classes_per_batch=3, batch_size=128)
  with pytest.raises(ConfigError, match="≤ the 7 classes"):  # Seen ones.
    validate(sampler="balanced", classes_per_batch=8, batch_size=128,
             protocol="unseen")


def test_multi_label_data_is_refused():
  labels = np.zeros((8, 3), np.float32)
  labels[:, 0] = 1
  labels[0, 1] = 1
  dataset = tf.data.Dataset.from_tensor_slices(
      (np.zeros((8, 2, 2, 1), np.uint8), labels))
  with pytest.raises(ConfigError, match="single-label data; 1 training "
                     "images"):
    pipeline.batches(dataset, batch_size=4, training=True, seed=0,
                     sampler="balanced", classes_per_batch=2)


def test_trainer_refuses_multi_label_data_before_writing(tmp_path,
                                                         monkeypatch):
  data = datasets.load_dataset("embedded", protocol="tiny")
  monkeypatch.setattr(run_dir, "load_data", lambda config: dataclasses.replace(
      data, multi_label=True))
  model_dir = str(tmp_path / "run")
  config = config_lib.TrainConfig(protocol="tiny", sampler="balanced",
                                  classes_per_batch=5, batch_size=50)
  with pytest.raises(ConfigError, match="--sampler=balanced needs "
                     "single-label data; embedded is multi-label."):
    trainer.train(config, model_dir, verbose=0)
  assert not os.path.exists(model_dir)
