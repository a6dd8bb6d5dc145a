"""Retrieval metrics for binary hash codes: Hamming ranking, mAP, precision.

NumPy on 0/1 codes and labels, so tests can call every
function on a handful of hand-made codes.

Conventions shared by every function here:

- Codes are arrays of 0 and 1 of shape [num_items, bits] (bool, int or float).
  Codes of ±1 are rejected rather than guessed at: convert with `codes > 0`.
- Labels are integer class ids [N] or [N, 1], or one-hot / multi-hot [N, C].
  A database item is relevant to a query when they share at least one label.
- Ranking: database items in ascending Hamming distance to the query, ties
  broken by database index (lower index first), which is exactly what a
  stable argsort of the distances gives. A fixed tie rule makes every metric a
  deterministic function of the codes; short codes tie a lot (32 bits give
  only 33 distinct distances), so mAP without one is not reproducible.
- Leave-one-out (`exclude_self=True`): the queries are the database, the
  same items in the same order, and each query is scored against all the
  others, never itself. That is how the validation split is scored
  (dhe_tf.training.callbacks.ValidationMAP): held-out images retrieve each other.
- Queries are processed in chunks, a few at a time in threads; a chunk holds
  about 15 bytes per (query, database item) pair, so with the default
  `chunk_size` memory stays near 60 MB per thread (4 threads at most),
  whatever the number of queries.
"""

import concurrent.futures
import numbers
import os

import numpy as np

from dhe_tf.core import checks
from dhe_tf.core import codes as codes_lib

# Pairs (query, database item) per chunk when chunk_size is None: about 60 MB
# of intermediate arrays; larger chunks are not faster.
_CHUNK_PAIRS = 2**22
# NumPy releases the GIL in its sorts and element-wise loops, so chunks run in
# parallel threads (about 1.7x faster on 2 cores); at most 4, to bound memory.
_THREADS = min(4, os.cpu_count() or 1)


def hamming_distances(query_packed, database_packed):
  """Hamming distance between every query and every database code.

  The packed bytes are viewed as the fewest, widest unsigned words (up to 64
  bits), so the distance is one XOR and one popcount per word instead of one
  per byte; e.g. 32-bit codes are a single uint32.

  Args:
    query_packed: uint8 [Q, B], codes from `dhe_tf.core.codes.pack`.
    database_packed: uint8 [N, B], codes from `dhe_tf.core.codes.pack`.

  Returns:
    [Q, N] distances in the smallest unsigned dtype that holds 8 * B (uint8 up
    to 248 bits). The matrix is the large one, so it is kept 8x smaller than
    int64; cast it before subtracting distances.

  Raises:
    ValueError: if an argument is not a 2-D uint8 array, or the byte widths
      differ.
  """
  query_packed = _check_packed(query_packed, "query_packed")
  database_packed = _check_packed(database_packed, "database_packed")
  if query_packed.shape[1] != database_packed.shape[1]:
    raise ValueError(
        "query_packed and database_packed must have the same number of bytes "
        f"per code. Received: query_packed width {query_packed.shape[1]}, "
        f"database_packed width {database_packed.shape[1]}")
  return _hamming(_as_words(query_packed),
                  _as_words(database_packed).T.copy(),
                  _distance_dtype(8 * query_packed.shape[1]))


def relevance(query_labels, database_labels):
  """Which database items are relevant to which query.

  Args:
    query_labels: class ids [Q] or [Q, 1], or one-hot / multi-hot [Q, C].
    database_labels: the same form as query_labels, [N] / [N, 1] / [N, C].

  Returns:
    bool [Q, N]: True where the query and the item share at least one label.

  Raises:
    ValueError: if the labels are malformed or not in the same form.
  """
  return _relevance(*_check_label_pair(query_labels, database_labels))


def mean_average_precision(query_codes, query_labels, database_codes,
                           database_labels, topk=None, chunk_size=None,
                           exclude_self=False):
  """Mean average precision of Hamming ranking (mAP@topk).

  For one query with the database ranked by Hamming distance, ties broken by
  database index (the order of a stable argsort), and rel(r) = 1 when the
  item at rank r is relevant:

      AP@k = (1 / R_k) Σ_{r=1..k} P(r) rel(r),   P(r) = (1/r) Σ_{i≤r} rel(i),

  where R_k is the number of relevant items within the top k. This
  normalisation by R_k (not by all relevant items in the database) is the
  convention of the DPSH, HashNet and DeepHash code, so numbers compare with
  those papers. A query with R_k = 0 has AP 0 and still counts in the mean.

  Args:
    query_codes: [Q, K] array of 0 and 1.
    query_labels: class ids [Q] or [Q, 1], or one-hot / multi-hot [Q, C].
    database_codes: [N, K] array of 0 and 1.
    database_labels: [N] / [N, 1] / [N, C], the same form as query_labels.
    topk: rank cut-off k, or None for the whole database (mAP@ALL); values
      above N mean N (N − 1 with exclude_self).
    chunk_size: queries per chunk, or None for as many as keep a chunk near
      4M (query, item) pairs.
    exclude_self: leave-one-out (see the module docstring): query i is not
      an item of its own database.

  Returns:
    The mean of AP@k over all queries, as a float.

  Raises:
    ValueError: on malformed codes or labels, a topk or chunk_size that is
      not a positive integer, or exclude_self with fewer than two items or
      with queries that are not the database.
  """
  query_codes, query_labels, database_codes, database_labels = _check_inputs(
      query_codes, query_labels, database_codes, database_labels)
  checks.positive_int("topk", topk, allow_none=True)
  num_items = len(database_codes) - _check_self(query_codes, database_codes,
                                                exclude_self)
  k = num_items if topk is None else min(topk, num_items)

  def chunk_average_precisions(rows, distances):
    relevant = _relevance(query_labels[rows], database_labels)
    if exclude_self:  # Itself: beyond every distance, never relevant.
      own = ~_others(rows, distances.shape)
      distances[own] = np.iinfo(distances.dtype).max
      relevant[own] = False
    return _average_precisions(*_relevant_ranks(distances, relevant, k))

  chunks = _map_chunks(chunk_average_precisions, query_codes, database_codes,
                       chunk_size)
  return float(np.concatenate(chunks).mean())


def precision_at_n(query_codes, query_labels, database_codes, database_labels,
                   ns=(100, 500, 1000), chunk_size=None):
  """Precision of the top n items of the Hamming ranking, for several n.

  P@n = (relevant items among the top n by (distance, index)) / n, averaged
  over queries. An n above the database size N means N: the whole database is
  retrieved and the precision is divided by N.

  Args:
    query_codes: [Q, K] array of 0 and 1.
    query_labels: class ids [Q] or [Q, 1], or one-hot / multi-hot [Q, C].
    database_codes: [N, K] array of 0 and 1.
    database_labels: [N] / [N, 1] / [N, C], the same form as query_labels.
    ns: non-empty sequence of positive integers.
    chunk_size: queries per chunk, or None as in `mean_average_precision`.

  Returns:
    dict {n: mean precision}, a float per n.

  Raises:
    ValueError: on malformed inputs, or an n that is not a positive integer.
  """
  query_codes, query_labels, database_codes, database_labels = _check_inputs(
      query_codes, query_labels, database_codes, database_labels)
  if (isinstance(ns, numbers.Number) or len(ns) == 0 or
      not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and
              n > 0 for n in ns)):
    raise ValueError("ns must be a non-empty sequence of positive integers. "
                     f"Received: ns={ns!r}")
  sizes = [min(n, len(database_codes)) for n in ns]

  def chunk_hits(rows, distances):
    relevant = _relevance(query_labels[rows], database_labels)
    _, ranks = _relevant_ranks(distances, relevant, max(sizes))
    return [np.count_nonzero(ranks <= size) for size in sizes]

  hits = np.sum(_map_chunks(chunk_hits, query_codes, database_codes,
                            chunk_size), axis=0)
  return {n: float(hits[i] / (sizes[i] * len(query_codes)))
          for i, n in enumerate(ns)}


def precision_recall_curve(query_codes, query_labels, database_codes,
                           database_labels, chunk_size=None, exclude_self=False):
  """Precision and recall of Hamming-radius retrieval, for every radius.

  At radius r a query retrieves every database item within Hamming distance
  r (no ranking, so no tie rule is involved). Per query:

      precision(r) = relevant retrieved / retrieved, and 0 when nothing is
                     retrieved (as in the DeepHash code);
      recall(r)    = relevant retrieved / relevant items in the database.

  Precision is averaged over all queries. Recall is averaged over the queries
  that have at least one relevant item in the database: for the others it is
  0 / 0, undefined rather than 0, so they are left out (if no query has a
  relevant item, recall is all zeros).

  Args:
    query_codes: [Q, K] array of 0 and 1.
    query_labels: class ids [Q] or [Q, 1], or one-hot / multi-hot [Q, C].
    database_codes: [N, K] array of 0 and 1.
    database_labels: [N] / [N, 1] / [N, C], the same form as query_labels.
    chunk_size: queries per chunk, or None as in `mean_average_precision`.
    exclude_self: leave-one-out, as in `mean_average_precision`.

  Returns:
    (precision, recall), float arrays [K + 1] indexed by radius 0..K.

  Raises:
    ValueError: on malformed codes or labels, a bad chunk_size, or
      exclude_self with queries that are not the database.
  """
  query_codes, query_labels, database_codes, database_labels = _check_inputs(
      query_codes, query_labels, database_codes, database_labels)
  _check_self(query_codes, database_codes, exclude_self)
  bits = query_codes.shape[1]

  def chunk_curves(rows, distances):
    """Precision and recall [Qc, K + 1]; recall NaN without relevant items."""
    relevant = _relevance(query_labels[rows], database_labels)
    others = _others(rows, distances.shape) if exclude_self else None
    if exclude_self:
      relevant &= others
    retrieved = _counts_within_radius(distances, bits, others)
    hits = _counts_within_radius(distances, bits, relevant)
    num_relevant = hits[:, -1:]  # Radius K retrieves everything.
    precision = np.divide(hits, retrieved, out=np.zeros(hits.shape),
                          where=retrieved > 0)
    recall = np.divide(hits, num_relevant, out=np.full(hits.shape, np.nan),
                       where=num_relevant > 0)
    return precision, recall

  chunks = _map_chunks(chunk_curves, query_codes, database_codes, chunk_size)
  precision, recall = (np.concatenate(parts) for parts in zip(*chunks))
  recall = recall[~np.isnan(recall[:, 0])]
  return (precision.mean(axis=0),
          recall.mean(axis=0) if len(recall) else np.zeros(bits + 1))


def precision_recall_within_radius(query_codes, query_labels, database_codes,
                                   database_labels, radius=2, chunk_size=None,
                                   exclude_self=False):
  """Precision and recall of retrieving every item within a Hamming radius.

  The point at `radius` of `precision_recall_curve`, with its conventions;
  radius 2 is the usual lookup table setting in hashing papers.

  Args:
    query_codes: [Q, K] array of 0 and 1.
    query_labels: class ids [Q] or [Q, 1], or one-hot / multi-hot [Q, C].
    database_codes: [N, K] array of 0 and 1.
    database_labels: [N] / [N, 1] / [N, C], the same form as query_labels.
    radius: non-negative integer; values above K mean K.
    chunk_size: queries per chunk, or None as in `mean_average_precision`.
    exclude_self: leave-one-out, as in `mean_average_precision`.

  Returns:
    (precision, recall) as floats.

  Raises:
    ValueError: on malformed inputs, or a radius that is not a non-negative
      integer.
  """
  checks.non_negative_int("radius", radius)
  precision, recall = precision_recall_curve(
      query_codes, query_labels, database_codes, database_labels, chunk_size,
      exclude_self)
  radius = min(radius, len(precision) - 1)
  return float(precision[radius]), float(recall[radius])


def retrieve(query_codes, database_codes, k, chunk_size=None):
  """The top k database items of each query by (distance, index).

  Args:
    query_codes: [Q, K] array of 0 and 1.
    database_codes: [N, K] array of 0 and 1.
    k: positive integer; values above N mean N.
    chunk_size: queries per chunk, or None as in `mean_average_precision`.

  Returns:
    (indices, distances): int64 [Q, min(k, N)] each, nearest first.

  Raises:
    ValueError: on malformed codes, or a k or chunk_size that is not a
      positive integer.
  """
  query_codes = _check_codes(query_codes, "query_codes")
  database_codes = _check_codes(database_codes, "database_codes")
  _check_same_bits(query_codes, database_codes)
  checks.positive_int("k", k)
  num_items = len(database_codes)
  k = min(k, num_items)
  index_bits = _index_bits(num_items)

  def chunk_top_k(rows, distances):
    del rows  # Unused.
    keys = _smallest_keys(distances, None, k).astype(np.int64)
    return (keys >> 1) & ((1 << index_bits) - 1), keys >> (index_bits + 1)

  chunks = _map_chunks(chunk_top_k, query_codes, database_codes, chunk_size)
  return tuple(np.concatenate(parts) for parts in zip(*chunks))


# Ranking.


def _map_chunks(function, query_codes, database_codes, chunk_size):
  """Returns [function(rows, distances) for each chunk of queries], in order.

  rows is the slice of the queries in a chunk, distances their Hamming
  distances [Qc, N] to the database. Chunks run on up to _THREADS threads,
  each computing its own distances, so at most _THREADS chunks are in memory.

  Args:
    function: called with (slice, unsigned int [Qc, N]).
    query_codes: bool [Q, K], checked.
    database_codes: bool [N, K], checked.
    chunk_size: queries per chunk, or None for about _CHUNK_PAIRS pairs.
  """
  checks.positive_int("chunk_size", chunk_size, allow_none=True)
  if chunk_size is None:
    chunk_size = max(1, _CHUNK_PAIRS // len(database_codes))
  query_words = _as_words(codes_lib.pack(query_codes))
  database_words = _as_words(codes_lib.pack(database_codes)).T.copy()
  dtype = _distance_dtype(query_codes.shape[1])

  def run(start):
    rows = slice(start, start + chunk_size)
    return function(rows, _hamming(query_words[rows], database_words, dtype))

  with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
    return list(pool.map(run, range(0, len(query_words), chunk_size)))


def _as_words(packed):
  """Views packed bits [N, B] as [N, W] unsigned words after zero padding
  (zero bits add nothing to an XOR or an AND): the fewest words, one per 8
  bytes, each no wider than needed: 2 bytes -> uint16, 3 or 4 -> uint32, 5 to
  8 -> uint64, 9 to 16 -> two uint64. For 32-bit codes one uint32 XOR and
  popcount is 3x faster than four uint8 and 2x faster than a padded uint64."""
  width = packed.shape[1]
  word_bytes = min(8, 1 << (width - 1).bit_length())
  padded = np.pad(packed, ((0, 0), (0, -width % word_bytes)))
  return padded.view(np.dtype(f"u{word_bytes}"))


def _hamming(query_words, database_words, dtype):
  """Distances [Q, N] between query words [Q, W] and database words [W, N]."""
  distances = np.bitwise_count(query_words[:, 0, None] ^ database_words[0])
  distances = distances.astype(dtype, copy=False)
  for word in range(1, query_words.shape[1]):
    distances += np.bitwise_count(query_words[:, word, None] ^
                                  database_words[word])
  return distances


def _distance_dtype(bits):
  # The largest value stays free: exclude_self puts an item there.
  for dtype in (np.uint8, np.uint16, np.uint32):
    if bits < np.iinfo(dtype).max:
      return dtype
  raise ValueError(f"Codes of 2**32 - 1 bits or more are not supported. "
                   f"Received: bits={bits}")


def _index_bits(num_items):
  return max(1, (num_items - 1).bit_length())


def _smallest_keys(distances, relevant, k):
  """The k smallest keys of each row, in ascending order.

  A key packs (distance, database index, relevant bit) from the high bits to
  the low bits of one unsigned integer. Indices are unique, so sorting keys
  orders items by (distance, index), exactly the stable-argsort ranking, and
  carries the relevant bit along. A plain sort of uint32 (SIMD in NumPy 2) is
  about twice as fast as a stable argsort followed by a gather of the
  relevance mask, and np.partition cuts the sort to k items.

  Args:
    distances: unsigned int [Qc, N].
    relevant: bool [Qc, N], or None for a relevant bit of 0.
    k: number of keys kept, 1..N.

  Returns:
    uint32 (uint64 when the three fields need more than 32 bits) [Qc, k].
  """
  num_items = distances.shape[1]
  shift = _index_bits(num_items) + 1
  key_bits = 8 * distances.dtype.itemsize + shift
  key_dtype = np.uint32 if key_bits <= 32 else np.uint64
  keys = np.left_shift(distances, shift, dtype=key_dtype)
  keys |= np.arange(num_items, dtype=key_dtype) << 1
  if relevant is not None:
    keys |= relevant
  if k < num_items:
    keys = np.partition(keys, k - 1, axis=1)[:, :k]
  keys.sort(axis=1)
  return keys


def _relevant_ranks(distances, relevant, k):
  """Ranks of the relevant items among the top k of each query.

  Args:
    distances: unsigned int [Qc, N].
    relevant: bool [Qc, N].
    k: ranking cut-off, 1..N.

  Returns:
    (num_relevant, ranks): int64 [Qc], the number of relevant items in each
    query's top k, and int64 [M], their 1-based ranks, query after query, in
    ascending order.
  """
  keys = _smallest_keys(distances, relevant, k)
  is_relevant = np.empty(keys.shape, bool)
  np.bitwise_and(keys, 1, out=is_relevant, casting="unsafe")
  num_relevant = np.count_nonzero(is_relevant, axis=1)
  # Flat position row * k + rank - 1, minus (row * k - 1), is the rank.
  offsets = np.repeat(np.arange(len(keys)) * k - 1, num_relevant)
  return num_relevant, np.flatnonzero(is_relevant) - offsets


def _average_precisions(num_relevant, ranks):
  """AP [Qc] from the output of `_relevant_ranks`.

  The j-th relevant item of a query, at rank r_j, has precision j / r_j, so
  AP = (1 / R) Σ_j j / r_j with R the query's number of relevant items, and
  AP = 0 when R = 0.
  """
  first = np.cumsum(num_relevant) - num_relevant
  j = np.arange(1, len(ranks) + 1) - np.repeat(first, num_relevant)
  has_relevant = num_relevant > 0
  total = np.zeros(len(num_relevant))
  total[has_relevant] = np.add.reduceat(j / ranks, first[has_relevant])
  return np.divide(total, num_relevant, out=total, where=has_relevant)


def _others(rows, shape):
  """bool [Qc, N]: False at each query's own item (query rows.start + i is
  database item rows.start + i), True elsewhere."""
  others = np.ones(shape, bool)
  at = np.arange(shape[0])
  others[at, rows.start + at] = False
  return others


def _counts_within_radius(distances, bits, mask=None):
  """[Qc, bits + 1] counts of items (where mask is True) within distance r."""
  num_queries = len(distances)
  bins = distances + (np.arange(num_queries) * (bits + 1))[:, None]
  if mask is not None:
    bins = bins[mask]
  counts = np.bincount(bins.ravel(), minlength=num_queries * (bits + 1))
  return np.cumsum(counts.reshape(num_queries, bits + 1), axis=1)


def _relevance(query_labels, database_labels):
  """bool [Q, N] from `_check_label_pair`: ids [Q] and [N], or label sets
  packed into words [Q, W] and [N, W], where sharing a label is a common bit."""
  if query_labels.ndim == 1:
    return query_labels[:, None] == database_labels[None, :]
  relevant = np.zeros((len(query_labels), len(database_labels)), bool)
  for word in range(query_labels.shape[1]):
    relevant |= (query_labels[:, word, None] & database_labels[:, word]) != 0
  return relevant


# Input checks.


def _check_inputs(query_codes, query_labels, database_codes, database_labels):
  """Checks the four arrays of a labelled evaluation; returns codes as bool,
  labels as from `_check_label_pair`."""
  query_codes = _check_codes(query_codes, "query_codes")
  database_codes = _check_codes(database_codes, "database_codes")
  _check_same_bits(query_codes, database_codes)
  query_labels, database_labels = _check_label_pair(query_labels,
                                                    database_labels)
  for codes, labels, name in ((query_codes, query_labels, "query"),
                              (database_codes, database_labels, "database")):
    if len(codes) != len(labels):
      raise ValueError(
          f"{name}_codes and {name}_labels must have one row per item. "
          f"Received: {len(codes)} codes and {len(labels)} labels")
  return query_codes, query_labels, database_codes, database_labels


def _check_self(query_codes, database_codes, exclude_self):
  """1 when exclude_self (each query leaves one item out), else 0."""
  if not exclude_self:
    return 0
  if len(query_codes) != len(database_codes) or len(query_codes) < 2:
    raise ValueError(
        "exclude_self scores the items against each other: the queries must "
        "be the database, at least two items. Received: "
        f"{len(query_codes)} queries, {len(database_codes)} database items")
  return 1


def _check_codes(codes, name):
  return codes_lib.check_bits(codes, name).astype(bool)


def _check_packed(packed, name):
  packed = checks.packed_codes(packed, None, name)
  if not len(packed):
    raise ValueError(f"{name} must hold at least one code. Received: {name} "
                     f"with shape {packed.shape}")
  return packed


def _check_same_bits(query_codes, database_codes):
  if query_codes.shape[1] != database_codes.shape[1]:
    raise ValueError(
        "query_codes and database_codes must have the same number of bits. "
        f"Received: query_codes with {query_codes.shape[1]} bits, "
        f"database_codes with {database_codes.shape[1]} bits")


def _check_label_pair(query_labels, database_labels):
  """Checks both label arrays; returns class ids as int64 [Q] and [N], or
  one-hot / multi-hot labels packed like codes into words [Q, W] and [N, W].

  Packed label sets make relevance one AND per word: 5x faster than a float
  matmul for 10 classes, 1.4x for 80.
  """
  query_labels = _check_labels(query_labels, "query_labels")
  database_labels = _check_labels(database_labels, "database_labels")
  if query_labels.shape[1:] != database_labels.shape[1:]:
    raise ValueError(
        "query_labels and database_labels must be both class ids or both "
        "one-hot / multi-hot with the same number of classes. Received: "
        f"query_labels with shape {query_labels.shape}, database_labels with "
        f"shape {database_labels.shape}")
  if query_labels.ndim == 1:
    return query_labels, database_labels
  return (_as_words(np.packbits(query_labels, axis=1)),
          _as_words(np.packbits(database_labels, axis=1)))


def _check_labels(labels, name):
  """Returns class ids as int64 [N], or one-hot / multi-hot as bool [N, C].

  [N, 1] is read as class ids, not as multi-hot labels over a single class.
  """
  labels = np.asarray(labels)
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.ndim == 1:
    if not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(
          f"{name} of shape [N] must be integer class ids. "
          f"Received: {name} with dtype {labels.dtype}")
    return labels.astype(np.int64)
  if labels.ndim != 2:
    raise ValueError(
        f"{name} must be class ids [N] or [N, 1], or one-hot / multi-hot "
        f"[N, C]. Received: {name} with shape {labels.shape}")
  is_binary = (labels == 0) | (labels == 1)
  if not np.all(is_binary):
    bad = labels[~is_binary][0].item()
    raise ValueError(
        f"{name} of shape [N, C] must be one-hot / multi-hot, only 0 and 1. "
        f"Received: {name} containing {bad!r}")
  return labels.astype(bool)
