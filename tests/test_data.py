"""IDX reading, hashing splits, the embedded dataset and the registry."""

import gzip
import os
import time

import numpy as np
import pytest

from dhe_tf.core import downloads
from dhe_tf.data import datasets
from dhe_tf.data import idx_files
from dhe_tf.data import splits
from dhe_tf.core.errors import ConfigError
from dhe_tf.core.errors import DataUnavailableError


def _idx_bytes(array):
  header = bytes([0, 0, 0x08, array.ndim])
  header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def _write_mnist_dir(directory, train=6, test=4, compress=True):
  rng = np.random.default_rng(0)
  arrays = {}
  for part, n in (("train", train), ("t10k", test)):
    arrays[part] = (rng.integers(0, 256, (n, 5, 4)), rng.integers(0, 10, n))
    for kind, array in zip(("images-idx3", "labels-idx1"), arrays[part]):
      name = f"{part}-{kind}-ubyte" + (".gz" if compress else "")
      opener = gzip.open if compress else open
      with opener(os.path.join(directory, name), "wb") as f:
        f.write(_idx_bytes(array))
  return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_idx_directory_is_train_then_test(tmp_path, compress):
  arrays = _write_mnist_dir(tmp_path, compress=compress)
  images, labels = idx_files.load_idx_directory(str(tmp_path))
  assert images.shape == (10, 5, 4, 1) and images.dtype == np.uint8
  np.testing.assert_array_equal(images[:6, ..., 0], arrays["train"][0])
  np.testing.assert_array_equal(images[6:, ..., 0], arrays["t10k"][0])
  np.testing.assert_array_equal(
      labels, np.concatenate([arrays["train"][1], arrays["t10k"][1]]))


def test_truncated_idx_file_is_named(tmp_path):
  path = os.path.join(tmp_path, "x-ubyte")
  with open(path, "wb") as f:
    f.write(_idx_bytes(np.zeros((3, 2, 2)))[:-1])
  with pytest.raises(ValueError, match="x-ubyte is truncated"):
    idx_files.read_idx(path)


def test_non_idx_file_is_named(tmp_path):
  path = os.path.join(tmp_path, "y-ubyte")
  with open(path, "wb") as f:
    f.write(b"\x89PNG....")
  with pytest.raises(ValueError, match="y-ubyte is not an IDX file"):
    idx_files.read_idx(path)


def test_missing_idx_file_names_the_directory(tmp_path):
  with pytest.raises(FileNotFoundError, match="train-images-idx3"):
    idx_files.load_idx_directory(str(tmp_path))


def test_split_sizes_disjointness_and_database():
  class_ids = np.repeat(np.arange(3), 20)
  split = splits.split_per_class(class_ids, queries_per_class=2,
                                 train_per_class=5, seed=3)
  for part, per_class in (("query", 2), ("train", 5)):
    np.testing.assert_array_equal(np.bincount(class_ids[split[part]]),
                                  [per_class] * 3)
  assert not set(split["query"]) & set(split["train"])
  np.testing.assert_array_equal(
      split["database"], np.setdiff1d(np.arange(60), split["query"]))
  assert set(split["train"]) <= set(split["database"])


def test_split_is_deterministic_for_a_seed_and_differs_across_seeds():
  class_ids = np.repeat(np.arange(4), 50)
  draw = lambda seed: splits.split_per_class(
      class_ids, queries_per_class=3, train_per_class=10, seed=seed)
  np.testing.assert_array_equal(draw(7)["query"], draw(7)["query"])
  assert not np.array_equal(draw(7)["query"], draw(8)["query"])


def test_split_needing_too_many_images_is_named():
  with pytest.raises(ConfigError, match="Class 1 has 2 images"):
    splits.split_per_class([0, 0, 0, 1, 1], queries_per_class=1,
                           train_per_class=2, seed=0)


def _multi_hot(num_images, num_concepts, seed=0):
  """Random labels, every image with 1-3 concepts, concept c rarer with c."""
  rng = np.random.default_rng(seed)
  weights = 1.0 / np.arange(1, num_concepts + 1)
  labels = np.zeros((num_images, num_concepts), bool)
  for row in labels:
    row[rng.choice(num_concepts, rng.integers(1, 4), replace=False,
                   p=weights / weights.sum())] = True
  return labels


def test_per_concept_split_sizes_disjointness_and_coverage():
  labels = _multi_hot(3000, 6)
  split = splits.split_per_concept(labels, queries_per_class=20,
                                   train_per_class=50, seed=0)
  assert len(split["query"]) == 120 and len(set(split["query"])) == 120
  assert len(split["train"]) == 300 and len(set(split["train"])) == 300
  assert not set(split["query"]) & set(split["train"])
  assert np.all(labels[split["query"]].sum(0) >= 20)
  assert np.all(labels[split["train"]].sum(0) >= 50)
  np.testing.assert_array_equal(
      split["database"], np.setdiff1d(np.arange(3000), split["query"]))


def test_per_concept_split_is_seeded_and_can_cap_the_database():
  labels = _multi_hot(1000, 4)
  draw = lambda seed, **kw: splits.split_per_concept(
      labels, queries_per_class=5, train_per_class=10, seed=seed, **kw)
  np.testing.assert_array_equal(draw(3)["train"], draw(3)["train"])
  assert not np.array_equal(draw(3)["query"], draw(4)["query"])
  capped = draw(3, database_size=100)["database"]
  assert len(capped) == 100 and not set(capped) & set(draw(3)["query"])


def test_per_concept_split_names_a_starved_concept():
  labels = np.zeros((30, 2), bool)
  labels[:, 0] = True
  labels[:4, 1] = True
  with pytest.raises(ConfigError, match="Concept 1 has 4 images left for "
                     "query"):
    splits.split_per_concept(labels, queries_per_class=5, train_per_class=1,
                             seed=0)


def test_official_split_queries_test_set_against_training_set():
  split = splits.split_official(5, 8)
  np.testing.assert_array_equal(split["query"], [5, 6, 7])
  np.testing.assert_array_equal(split["train"], np.arange(5))
  np.testing.assert_array_equal(split["database"], np.arange(5))


def test_embedded_dataset_follows_the_1k5k_protocol():
  data = datasets.load_dataset("embedded")
  assert data.num_classes == 10 and not data.multi_label
  assert data.image_shape == (28, 28, 1) and data.topk is None
  sizes = {part: len(indices) for part, indices in data.split.items()}
  assert sizes == {"query": 1000, "train": 5000, "database": 9000}
  image, label = next(iter(data.parts["query"]))
  assert image.dtype.name == "uint8" and tuple(image.shape) == (28, 28, 1)
  assert label.numpy().sum() == 1.0 and label.shape == (10,)
  _, class_ids = datasets.load_embedded_arrays()
  np.testing.assert_array_equal(np.bincount(class_ids), [1000] * 10)


def test_mnist_like_dataset_reads_idx_data_dir(tmp_path):
  rng = np.random.default_rng(0)
  for part, per_class in (("train", 55), ("t10k", 6)):
    class_ids = np.tile(np.arange(10), per_class)
    images = rng.integers(0, 256, (len(class_ids), 4, 4))
    for kind, array in (("images-idx3", images), ("labels-idx1", class_ids)):
      with open(os.path.join(tmp_path, f"{part}-{kind}-ubyte"), "wb") as f:
        f.write(_idx_bytes(array))
  data = datasets.load_dataset("fashion_mnist", protocol="tiny",
                               data_dir=str(tmp_path))
  assert {p: len(i) for p, i in data.split.items()} == {
      "query": 100, "train": 500, "database": 510}
  assert data.topk is None and data.image_shape == (4, 4, 1)


def test_unknown_dataset_and_protocol_list_the_choices():
  with pytest.raises(ConfigError, match="Available: cifar10, embedded"):
    datasets.load_dataset("imagenet")
  with pytest.raises(ConfigError, match="Unknown protocol 'x'"):
    datasets.load_dataset("embedded", protocol="x")


@pytest.mark.skipif(downloads.host_reachable("www.cs.toronto.edu"),
                    reason="online: CIFAR-10 would be downloaded")
def test_unreachable_cifar10_fails_in_seconds_naming_data_dir(tmp_path):
  start = time.monotonic()
  with pytest.raises(DataUnavailableError, match="--data_dir=DIR"):
    datasets.load_dataset("cifar10", data_dir=str(tmp_path))
  assert time.monotonic() - start < 30
