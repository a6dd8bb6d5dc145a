"""Hashing protocols: how queries, training images and database are drawn.

A protocol names a split rule and the k of mAP@k that papers report with it
(README, "Datasets"). Single-label datasets draw their split here, from the
class ids (`single_label_split`); NUS-WIDE's protocols are drawn once by
tools/prepare_nuswide.py into list files, which the loader then reads.
"""

import dataclasses

from dhe_tf.data import splits
from dhe_tf.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How queries, training images and database are drawn, and mAP@k.

  Attributes:
    description: one line for --help and error messages.
    topk: default k of mAP@k; None means the whole database (mAP@ALL).
    queries_per_class: queries drawn per class (per concept for multi-label
      data); None for the official train/test partition.
    train_per_class: training images drawn per class, disjoint from queries.
    database_size: None for database = every image but the queries; else at
      most that many of them, drawn (for trial runs).
  """
  description: str
  topk: int | None
  queries_per_class: int | None = None
  train_per_class: int | None = None
  database_size: int | None = None


# Protocols of single-label datasets.
PROTOCOLS = {
    "1k5k": Protocol(
        "100 queries and 500 training images per class drawn from all images"
        "; database = all but the queries; mAP@ALL (DeepHash-pytorch's "
        "cifar10-1)", topk=None, queries_per_class=100, train_per_class=500),
    "10k50k": Protocol(
        "the official test images are the queries, the official training "
        "images both the training set and the database; mAP@1000",
        topk=1000),
    # A tenth of 1k5k, for smoke tests and trial runs on a CPU.
    "tiny": Protocol("a tenth of 1k5k: 10 queries and 50 training images per "
                     "class; database = all but the queries; mAP@ALL",
                     topk=None, queries_per_class=10, train_per_class=50),
}

# Protocols of NUS-WIDE-21: tools/prepare_nuswide.py draws them into list
# files (splits.split_per_concept); the loader reads those lists.
NUSWIDE_PROTOCOLS = {
    "2k10k": Protocol(
        "100 queries and 500 training images per concept (2,100 and 10,500 "
        "distinct images); database = all but the queries; mAP@5000",
        topk=5000, queries_per_class=100, train_per_class=500),
    "tiny": Protocol(
        "10 queries and 50 training images per concept; database = 20,000 of "
        "the other images; mAP@500", topk=500, queries_per_class=10,
        train_per_class=50, database_size=20_000),
}


def single_label_split(dataset, protocol, class_ids, *, split_seed,
                       num_train=None):
  """Draws the split of single-label images under `protocol`.

  Args:
    dataset: the dataset's name, for error messages.
    protocol: a key of PROTOCOLS.
    class_ids: int [N], the class of each image.
    split_seed: seed of the draw.
    num_train: the first `num_train` images are the official training set
      and the rest the test set; needed by protocol "10k50k".

  Returns:
    dict with int64 index arrays "query", "train" and "database".

  Raises:
    ConfigError: an unknown protocol, or "10k50k" without num_train.
  """
  if protocol not in PROTOCOLS:
    raise ConfigError(f"Unknown protocol {protocol!r} for dataset "
                      f"{dataset!r}. Available: {', '.join(sorted(PROTOCOLS))}")
  settings = PROTOCOLS[protocol]
  if settings.queries_per_class is None:
    if num_train is None:
      raise ConfigError(f"Protocol {protocol!r} needs the official train/test "
                        f"partition, which dataset {dataset!r} does not have.")
    return splits.split_official(num_train, len(class_ids))
  return splits.split_per_class(
      class_ids, seed=split_seed, queries_per_class=settings.queries_per_class,
      train_per_class=settings.train_per_class)
