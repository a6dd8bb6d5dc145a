"""CIFAR-10 through tensorflow-datasets, on tfds' mock data."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dhe_tf.core import downloads
from dhe_tf.data import datasets
from dhe_tf.core.errors import ConfigError

_PER_SPLIT = 700  # Mock examples per split: random images, random labels.


@pytest.fixture(scope="module")
def mock_cifar10(tmp_path_factory):
  # Mocked, the data is never "prepared", so the loader would check the
  # download host; mock_data makes the download itself a no-op.
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(downloads, "host_reachable", lambda *a, **k: True)
    with tfds.testing.mock_data(num_examples=_PER_SPLIT):
      yield str(tmp_path_factory.mktemp("tensorflow_datasets"))


def test_10k50k_queries_are_the_test_set_database_the_training_set(
    mock_cifar10):
  data = datasets.load_dataset("cifar10", protocol="10k50k",
                               data_dir=mock_cifar10)
  np.testing.assert_array_equal(data.split["query"],
                                np.arange(_PER_SPLIT, 2 * _PER_SPLIT))
  np.testing.assert_array_equal(data.split["train"], np.arange(_PER_SPLIT))
  np.testing.assert_array_equal(data.split["database"], data.split["train"])
  assert data.topk == 1000 and not data.multi_label
  assert data.image_shape == (32, 32, 3) and data.num_classes == 10
  image, label = next(iter(data.parts["query"]))
  assert image.dtype.name == "uint8" and tuple(image.shape) == (32, 32, 3)
  assert label.numpy().sum() == 1.0 and label.shape == (10,)


def test_tiny_draws_per_class_from_train_and_test(mock_cifar10):
  data = datasets.load_dataset("cifar10", protocol="tiny", split_seed=1,
                               data_dir=mock_cifar10)
  labels = {part: np.stack([y.numpy() for _, y in data.parts[part]])
            for part in ("query", "train")}
  np.testing.assert_array_equal(labels["query"].sum(0), [10] * 10)
  np.testing.assert_array_equal(labels["train"].sum(0), [50] * 10)
  assert not set(data.split["query"]) & set(data.split["train"])
  assert data.split["query"].max() >= _PER_SPLIT  # Test images drawn too.
  assert len(data.split["database"]) == 2 * _PER_SPLIT - 100
  assert data.topk is None


def test_10k50k_is_only_for_datasets_with_a_test_set():
  with pytest.raises(ConfigError, match="Available: 1k5k, tiny"):
    datasets.load_dataset("embedded", protocol="10k50k")
