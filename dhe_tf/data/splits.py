"""Seeded, stratified hashing splits: queries, training images and database.

The deep hashing literature evaluates with three parts drawn from one pool of
labelled images: queries (never trained on), a training set, and a database
that queries are ranked against. The split is random, so it is drawn from a
fixed seed and its exact indices are written into every run directory.
"""

import numpy as np

from dhe_tf.core.errors import ConfigError


def _class_name(c, class_names):
  return f"Class {class_names[c]!r}" if class_names else f"Class {c}"


def split_per_class(class_ids, *, queries_per_class, train_per_class, seed,
                    database="rest", class_names=None):
  """Draws a stratified query / train / database split of single-label data.

  Args:
    class_ids: int [N], the class of each image.
    queries_per_class: queries drawn from each class.
    train_per_class: training images drawn from each class, disjoint from the
      queries.
    seed: seed of the draw; the same seed always gives the same split.
    database: "rest" for every image that is not a query (the training images
      included, as in the `1k5k` protocol of DeepHash-pytorch's "cifar10-1").
    class_names: names of the classes by id, for the error of a class too
      small; None to name them by id.

  Returns:
    dict with int64 index arrays "query", "train" and "database", each sorted.

  Raises:
    ConfigError: a class has fewer than queries_per_class + train_per_class
      images.
  """
  if database != "rest":
    raise ConfigError(f"Unknown database rule {database!r}. Available: rest")
  class_ids = np.asarray(class_ids)
  rng = np.random.default_rng(seed)
  query, train = [], []
  for c in np.unique(class_ids):
    members = np.flatnonzero(class_ids == c)
    needed = queries_per_class + train_per_class
    if len(members) < needed:
      raise ConfigError(
          f"{_class_name(c, class_names)} has {len(members)} images but the "
          f"split needs {needed} ({queries_per_class} queries + "
          f"{train_per_class} training).")
    drawn = rng.permutation(members)[:needed]
    query.append(drawn[:queries_per_class])
    train.append(drawn[queries_per_class:])
  query = np.sort(np.concatenate(query)).astype(np.int64)
  train = np.sort(np.concatenate(train)).astype(np.int64)
  rest = np.setdiff1d(np.arange(len(class_ids)), query).astype(np.int64)
  return {"query": query, "train": train, "database": rest}


def draw_classes(num_classes, count, *, seed):
  """`count` of the classes 0..num_classes-1, drawn with `seed`, sorted."""
  order = np.random.default_rng(seed).permutation(num_classes)
  return np.sort(order[:count]).astype(np.int64)


def split_unseen_classes(class_ids, *, seen_classes, queries_per_class,
                         train_per_class, seed, class_names=None):
  """Draws a split whose queries and database hold classes never trained on.

  Protocol of Sablayrolles et al., "How should we evaluate supervised
  hashing?", ICASSP 2017: a classifier cannot score well by classifying.

  Args:
    class_ids: int [N], the class of each image.
    seen_classes: the classes of the training images.
    queries_per_class: queries drawn from each other (unseen) class.
    train_per_class: training images drawn from each seen class.
    seed: seed of the draw.
    class_names: as in split_per_class.

  Returns:
    dict with int64 index arrays, each sorted: "train" (seen classes only),
    "query" and "database" (every unseen image that is not a query).

  Raises:
    ConfigError: a class has too few images for its draw.
  """
  class_ids = np.asarray(class_ids)
  rng = np.random.default_rng(seed)
  drawn = {"query": [], "train": []}
  for c in np.unique(class_ids):
    part, needed = (("train", train_per_class) if c in seen_classes
                    else ("query", queries_per_class))
    members = np.flatnonzero(class_ids == c)
    if len(members) < needed:
      raise ConfigError(f"{_class_name(c, class_names)} has {len(members)} "
                        f"images but the split needs {needed} ({part}).")
    drawn[part].append(rng.permutation(members)[:needed])
  query, train = (np.sort(np.concatenate(drawn[p] or [[]])).astype(np.int64)
                  for p in ("query", "train"))
  unseen = np.flatnonzero(~np.isin(class_ids, seen_classes))
  database = np.setdiff1d(unseen, query).astype(np.int64)
  return {"query": query, "train": train, "database": database}


def split_official(num_train, num_total):
  """The split of a dataset's own train/test partition (CIFAR-10 `10k50k`).

  Args:
    num_train: the first `num_train` images are the official training set;
      images `num_train..num_total-1` are the official test set.
    num_total: number of images.

  Returns:
    dict with int64 index arrays: "query" = the test images, "train" and
    "database" = the training images.
  """
  train = np.arange(num_train, dtype=np.int64)
  return {"query": np.arange(num_train, num_total, dtype=np.int64),
          "train": train, "database": train.copy()}


def split_per_concept(labels, *, queries_per_class, train_per_class, seed,
                      database_size=None, concept_names=None):
  """Draws a query / train / database split of multi-label data.

  Every image may carry several concepts, so drawing "100 per concept"
  independently would pick some images twice. Instead:

  1. Concepts are visited from the rarest to the most frequent (so that a
     rare concept is not starved by draws made for frequent ones).
  2. For each concept, `queries_per_class` queries are drawn uniformly among
     the images that carry the concept and are not drawn yet.
  3. Then, in the same order, `train_per_class` training images are drawn
     per concept among the images that carry it and are neither queries nor
     drawn for training yet.

  So there are exactly C × queries_per_class queries and C ×
  train_per_class training images, all distinct and disjoint, and every
  concept is carried by at least queries_per_class queries and
  train_per_class training images (more, through co-occurring concepts).

  Args:
    labels: 0/1 [N, C], the concepts of each image; every image should
      carry at least one concept.
    queries_per_class: queries drawn per concept.
    train_per_class: training images drawn per concept, disjoint from the
      queries.
    seed: seed of the draw.
    database_size: None for database = every image but the queries (the
      training images included); else a seeded sample of at most that many
      of those images, for trial runs.
    concept_names: names of the label columns, for error messages.

  Returns:
    dict with int64 index arrays "query", "train" and "database", each sorted.

  Raises:
    ConfigError: a concept has too few images left for its draw.
  """
  labels = np.asarray(labels).astype(bool)
  rng = np.random.default_rng(seed)
  taken = np.zeros(len(labels), dtype=bool)
  order = np.argsort(labels.sum(axis=0), kind="stable")
  drawn = {}
  for part, per_class in (("query", queries_per_class),
                          ("train", train_per_class)):
    chosen = []
    for c in order:
      candidates = np.flatnonzero(labels[:, c] & ~taken)
      if len(candidates) < per_class:
        name = repr(concept_names[c]) if concept_names is not None else c
        raise ConfigError(
            f"Concept {name} has {len(candidates)} images left for {part} but "
            f"the split needs {per_class} per concept ({queries_per_class} "
            f"queries + {train_per_class} training, drawn without "
            "repetition).")
      picked = rng.choice(candidates, per_class, replace=False)
      taken[picked] = True
      chosen.append(picked)
    drawn[part] = np.sort(np.concatenate(chosen)).astype(np.int64)
  rest = np.setdiff1d(np.arange(len(labels)), drawn["query"]).astype(np.int64)
  if database_size is not None and database_size < len(rest):
    rest = np.sort(rng.choice(rest, database_size, replace=False))
  return {"query": drawn["query"], "train": drawn["train"], "database": rest}
