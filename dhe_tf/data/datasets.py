"""The dataset registry: every dataset as train / query / database pipelines.

A `HashingDataset` is what the trainer and the evaluator consume: three
unbatched `tf.data.Dataset`s of `(image, label)` (image uint8 [H, W, C], label
float32 [C], one-hot for single-label data and multi-hot for multi-label data),
the indices that define the split, and the metadata evaluation needs.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from dhe_tf.data import idx
from dhe_tf.data import splits
from dhe_tf.data import tfds_source
from dhe_tf.errors import ConfigError

EMBEDDED_PATH = os.path.join(os.path.dirname(__file__), "fashion_mnist_1k.npz")

FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat",
                         "sandal", "shirt", "sneaker", "bag", "ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                   "frog", "horse", "ship", "truck")
MNIST_CLASSES = tuple(str(d) for d in range(10))

# Protocols of single-label datasets: per-class counts of queries and training
# images drawn from all images; the database is every image but the queries.
# `topk=None` means mAP over the whole database (mAP@ALL).
PROTOCOLS = {
    "1k5k": dict(queries_per_class=100, train_per_class=500, topk=None),
    # A tenth of 1k5k, for smoke tests and trial runs on a CPU.
    "tiny": dict(queries_per_class=10, train_per_class=50, topk=None),
}


@dataclasses.dataclass(frozen=True)
class HashingDataset:
  """One dataset under one protocol.

  Attributes:
    name: registry name, e.g. "embedded".
    parts: "train", "query", "database" -> unbatched tf.data.Dataset of
      (image uint8 [H, W, C], label float32 [C]).
    split: part name -> int64 indices into the source images; written into
      the run directory so a run can be reproduced by another tool.
    class_names: one name per label column.
    multi_label: whether an image may carry several labels.
    topk: default k of mAP@k; None means the whole database.
    image_shape: (H, W, C) of every image.
  """
  name: str
  parts: dict
  split: dict
  class_names: tuple
  multi_label: bool
  topk: int | None
  image_shape: tuple

  @property
  def num_classes(self):
    return len(self.class_names)


def from_arrays(name, images, class_ids, class_names, *, protocol, split_seed):
  """Builds a single-label HashingDataset from in-memory arrays.

  Args:
    name: the dataset's registry name.
    images: uint8 [N, H, W, C].
    class_ids: int [N].
    class_names: names of the classes, indexed by class id.
    protocol: a key of PROTOCOLS.
    split_seed: seed of the split draw.
  """
  if protocol not in PROTOCOLS:
    raise ConfigError(f"Unknown protocol {protocol!r} for dataset {name!r}. "
                      f"Available: {', '.join(sorted(PROTOCOLS))}")
  settings = dict(PROTOCOLS[protocol])
  topk = settings.pop("topk")
  split = splits.split_per_class(class_ids, seed=split_seed, **settings)
  one_hot = np.eye(len(class_names), dtype=np.float32)[class_ids]
  parts = {
      part: tf.data.Dataset.from_tensor_slices((images[indices],
                                                one_hot[indices]))
      for part, indices in split.items()
  }
  return HashingDataset(name=name, parts=parts, split=split,
                        class_names=tuple(class_names), multi_label=False,
                        topk=topk, image_shape=tuple(images.shape[1:]))


def load_embedded_arrays():
  """Returns (images uint8 [10000, 28, 28, 1], class ids int64 [10000]).

  The embedded sample: 1,000 Fashion-MNIST images of each class, shipped
  inside the package so that training works offline (MIT licence, see
  fashion_mnist_1k.LICENSE). Built by tools/build_embedded_dataset.py.
  """
  with np.load(EMBEDDED_PATH) as data:
    return data["images"], data["labels"].astype(np.int64)


def _embedded(*, protocol, split_seed, data_dir):
  del data_dir  # The embedded sample ships with the package.
  images, class_ids = load_embedded_arrays()
  return from_arrays("embedded", images, class_ids, FASHION_MNIST_CLASSES,
                     protocol=protocol, split_seed=split_seed)


def _mnist_like(name, class_names):
  def load(*, protocol, split_seed, data_dir):
    if data_dir and idx.has_idx_files(data_dir):
      images, class_ids = idx.load_idx_directory(data_dir)
    else:
      images, class_ids = tfds_source.load_all(name, data_dir=data_dir)
    return from_arrays(name, images, class_ids, class_names,
                       protocol=protocol, split_seed=split_seed)
  return load


def _cifar10(*, protocol, split_seed, data_dir):
  images, class_ids = tfds_source.load_all("cifar10", data_dir=data_dir)
  return from_arrays("cifar10", images, class_ids, CIFAR10_CLASSES,
                     protocol=protocol, split_seed=split_seed)


DATASETS = {
    "embedded": _embedded,
    "fashion_mnist": _mnist_like("fashion_mnist", FASHION_MNIST_CLASSES),
    "mnist": _mnist_like("mnist", MNIST_CLASSES),
    "cifar10": _cifar10,
}


def check_name(name):
  """Raises ConfigError unless `name` is a registered dataset."""
  if name not in DATASETS:
    raise ConfigError(f"Unknown dataset {name!r}. "
                      f"Available: {', '.join(sorted(DATASETS))}")


def load_dataset(name, *, protocol="1k5k", split_seed=0, data_dir=None):
  """Returns the HashingDataset `name` under `protocol`.

  Args:
    name: a key of DATASETS.
    protocol: split protocol, a key of PROTOCOLS.
    split_seed: seed of the split; fixed by default so runs are comparable.
    data_dir: where the dataset's files are (IDX files for MNIST-like data,
      a tensorflow-datasets directory otherwise); ignored by "embedded".
  """
  check_name(name)
  return DATASETS[name](protocol=protocol, split_seed=split_seed,
                        data_dir=data_dir)
