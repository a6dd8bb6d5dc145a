"""Backend "faiss" (the default): exact Hamming search in process.

    INDEX/faiss.index   a faiss.IndexBinaryFlat (faiss.read_index_binary
                        reads it)

k nearest: IndexBinaryFlat, exact; among codes tied at the k-th distance it
keeps the lowest ids. Codes are padded with zero bytes to 4 bytes or a
multiple of 8, the widths FAISS computes Hamming distances fast for (`width`).

Radius: IndexBinaryMultiHash (built on first use), which is exact here: its m
hash tables cover m disjoint substrings of the code, and a code within
distance r differs from the query in at most floor(r / m) bits of one of
them (pigeonhole; Norouzi, Punjani and Fleet, "Fast Search in Hamming Space
with Multi-Index Hashing", CVPR 2012), so probing floor(r / m) flips finds
it. Beyond 2 flips the probing costs more than a scan, and
IndexBinaryFlat.range_search is used.
"""

import logging
import os

import numpy as np

from dhe_tf.index.backend import Backend
from dhe_tf.index.backend import sorted_hits

_FILE = "faiss.index"
_MAX_FLIPS = 2

# FAISS logs at INFO which SIMD build it tries to load; keep that quiet.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)


class FaissBackend(Backend):
  """Exact Hamming search in process with FAISS binary indexes."""

  name = "faiss"
  settings = ()

  def __init__(self, flat, bits, hashed=True):
    """A FaissBackend over `flat`, an IndexBinaryFlat of `bits`-bit codes.

    hashed: radius search hashes (IndexBinaryMultiHash) within 2 flips,
      as backend "faiss" does; False: it always scans
      (IndexBinaryFlat.range_search), as backend "distinct" may.
    """
    self.flat = flat
    self.bits = bits
    self.hashed = hashed
    self._multi_hash = None

  @staticmethod
  def width(num_bytes):
    """Bytes per code in the FAISS index: 4, or a multiple of 8.

    FAISS has fast Hamming distances for codes of 4 bytes and of multiples
    of 8; others (1, 2, 3, 5, 6, 7 bytes...) go through a byte loop about
    4x slower (measured: 12-bit codes as 2 bytes, 48-bit codes as 6). The
    extra zero bytes are the same for every code, so distances are unchanged.
    """
    return 4 if num_bytes <= 4 else -(-num_bytes // 8) * 8

  def _padded(self, packed):
    return np.pad(packed, ((0, 0), (0, self.flat.code_size - packed.shape[1])))

  @classmethod
  def flat_index(cls, packed):
    """A faiss.IndexBinaryFlat holding `packed` uint8 [N, B], padded to
    `width`(B) bytes."""
    import faiss  # pylint: disable=g-import-not-at-top
    width = cls.width(packed.shape[1])
    flat = faiss.IndexBinaryFlat(8 * width)
    flat.add(np.pad(packed, ((0, 0), (0, width - packed.shape[1]))))
    return flat

  @classmethod
  def write(cls, directory, packed, bits, settings):
    import faiss  # pylint: disable=g-import-not-at-top
    del bits
    faiss.write_index_binary(cls.flat_index(packed),
                             os.path.join(directory, _FILE))
    return dict(settings)

  @classmethod
  def load(cls, directory, manifest):
    import faiss  # pylint: disable=g-import-not-at-top
    flat = faiss.read_index_binary(os.path.join(directory, _FILE))
    return cls(flat, manifest["bits"])

  def search(self, queries, k):
    distances, ids = self.flat.search(self._padded(queries), k)
    return ids.astype(np.int64), distances.astype(np.int64)

  def _hash_index(self):
    """IndexBinaryMultiHash with m = max(1, K // 16) tables of K // m bits."""
    import faiss  # pylint: disable=g-import-not-at-top
    if self._multi_hash is None:
      num_tables = max(1, self.bits // 16)
      index = faiss.IndexBinaryMultiHash(self.flat.d, num_tables,
                                         self.bits // num_tables)
      index.add(faiss.vector_to_array(self.flat.xb).reshape(
          self.flat.ntotal, self.flat.code_size))
      self._multi_hash = index
    return self._multi_hash

  def range_hits(self, queries, radius):
    """Every code within `radius` of each query, unordered, as FAISS gives
    them.

    Returns:
      (limits int64 [Q + 1], ids int64 [M], distances int32 [M]): the hits
      of query q are at limits[q]:limits[q + 1].
    """
    num_tables = max(1, self.bits // 16)
    flips = radius // num_tables
    if self.hashed and flips <= _MAX_FLIPS:
      index = self._hash_index()
      index.nflip = flips
    else:
      index = self.flat
    # FAISS keeps distances < radius.
    limits, distances, ids = index.range_search(self._padded(queries),
                                                radius + 1)
    return limits.astype(np.int64), ids, distances

  def radius_search(self, queries, radius):
    limits, ids, distances = self.range_hits(queries, radius)
    return [sorted_hits(ids[a:b], distances[a:b])
            for a, b in zip(limits[:-1], limits[1:])]

  def close(self):
    pass  # Nothing held outside Python's memory.
