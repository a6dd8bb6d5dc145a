"""What a model's codes look like: the numbers to watch while training.

mAP says how good the codes are; these say why. A hash layer whose
activations never leave 0.5 loses much to binarisation, a bit that is the
same for every image carries nothing, and codes that collapse to a handful
of values cannot rank within a class. ValidationMAP logs them to TensorBoard
(under logs/validation) with the validation mAP, for every method, and
metrics.json keeps the last ones.
"""

import numpy as np

from dhe_tf import codes as codes_lib
from dhe_tf import metrics

# An activation this close to 0 or 1 counts as saturated.
SATURATION = 0.05


def code_diagnostics(query_activations, query_labels, database_activations,
                     database_labels):
  """Diagnostics of hash activations of queries against a database.

  Args:
    query_activations, database_activations: u ∈ [0, 1], float [Q, K] and
      [N, K], the hash layer's outputs (codes b = [u ≥ 0.5]).
    query_labels, database_labels: one-hot / multi-hot [Q, C] and [N, C].

  Returns:
    dict of floats, over the database unless said:
    - "saturated": share of activations with min(u, 1 − u) < 0.05;
    - "quantization_gap": mean |u − b|, what binarising moves (0 = binary);
    - "bit_imbalance": mean over bits k of |p_k − ½|, p_k the share of codes
      with bit k = 1 (0: every bit halves the data; ½: constant bits);
    - "distinct_codes": the number of different codes;
    - "hamming_similar", "hamming_dissimilar": mean Hamming distance between
      query and database codes that share a label, and that do not (NaN
      when there is no such pair).
  """
  u = np.asarray(database_activations, np.float32)
  database_codes = codes_lib.binarize(u)
  query_codes = codes_lib.binarize(np.asarray(query_activations, np.float32))
  distances = metrics.hamming_distances(
      codes_lib.pack(query_codes), codes_lib.pack(database_codes))
  similar = metrics.relevance(query_labels, database_labels)
  def mean_over(mask):
    return float(distances[mask].mean()) if mask.any() else float("nan")
  return {
      "saturated": float((np.minimum(u, 1 - u) < SATURATION).mean()),
      "quantization_gap": float(np.abs(u - database_codes).mean()),
      "bit_imbalance": float(np.abs(database_codes.mean(axis=0) - 0.5).mean()),
      "distinct_codes": float(len(np.unique(database_codes, axis=0))),
      "hamming_similar": mean_over(similar),
      "hamming_dissimilar": mean_over(~similar),
  }
