"""Backend "distinct": exact Hamming search that scans each distinct code once.

Learned codes repeat: the 69,000 database images of a Fashion-MNIST run have
about 466 distinct 12-bit codes and 3,900 distinct 32-bit ones. This backend
stores each distinct code once, with the ids that have it, searches the U
distinct codes with FAISS and expands them to ids, so a query scans U codes,
not N, and returns what backend "faiss" returns (IndexBinaryFlat over all
codes, ties broken by id), ids and distances alike:

    INDEX/distinct.npy  uint8 [U, ceil(K/8)], the distinct codes, in the
                        order of their lowest ids
    INDEX/offsets.npy   int64 [U + 1]; distinct code u is the code of ids
                        ids[offsets[u]:offsets[u + 1]]
    INDEX/ids.npy       int32 [N] (int64 from 2^31 codes): the ids grouped by
                        code, ascending within each (a CSR layout)

offsets.npy and ids.npy are memory-mapped: opening reads no id.

k nearest: IndexBinaryFlat finds the k' = min(k, U) distinct codes smallest
by (distance, position) (among ties it keeps the lowest positions, as
backend "faiss" relies on); the positions follow the codes' lowest ids, so
these are the k' smallest (distance, lowest id). They hold the answer: an id
of any other code comes after the k' lowest ids of these codes. The k-th id
is at the distance d of the first of them whose id counts reach k; with
`before` ids at distances below d, only the first k - before codes at d can
give an id (the same argument), and each at most its k lowest ids. Those
(distance, id) pairs, sorted and cut at k, are the answer.

Radius: every distinct code within r, expanded to all of its ids, sorted by
(distance, id). The distinct codes are either scanned
(IndexBinaryFlat.range_search) or hashed (IndexBinaryMultiHash, as backend
"faiss" does: multi-index hashing, Norouzi et al., CVPR 2012). Neither wins
everywhere: learned codes cluster, so the hash's substring buckets fill up,
and it was 6-8x slower than the scan over their distinct codes (radius 2,
32 and 64 bits, 10^5 to 10^7 codes), while over evenly spread codes the
hash is many times faster. By default (--distinct_radius=auto) `build`
times both on 256 of the codes at radius 2 and records the faster in
index.json.

When the codes barely repeat (more than `max_fraction` × N distinct codes,
as for random codes), the index is built and searched as backend "faiss"
builds it (INDEX/faiss.index), and index.json's settings say layout "flat".
"""

import os
import time

import numpy as np

from dhe_tf.index.backend import Backend
from dhe_tf.index.backend import Setting
from dhe_tf.index.faiss_backend import FaissBackend

_DISTINCT, _OFFSETS, _IDS = "distinct.npy", "offsets.npy", "ids.npy"
# Measured on 10^6 codes, 1,000 queries, one thread's CPU time: with U
# distinct codes drawn uniformly and the ids spread over them, the distinct
# layout against backend "faiss" (k = 100 / radius 2) was 1.18x / 1.21x at
# U = 0.8 N (32 bits), 1.09x / 1.09x at 0.9 N and 0.98x / 0.87x at N;
# 64 bits: 1.41x / 1.72x at 0.7 N, 1.07x / 1.08x at 0.9 N, 1.00x / 1.35x at N.
# Above 0.8 N the scan saved no longer pays for the expansion.
MAX_FRACTION = 0.8
RADIUS_INDEXES = ("scan", "multi_hash")
# Codes that `build` times the radius indexes on (at radius 2).
_SAMPLE = 256
# Ids a radius search expands and sorts at once (about 5 arrays of 8 bytes
# each): bounds the memory it takes on top of its answer.
_MAX_EXPANDED = 1 << 22


def group(packed):
  """Each distinct code once, with its ids.

  Args:
    packed: uint8 [N, B] codes.

  Returns:
    (distinct uint8 [U, B], offsets int64 [U + 1], ids [N]): the ids of
    distinct[u] are ids[offsets[u]:offsets[u + 1]], ascending; the distinct
    codes are in the order of their lowest ids. ids are int32 when
    N < 2^31, int64 otherwise.
  """
  count, num_bytes = packed.shape
  words = -(-num_bytes // 8)
  # Big-endian 64-bit words sort as the bytes do.
  keys = np.pad(packed, ((0, 0), (0, 8 * words - num_bytes))).view(
      ">u8").astype(np.uint64)
  if words == 1:
    ids = np.argsort(keys[:, 0], kind="stable")
  else:
    ids = np.lexsort(keys.T[::-1])  # Stable: ascending ids within a code.
  keys = keys[ids]
  starts = np.flatnonzero(np.concatenate(
      [[True], (keys[1:] != keys[:-1]).any(axis=1)]))
  del keys
  # Reorder the groups by their lowest id (their first).
  order = np.argsort(ids[starts])
  lengths = np.diff(np.append(starts, count))[order]
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
  ids = ids[_ranges(starts[order], lengths, offsets)]
  id_type = np.int32 if count < 2**31 else np.int64
  return packed[ids[offsets[:-1]]], offsets, ids.astype(id_type)


def _ranges(starts, lengths, ends=None):
  """The positions starts[i] + 0..lengths[i]-1 for every i, concatenated.

  ends: np.cumsum(lengths) with a leading 0, when the caller has it.
  """
  if ends is None:
    ends = np.concatenate([[0], np.cumsum(lengths)])
  return np.arange(ends[-1]) + np.repeat(starts - ends[:-1], lengths)


def _faster_radius_index(distinct, bits, sample, repeats=3):
  """The one of RADIUS_INDEXES over `distinct` that searches `sample` within
  radius 2 in the least CPU time (the best of `repeats`)."""
  flat = FaissBackend.flat_index(distinct)
  seconds = {}
  for choice in RADIUS_INDEXES:
    codes = FaissBackend(flat, bits, hashed=choice == "multi_hash")
    codes.range_hits(sample[:1], 2)  # Builds the hash index, untimed.
    seconds[choice] = float("inf")
    for _ in range(repeats):
      start = time.process_time()
      codes.range_hits(sample, 2)
      seconds[choice] = min(seconds[choice], time.process_time() - start)
  return min(RADIUS_INDEXES, key=seconds.get)


class DistinctBackend(Backend):
  """Exact Hamming search over each distinct code once, FAISS underneath."""

  name = "distinct"
  settings = (
      Setting("max_fraction", MAX_FRACTION, float,
              "store and search the codes as --backend=faiss does when "
              "distinct codes are more than this fraction of the codes "
              "(1.0: always the distinct layout, 0.0: never)"),
      Setting("radius", "auto", str,
              "radius search over the distinct codes: scan them "
              "(IndexBinaryFlat), hash them (IndexBinaryMultiHash, as "
              "--backend=faiss does), or auto: the faster on a sample of the "
              "codes, timed at build", choices=("auto", *RADIUS_INDEXES)),)

  def __init__(self, codes, count, offsets=None, ids=None):
    """codes: a FaissBackend over the distinct codes (or over all N codes,
    without offsets and ids: the flat layout)."""
    self.codes = codes
    self.count = count
    self.offsets = offsets
    self.ids = ids
    self.counts = None if offsets is None else np.diff(offsets)

  @classmethod
  def write(cls, directory, packed, bits, settings):
    distinct, offsets, ids = group(packed)
    if len(distinct) > settings["max_fraction"] * len(packed):
      recorded = FaissBackend.write(directory, packed, bits, {})
      return dict(settings, **recorded, layout="flat",
                  distinct_codes=len(distinct))
    for name, array in ((_DISTINCT, distinct), (_OFFSETS, offsets),
                        (_IDS, ids)):
      np.save(os.path.join(directory, name), array)
    radius = settings["radius"]
    if radius == "auto":
      sample = packed[np.random.default_rng(0).choice(
          len(packed), min(len(packed), _SAMPLE), replace=False)]
      radius = _faster_radius_index(distinct, bits, sample)
    return dict(settings, layout="distinct", distinct_codes=len(distinct),
                radius=radius)

  @classmethod
  def load(cls, directory, manifest):
    if manifest["settings"]["layout"] == "flat":
      return cls(FaissBackend.load(directory, manifest), manifest["count"])
    distinct = np.load(os.path.join(directory, _DISTINCT))
    codes = FaissBackend(
        FaissBackend.flat_index(distinct), manifest["bits"],
        hashed=manifest["settings"]["radius"] == "multi_hash")
    return cls(codes, manifest["count"],
               np.load(os.path.join(directory, _OFFSETS), mmap_mode="r"),
               np.load(os.path.join(directory, _IDS), mmap_mode="r"))

  def search(self, queries, k):
    if self.ids is None:
      return self.codes.search(queries, k)
    nearest, distances = self.codes.search(queries,
                                           min(k, len(self.counts)))
    covered = np.cumsum(self.counts[nearest], axis=1)
    rows = np.arange(len(queries))[:, None]
    # The k-th id is at distance kth; the codes before distance kth hold
    # `before` < k ids, and `k - before` more come from the codes at kth.
    kth = distances[rows[:, 0], np.argmax(covered >= k, axis=1)][:, None]
    first = np.argmax(distances == kth, axis=1)[:, None]
    before = np.where(first > 0, covered[rows, np.maximum(first - 1, 0)], 0)
    rows, columns = np.nonzero(
        (np.arange(nearest.shape[1]) < first + k - before) &
        (distances <= kth))
    # Row by row, by distance: the hits are grouped as _expand needs.
    lengths, distance, ids = self._expand(
        rows, nearest[rows, columns], distances[rows, columns], cap=k)
    # Each query has at least k ids, sorted: its first k are the answer.
    take = np.concatenate([[0], np.cumsum(np.bincount(
        rows, lengths, len(queries)).astype(np.int64))])[:-1, None] + (
            np.arange(k))
    return ids[take], distance[take]

  def radius_search(self, queries, radius):
    if self.ids is None:
      return self.codes.radius_search(queries, radius)
    limits, code, distance = self.codes.range_hits(queries, radius)
    query_of = np.repeat(np.arange(len(queries)), np.diff(limits))
    order = np.lexsort((distance, query_of))
    code, distance = code[order], distance[order]
    # Ids before each query's: expand queries in batches of about
    # _MAX_EXPANDED ids (a query with more, alone).
    before = np.concatenate([[0], np.cumsum(self.counts[code])])[limits]
    rows, start = [], 0
    while start < len(queries):
      end = max(start + 1, int(np.searchsorted(
          before, before[start] + _MAX_EXPANDED, side="right")) - 1)
      hits = slice(limits[start], limits[end])
      lengths, found_distances, ids = self._expand(
          query_of[hits], code[hits], distance[hits])
      bounds = before[start:end + 1] - before[start]
      rows += [(ids[a:b], found_distances[a:b])
               for a, b in zip(bounds[:-1], bounds[1:])]
      start = end
    return rows

  def _expand(self, query_of, code, distance, cap=None):
    """The ids of the distinct codes found, ordered by (query, distance, id).

    Args:
      query_of, code, distance: [M], one distinct code `code` found for
        query `query_of` at `distance`, ordered by (query, distance).
      cap: keep only the `cap` lowest ids of each code (None: all).

    Returns:
      (lengths int64 [M], the ids kept of each code; distances int64 [M'],
      ids int64 [M'], M' = sum(lengths)).
    """
    lengths = self.counts[code]
    if cap is not None:
      lengths = np.minimum(lengths, cap)
    ids = self.ids[_ranges(self.offsets[code], lengths)].astype(np.int64)
    # A group is one query's codes at one distance; its ids are runs, each
    # ascending: group × N + id sorts them within their group, and timsort
    # merges the runs. It fits: groups × N < 2^63.
    changes = ((query_of[1:] != query_of[:-1]) |
               (distance[1:] != distance[:-1]))
    group = np.concatenate([[0], np.cumsum(changes)])[:len(code)]
    offset = np.repeat(group * self.count, lengths)
    ids += offset
    ids.sort(kind="stable")
    ids -= offset
    return lengths, np.repeat(distance.astype(np.int64), lengths), ids

  def close(self):
    pass  # The memory maps close with the arrays.
