"""Indexes of binary codes: nearest codes in Hamming space, FAISS or Milvus.

An index is a directory, built under a temporary name next to its final
path and renamed into place, so a failed build never leaves a partial index
(and never touches the index already there):

    INDEX/index.json   format, bits, count, backend and its settings, the
                       fingerprint of the model that made the codes,
                       class names, and the size and SHA-256 of every
                       other file (checked at open: dhe_tf.index.checksums)
    INDEX/codes.npy, labels.npy, sources.bin, source_spans.npy
                       the codes, each code's labels and source (the image
                       path, or "<dataset>[<i>]" for in-memory data),
                       memory-mapped: an open index reads the rows of the
                       ids it returns (dhe_tf.index.store)
    INDEX/...          what the backend writes: faiss.index
                       (faiss_backend), milvus.db (milvus_backend),
                       distinct.npy, offsets.npy, ids.npy (distinct_backend)

Every file is written with the mode the umask gives (0644 under umask 022),
index.json included, so a service running as another user can read it.

Ids are row numbers 0..N-1, in the order the codes were given. Results are
ordered by (Hamming distance, id): ties are broken by id, as the evaluation
breaks them by database index (dhe_tf.evaluation.metrics). Which codes tied at the k-th
distance a backend keeps is told in its module.

Codes of any K bits are packed as dhe_tf.core.codes.pack packs them
(np.packbits): K bits become ceil(K / 8) bytes, the last padded with zero
bits. Every backend needs whole bytes; the padding is the same for every
code, query and database alike, so it never adds to a distance.

Backends, registered in BACKENDS, each one class behind the written
interface of dhe_tf.index.backend.Backend (its settings become the flags
--<backend>_<setting> of dhe_tf.search):
- "distinct" (DEFAULT_BACKEND, in process): each distinct code stored once
  with its ids and searched with FAISS, so learned codes, which repeat, are
  searched many times faster; exactly what "faiss" returns; codes that
  barely repeat are stored and searched as "faiss" does (distinct_backend).
- "faiss" (in process): exact k-NN with IndexBinaryFlat over all codes,
  exact radius search with IndexBinaryMultiHash (faiss_backend).
- "milvus": Milvus Lite or a Milvus server, BIN_FLAT (exact) or
  BIN_IVF_FLAT, at most 16,384 results per query (milvus_backend).
Adding one is a module with a Backend subclass and a line in BACKENDS;
tests/test_index_backends.py checks that it has every piece.

    backend           the Backend interface, with shapes
    distinct_backend  each distinct code once, with its ids, over FAISS
                      (the default)
    faiss_backend     FAISS over every code
    milvus_backend    Milvus Lite or a Milvus server
    registry          BACKENDS, DEFAULT_BACKEND, FORMAT
    builder           Builder (codes streamed in) and build (from arrays)
    store             the codes, sources and labels on disk, memory-mapped
    checksums         the size and SHA-256 of every index file
    searcher          build an index from a run, image files or code
                      shards, and query it (the search CLI and the service)
"""

import dataclasses
import os

from dhe_tf.core import checks
from dhe_tf.core.errors import ConfigError
from dhe_tf.index import checksums
from dhe_tf.index import store
from dhe_tf.index.backend import Backend
from dhe_tf.index.backend import Setting
from dhe_tf.index.builder import Builder
from dhe_tf.index.builder import build
from dhe_tf.index.distinct_backend import DistinctBackend
from dhe_tf.index.faiss_backend import FaissBackend
from dhe_tf.index.milvus_backend import MilvusBackend
from dhe_tf.index.registry import BACKENDS
from dhe_tf.index.registry import DEFAULT_BACKEND
from dhe_tf.index.registry import FORMAT
from dhe_tf.index.registry import check_backend

_MANIFEST = checksums.MANIFEST

__all__ = ["BACKENDS", "Backend", "Builder", "DEFAULT_BACKEND",
           "DistinctBackend", "FORMAT",
           "FaissBackend", "Index", "MilvusBackend", "Setting", "build",
           "check_backend", "open_index", "read_manifest"]


@dataclasses.dataclass
class Index:
  """An open index. Close it (or use `with`) to release a Milvus client.

  Attributes:
    path: the index directory.
    bits: K, the code length.
    fingerprint: the fingerprint of the model that made the codes.
    backend: the loaded Backend (a FaissBackend, a MilvusBackend...).
    store: the codes, sources and labels, memory-mapped
      (dhe_tf.index.store.Store).
    class_names: C names.
  """
  path: str
  bits: int
  fingerprint: str
  backend: Backend
  store: store.Store
  class_names: tuple

  def __len__(self):
    return len(self.store)

  @property
  def packed(self):
    """uint8 [N, ceil(K/8)], the codes (memory-mapped, read-only)."""
    return self.store.packed

  def source(self, item):
    """Where code `item` came from: an image path, "<dataset>[<i>]", or the
    id itself when the index was built without sources."""
    return self.store.source(item)

  def labels_of(self, ids):
    """uint8 [M, C], the 0/1 labels of the codes `ids` (int [M])."""
    return self.store.labels_of(ids)

  def search(self, queries, k):
    """The k nearest codes of each query, by (distance, id).

    Args:
      queries: packed uint8 [Q, ceil(K/8)].
      k: ≥ 1; more than the index holds returns them all.

    Returns:
      (ids int64 [Q, k'], distances int64 [Q, k']), k' = min(k, N); with
      Milvus BIN_IVF_FLAT, places it found no code for hold -1.
    """
    k = checks.positive_int("k", k)
    queries = checks.packed_codes(queries, self.bits, "queries")
    return self.backend.search(queries, min(k, len(self)))

  def radius_search(self, queries, radius):
    """Every code within Hamming distance `radius` (inclusive) of each query.

    Returns:
      One (ids int64 [M], distances int64 [M]) per query, by (distance, id).
    """
    radius = checks.non_negative_int("radius", radius)
    queries = checks.packed_codes(queries, self.bits, "queries")
    return self.backend.radius_search(queries, radius)

  def close(self):
    self.backend.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def read_manifest(path, verify="full"):
  """index.json of the index at `path`, its files verified (see
  dhe_tf.index.checksums; verify: "full" reads every byte, "sample" what
  opening checks), without opening the backend.

  Raises:
    ConfigError: no index there, or one of another format.
    DamagedIndexError: index.json or another file of the index is missing,
      truncated, corrupt or of another build; the message names it.
  """
  if verify not in checksums.DEPTHS:
    raise ConfigError(f"Unknown verify {verify!r}. Available: "
                      f"{', '.join(checksums.DEPTHS)}")
  manifest_path = os.path.join(path, _MANIFEST)
  if not os.path.isfile(manifest_path):
    raise ConfigError(f"No index at {path}: build one with "
                      "`python -m dhe_tf.search build`.")
  manifest = checksums.read_manifest(path)
  if manifest.get("format") != FORMAT:
    raise ConfigError(f"The index at {path} has format "
                      f"{manifest.get('format')!r}; this version reads "
                      f"format {FORMAT}: rebuild it.")
  checksums.check_fields(path, manifest)
  check_backend(manifest["backend"])
  checksums.verify(path, manifest["files"], verify)
  return manifest


def open_index(path, verify="sample"):
  """Opens the index at `path`, after verifying its files (read_manifest:
  by default every size, small files whole and large ones by sampled
  blocks, so that 10^8 codes open in seconds; "full" reads every byte).

  Raises:
    ConfigError: no index there, or one of another format.
    DamagedIndexError: a file of the index is damaged (read_manifest).
  """
  manifest = read_manifest(path, verify)
  codes = store.Store(path, manifest["count"], len(manifest["class_names"]))
  backend_class = BACKENDS[manifest["backend"]]
  # Settings declared after the index was built take their defaults.
  manifest = dict(manifest, settings={**backend_class.defaults(),
                                      **manifest["settings"]})
  backend = backend_class.load(path, manifest)
  return Index(path=path, bits=manifest["bits"],
               fingerprint=manifest["fingerprint"], backend=backend,
               store=codes, class_names=tuple(manifest["class_names"]))
