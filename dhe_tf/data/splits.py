"""Seeded, stratified hashing splits: queries, training images and database.

The deep hashing literature evaluates with three parts drawn from one pool of
labelled images: queries (never trained on), a training set, and a database
that queries are ranked against. The split is random, so it is drawn from a
fixed seed and its exact indices are written into every run directory.
"""

import numpy as np

from dhe_tf.errors import ConfigError


def split_per_class(class_ids, *, queries_per_class, train_per_class, seed,
                    database="rest"):
  """Draws a stratified query / train / database split of single-label data.

  Args:
    class_ids: int [N], the class of each image.
    queries_per_class: queries drawn from each class.
    train_per_class: training images drawn from each class, disjoint from the
      queries.
    seed: seed of the draw; the same seed always gives the same split.
    database: "rest" for every image that is not a query (the training images
      included, as in the `1k5k` protocol of DeepHash-pytorch's "cifar10-1").

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
          f"Class {c} has {len(members)} images but the split needs {needed} "
          f"({queries_per_class} queries + {train_per_class} training).")
    drawn = rng.permutation(members)[:needed]
    query.append(drawn[:queries_per_class])
    train.append(drawn[queries_per_class:])
  query = np.sort(np.concatenate(query)).astype(np.int64)
  train = np.sort(np.concatenate(train)).astype(np.int64)
  rest = np.setdiff1d(np.arange(len(class_ids)), query).astype(np.int64)
  return {"query": query, "train": train, "database": rest}
