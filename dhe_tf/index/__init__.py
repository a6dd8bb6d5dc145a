"""Indexes of binary codes: nearest codes in Hamming space, FAISS or Milvus.

An index is a directory, built under a temporary name next to its final
path and renamed into place, so a failed build never leaves a partial index
(and never touches the index already there):

    INDEX/index.json   format, bits, count, backend and its settings, the
                       fingerprint of the model that made the codes,
                       class names, and the size and SHA-256 of every
                       other file (checked at open: dhe_tf.index.checksums)
    INDEX/codes.npz    packed uint8 [N, ceil(K / 8)], sources UTF-8 [N]
                       (the image path, or "<dataset>[<i>]" for in-memory
                       data; [0] when none), labels uint8 [N, C] (C = 0
                       without labels)
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
- "faiss" (default, in process): exact k-NN with IndexBinaryFlat, exact
  radius search with IndexBinaryMultiHash (faiss_backend).
- "milvus": Milvus Lite or a Milvus server, BIN_FLAT (exact) or
  BIN_IVF_FLAT, at most 16,384 results per query (milvus_backend).
- "distinct" (in process): each distinct code stored once with its ids and
  searched with FAISS, so learned codes, which repeat, are searched many
  times faster; exactly what "faiss" returns (distinct_backend).
Adding one is a module with a Backend subclass and a line in BACKENDS;
tests/test_index_backends.py checks that it has every piece.

    backend           the Backend interface, with shapes
    faiss_backend     FAISS (default)
    distinct_backend  each distinct code once, with its ids, over FAISS
    milvus_backend    Milvus Lite or a Milvus server
    checksums         the size and SHA-256 of every index file
    searcher          build an index from a run, image files or code
                      shards, and query it (the search CLI and the service)
"""

import dataclasses
import os
import shutil
import stat
import tempfile

import numpy as np

from dhe_tf.core import checks
from dhe_tf.runs import run_dir
from dhe_tf.core.errors import ConfigError
from dhe_tf.index import checksums
from dhe_tf.index.backend import Backend
from dhe_tf.index.backend import Setting
from dhe_tf.index.distinct_backend import DistinctBackend
from dhe_tf.index.faiss_backend import FaissBackend
from dhe_tf.index.milvus_backend import MilvusBackend

# 2: index.json records the checksum of each file.
FORMAT = 2
# The registry: every search backend by name ("faiss" is the default).
BACKENDS = {"faiss": FaissBackend, "milvus": MilvusBackend,
            "distinct": DistinctBackend}
_MANIFEST = checksums.MANIFEST
_CODES = "codes.npz"

__all__ = ["BACKENDS", "Backend", "FORMAT", "Index", "Setting", "build",
           "check_backend", "open_index", "read_manifest"]


def check_backend(backend):
  """Raises ConfigError unless `backend` names a registered backend."""
  if backend not in BACKENDS:
    raise ConfigError(f"Unknown backend {backend!r}. "
                      f"Available: {', '.join(BACKENDS)}")


def _is_index(path):
  return os.path.isfile(os.path.join(path, _MANIFEST))


def _install(tmp, path):
  """Renames the built directory `tmp` to `path`, replacing an index there.

  Returns the manifest of the replaced index, or None.
  """
  if not os.path.lexists(path):
    os.rename(tmp, path)
    return None
  old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-",
                         dir=os.path.dirname(os.path.abspath(path)))
  os.rmdir(old)
  os.rename(path, old)
  os.rename(tmp, path)
  try:
    manifest = run_dir.read_json(os.path.join(old, _MANIFEST))
  except (OSError, ValueError):
    manifest = None  # A damaged index replaced: nothing of it to drop.
  shutil.rmtree(old, ignore_errors=True)
  return manifest


def _create(directory, name):
  """run_dir.create, with an error that names the flag it came from."""
  try:
    return run_dir.create(directory)
  except ConfigError as e:
    raise ConfigError(str(e).replace(f"model_dir={directory}", name,
                                     1)) from e


def build(path, packed, *, bits, fingerprint, sources=None, labels=None,
          class_names=(), backend="faiss", settings=None):
  """Builds the index at `path` (replacing an index there) from codes.

  Args:
    path: the index directory. An existing index there is replaced only
      once the new one is complete; any other existing path is refused.
    packed: uint8 [N, ceil(K/8)], codes packed as dhe_tf.core.codes.pack.
    bits: K.
    fingerprint: identifies the model that made the codes (see
      dhe_tf.model.inference.model_fingerprint); queries from another model are
      refused.
    sources: str [N], where each code comes from (default: its id).
    labels: 0/1 [N, C], or None.
    class_names: names of the C label columns.
    backend: a name in BACKENDS.
    settings: dict of the backend's settings (its `settings` declare them;
      a missing or None one takes its default). milvus: "uri" (default:
      INDEX/milvus.db, Milvus Lite), "index_type", "nlist", "nprobe".

  Returns:
    The manifest written to INDEX/index.json.
  """
  check_backend(backend)
  bits = checks.positive_int("bits", bits)
  backend_class = BACKENDS[backend]
  settings = backend_class.resolve_settings(settings)
  packed = checks.packed_codes(packed, bits)
  if not len(packed):
    raise ConfigError("An index needs at least one code. Received: 0 codes")
  count = len(packed)
  # UTF-8 bytes: a quarter of NumPy's 4-byte unicode; none stored when the
  # source is the id.
  sources = (np.zeros(0, "S1") if sources is None else
             np.char.encode(np.asarray(sources, dtype=str), "utf-8"))
  labels = (np.zeros((count, 0), np.uint8) if labels is None
            else (np.asarray(labels) > 0).astype(np.uint8))
  if len(sources) not in (0, count) or len(labels) != count:
    raise ConfigError(f"sources and labels need one row per code. Received: "
                      f"{count} codes, {len(sources)} sources, "
                      f"{len(labels)} labels")
  if labels.shape[1] != len(class_names):
    raise ConfigError(f"labels have {labels.shape[1]} columns but "
                      f"{len(class_names)} class names were given.")
  if os.path.lexists(path) and not _is_index(path):
    raise ConfigError(f"{path} exists and is not a dhe_tf index: choose "
                      "another --index path.")
  parent = os.path.dirname(os.path.abspath(path))
  created = _create(parent, f"index={path}")
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-",
                         dir=parent)
  try:
    np.savez(os.path.join(tmp, _CODES), packed=packed, sources=sources,
             labels=labels)
    recorded = backend_class.write(tmp, packed, bits, settings)
    manifest = dict(format=FORMAT, bits=bits, count=count, backend=backend,
                    fingerprint=fingerprint, class_names=list(class_names),
                    settings=recorded, files=checksums.record(tmp))
    manifest_path = os.path.join(tmp, _MANIFEST)
    run_dir.write_json(manifest_path, manifest)
    # write_json's temporary file is 0600: give index.json the mode that
    # codes.npz got from the umask.
    os.chmod(manifest_path, stat.S_IMODE(os.stat(os.path.join(
        tmp, _CODES)).st_mode))
    os.chmod(tmp, 0o755)
    replaced = _install(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    run_dir.remove_created(created)
    raise
  if replaced and replaced.get("backend") in BACKENDS:
    BACKENDS[replaced["backend"]].drop(replaced)
  return manifest


@dataclasses.dataclass
class Index:
  """An open index. Close it (or use `with`) to release a Milvus client.

  Attributes:
    path: the index directory.
    bits: K, the code length.
    fingerprint: the fingerprint of the model that made the codes.
    backend: the loaded Backend (a FaissBackend, a MilvusBackend...).
    packed: uint8 [N, ceil(K/8)], the codes.
    sources: UTF-8 bytes [N] (see `source`), or [0] when they are the ids.
    labels: uint8 [N, C].
    class_names: C names.
  """
  path: str
  bits: int
  fingerprint: str
  backend: Backend
  packed: np.ndarray
  sources: np.ndarray
  labels: np.ndarray
  class_names: tuple

  def __len__(self):
    return len(self.packed)

  def source(self, item):
    """Where code `item` came from: an image path, "<dataset>[<i>]", or the
    id itself when the index was built without sources."""
    if not len(self.sources):
      return str(item)
    return self.sources[item].decode("utf-8")

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


def read_manifest(path):
  """index.json of the index at `path`, its files verified (see
  dhe_tf.index.checksums), without opening the backend.

  Raises:
    ConfigError: no index there, or one of another format.
    DamagedIndexError: index.json or another file of the index is missing,
      truncated, corrupt or of another build; the message names it.
  """
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
  checksums.verify(path, manifest["files"])
  return manifest


def open_index(path):
  """Opens the index at `path`, after verifying its files (read_manifest).

  Raises:
    ConfigError: no index there, or one of another format.
    DamagedIndexError: a file of the index is damaged (read_manifest).
  """
  manifest = read_manifest(path)
  with np.load(os.path.join(path, _CODES), allow_pickle=False) as arrays:
    packed, sources, labels = (arrays["packed"], arrays["sources"],
                               arrays["labels"])
  backend_class = BACKENDS[manifest["backend"]]
  # Settings declared after the index was built take their defaults.
  manifest = dict(manifest, settings={**backend_class.defaults(),
                                      **manifest["settings"]})
  backend = backend_class.load(path, manifest)
  return Index(path=path, bits=manifest["bits"],
               fingerprint=manifest["fingerprint"], backend=backend,
               packed=packed, sources=sources, labels=labels,
               class_names=tuple(manifest["class_names"]))
