"""What a model's codes look like: the numbers to watch while training.

mAP says how good the codes are; these say why. A hash layer whose
activations never leave 0.5 loses much to binarisation, a bit that is the
same for every image carries nothing, and codes that collapse to a handful
of values cannot rank within a class. ValidationMAP logs them to TensorBoard
(under logs/validation) with the validation mAP, for every method, and
metrics.json keeps the last ones.
"""

import numpy as np

from dhe_tf.core import codes as codes_lib
from dhe_tf.evaluation import metrics

# An activation this close to 0 or 1 counts as saturated.
SATURATION = 0.05


def code_diagnostics(query_activations, query_labels, database_activations,
                     database_labels, exclude_self=False):
  """Diagnostics of hash activations of queries against a database.

  Args:
    query_activations, database_activations: u ∈ [0, 1], float [Q, K] and
      [N, K], the hash layer's outputs (codes b = [u ≥ 0.5]).
    query_labels, database_labels: one-hot / multi-hot [Q, C] and [N, C].
    exclude_self: the queries are the database and each is compared with
      the others only (dhe_tf.evaluation.metrics' leave-one-out, as on the validation
      split).

  Returns:
    dict of floats, over the database unless said:
    - "saturated": share of activations with min(u, 1 − u) < 0.05;
    - "quantization_gap": mean |u − b|, what binarising moves (0 = binary);
    - "bit_imbalance": mean over bits k of |p_k − ½|, p_k the share of codes
      with bit k = 1 (0: every bit halves the data; ½: constant bits);
    - "distinct_codes": the number of different codes;
    - "precision_h2": P@H≤2 of the queries against the database
      (dhe_tf.evaluation.metrics.precision_recall_within_radius: what radius-2
      lookup of short codes returns);
    - "hamming_similar", "hamming_dissimilar": mean Hamming distance between
      query and database codes that share a label, and that do not (NaN
      when there is no such pair);
    - "class_code_min_distance", "class_code_mean_distance": the smallest
      and the mean Hamming distance between two classes' majority codes
      (bit k of class c is 1 where at least half of the database codes of
      class c have it), over the classes in the database (NaN for fewer
      than two): how many flipped bits separate the classes at short codes;
    - "within_class_spread": mean Hamming distance of a database code to
      its class's majority code (over every image and each of its labels).
  """
  u = np.asarray(database_activations, np.float32)
  database_codes = codes_lib.binarize(u)
  query_codes = codes_lib.binarize(np.asarray(query_activations, np.float32))
  distances = metrics.hamming_distances(
      codes_lib.pack(query_codes), codes_lib.pack(database_codes))
  similar = metrics.relevance(query_labels, database_labels)
  pairs = np.ones(similar.shape, bool)
  if exclude_self:
    np.fill_diagonal(pairs, False)
  def mean_over(mask):
    mask &= pairs
    return float(distances[mask].mean()) if mask.any() else float("nan")
  return {
      "saturated": float((np.minimum(u, 1 - u) < SATURATION).mean()),
      "quantization_gap": float(np.abs(u - database_codes).mean()),
      "bit_imbalance": float(np.abs(database_codes.mean(axis=0) - 0.5).mean()),
      "distinct_codes": float(len(np.unique(database_codes, axis=0))),
      "precision_h2": metrics.precision_recall_within_radius(
          query_codes, query_labels, database_codes, database_labels,
          exclude_self=exclude_self)[0],
      "hamming_similar": mean_over(similar),
      "hamming_dissimilar": mean_over(~similar),
      **_class_codes(database_codes, database_labels),
  }


def _class_codes(database_codes, database_labels):
  labels = np.asarray(database_labels) > 0.5
  present = np.flatnonzero(labels.any(axis=0))
  majority = np.stack([
      database_codes[labels[:, c]].mean(axis=0) >= 0.5 for c in present])
  codes = database_codes.astype(np.int32)
  spread = [np.abs(codes[labels[:, c]] - majority[i]).sum(axis=1)
            for i, c in enumerate(present)]
  apart = [int(np.sum(majority[i] != majority[j]))
           for i in range(len(present)) for j in range(i + 1, len(present))]
  return {
      "class_code_min_distance": float(min(apart)) if apart else float("nan"),
      "class_code_mean_distance": (float(np.mean(apart)) if apart
                                   else float("nan")),
      "within_class_spread": float(np.concatenate(spread).mean()),
  }
