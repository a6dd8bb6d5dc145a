"""Hashing protocols: how queries, training images and database are drawn.

A protocol names a split rule and the k of mAP@k that papers report with it
(docs/data.md, "Protocols"). Single-label datasets draw their split here, from the
class ids (`single_label_split`); NUS-WIDE's protocols are drawn once by
tools/prepare_nuswide.py into list files, which the loader then reads.
"""

import dataclasses

import numpy as np

from dhe_tf.data import splits
from dhe_tf.core.errors import ConfigError


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
    seen_fraction: None to train on every class; else training images come
      from floor(seen_fraction × C) "seen" classes only, and queries
      (queries_per_class per other class) and database from the others.
  """
  description: str
  topk: int | None
  queries_per_class: int | None = None
  train_per_class: int | None = None
  database_size: int | None = None
  seen_fraction: float | None = None


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
    # Sablayrolles et al., "How should we evaluate supervised hashing?",
    # ICASSP 2017: retrieval of classes never trained on.
    "unseen": Protocol(
        "500 training images per class of 75 % of the classes (seen, drawn "
        "with the split seed); 100 queries per other class; database = the "
        "other classes' images but the queries; mAP@ALL", topk=None,
        queries_per_class=100, train_per_class=500, seen_fraction=0.75),
    "unseen_tiny": Protocol(
        "a tenth of unseen: 50 training images per seen class, 10 queries "
        "per unseen class; mAP@ALL", topk=None, queries_per_class=10,
        train_per_class=50, seen_fraction=0.75),
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


# Protocols of the collections a user brings (class folders, list files):
# drawn from the data with --split_seed, the counts set on the command line
# (with_counts; 0 keeps these, the 1k5k rule).
COLLECTION_PROTOCOLS = {
    "per_class": Protocol(
        "--queries_per_class queries and --train_per_class training images "
        "per class (per label of multi-label data) drawn from all images "
        "(default 100 and 500, the 1k5k rule); database = all but the "
        "queries; mAP@ALL", topk=None, queries_per_class=100,
        train_per_class=500),
    "unseen": dataclasses.replace(
        PROTOCOLS["unseen"],
        description="--train_per_class training images per class of the "
        "seen classes (--seen_classes, by name or id; default: 75 % drawn "
        "with the split seed); --queries_per_class queries per other class; "
        "database = the other classes' images but the queries; mAP@ALL"),
}


def with_counts(settings, *, queries_per_class=0, train_per_class=0):
  """`settings` with the counts asked for on the command line (0: its own)."""
  return dataclasses.replace(
      settings,
      queries_per_class=queries_per_class or settings.queries_per_class,
      train_per_class=train_per_class or settings.train_per_class)


def _class_id(entry, class_names):
  """A class given as an id (int or digits) or, with class_names, a name."""
  if isinstance(entry, (int, np.integer)) or str(entry).isdigit():
    return int(entry)
  if class_names and entry in class_names:
    return list(class_names).index(entry)
  available = (f"Available: {', '.join(class_names)}" if class_names else
               "this dataset's classes are given by id")
  raise ConfigError(f"Unknown class {entry!r} in seen_classes. {available}")


def resolve_seen_classes(protocol, settings, seen_classes, *, num_classes,
                         split_seed, class_names=None):
  """The classes trained on under a protocol that holds classes out.

  Args:
    protocol: the protocol's name, for messages.
    settings: its Protocol; None when the dataset does not have it.
    seen_classes: the classes asked for; empty for a draw of
      floor(seen_fraction × num_classes) classes with split_seed.
    num_classes: the dataset's number of classes.
    split_seed: seed of the draw.
    class_names: the classes' names, so that seen_classes may name them.

  Returns:
    sorted tuple of int (class ids); () under a protocol that trains on every class.

  Raises:
    ConfigError: seen_classes under another protocol, or a class out of
      range, repeated, or no seen or no unseen class left.
  """
  seen = tuple(_class_id(c, class_names) for c in seen_classes or ())
  received = f"Received: seen_classes={','.join(map(str, seen))}"
  if settings is None or settings.seen_fraction is None:
    if seen:
      holding_out = [n for n, p in PROTOCOLS.items() if p.seen_fraction]
      raise ConfigError(f"seen_classes applies to --protocol="
                        f"{' or '.join(holding_out)} only, not {protocol!r}. "
                        f"{received}")
    return ()
  if not seen:
    count = int(settings.seen_fraction * num_classes)
    return tuple(int(c) for c in splits.draw_classes(num_classes, count,
                                                     seed=split_seed))
  if not all(0 <= c < num_classes for c in seen) or len(set(seen)) != len(
      seen) or len(seen) >= num_classes:
    raise ConfigError(f"seen_classes must be distinct class ids in 0.."
                      f"{num_classes - 1}, leaving at least one class unseen."
                      f" {received}")
  return tuple(sorted(seen))


def single_label_split(dataset, protocol, class_ids, *, split_seed,
                       num_train=None, num_classes=None, seen_classes=(),
                       settings=None, class_names=None):
  """Draws the split of single-label images under `protocol`.

  Args:
    dataset: the dataset's name, for error messages.
    protocol: a key of PROTOCOLS.
    class_ids: int [N], the class of each image.
    split_seed: seed of the draw.
    num_train: the first `num_train` images are the official training set
      and the rest the test set; needed by protocol "10k50k".
    num_classes: the number of classes (default: the largest class id + 1).
    seen_classes: the classes trained on under protocol "unseen"; empty
      for a draw with split_seed (resolve_seen_classes).
    settings: the Protocol to draw with; None for PROTOCOLS[protocol].
    class_names: names of the classes by id, for errors (splits).

  Returns:
    dict with int64 index arrays "query", "train" and "database", and
    under "unseen" the "seen_classes".

  Raises:
    ConfigError: an unknown protocol, "10k50k" without num_train, or bad
      seen_classes.
  """
  if settings is None and protocol not in PROTOCOLS:
    raise ConfigError(f"Unknown protocol {protocol!r} for dataset "
                      f"{dataset!r}. Available: {', '.join(sorted(PROTOCOLS))}")
  settings = settings or PROTOCOLS[protocol]
  if num_classes is None:
    num_classes = int(np.max(class_ids)) + 1
  seen = resolve_seen_classes(protocol, settings, seen_classes,
                              num_classes=num_classes, split_seed=split_seed)
  if seen:
    split = splits.split_unseen_classes(
        class_ids, seen_classes=seen, seed=split_seed,
        queries_per_class=settings.queries_per_class,
        train_per_class=settings.train_per_class, class_names=class_names)
    return dict(split, seen_classes=np.array(seen, dtype=np.int64))
  if settings.queries_per_class is None:
    if num_train is None:
      raise ConfigError(f"Protocol {protocol!r} needs the official train/test "
                        f"partition, which dataset {dataset!r} does not have.")
    return splits.split_official(num_train, len(class_ids))
  return splits.split_per_class(
      class_ids, seed=split_seed, queries_per_class=settings.queries_per_class,
      train_per_class=settings.train_per_class, class_names=class_names)
