"""Indexes of binary codes: nearest codes in Hamming space, FAISS or Milvus.

An index is a directory, built under a temporary name next to its final
path and renamed into place, so a failed build never leaves a partial index
(and never touches the index already there):

    INDEX/index.json   format, bits, count, backend and its settings, the
                       fingerprint of the model that made the codes,
                       class names
    INDEX/codes.npz    packed uint8 [N, ceil(K / 8)], sources UTF-8 [N]
                       (the image path, or "<dataset>[<i>]" for in-memory
                       data; [0] when none), labels uint8 [N, C] (C = 0
                       without labels)
    INDEX/faiss.index  backend "faiss": a faiss.IndexBinaryFlat
                       (faiss.read_index_binary reads it)
    INDEX/milvus.db    backend "milvus" with no URI given: an embedded
                       Milvus Lite database; with a http://host:19530 URI
                       the collection lives on that Milvus server or cluster

Ids are row numbers 0..N-1, in the order the codes were given. Results are
ordered by (Hamming distance, id): ties are broken by id, as the evaluation
breaks them by database index (dhe_tf.metrics). FAISS's IndexBinaryFlat
keeps the lowest ids among the codes tied at the k-th distance; Milvus does
not document which it keeps (its hits are sorted here), and in the tests and
a 1,000,000-code benchmark it kept the same ones.

Codes of any K bits are packed like dhe_tf.metrics.pack_codes
(np.packbits): K bits become ceil(K / 8) bytes, the last padded with zero
bits. Both FAISS and Milvus need whole bytes; the padding is the same for
every code, query and database alike, so it never adds to a distance.

Backends, behind one interface (`search`, `radius_search`):
- "faiss" (default, embedded): exact k-NN with IndexBinaryFlat (codes
  padded with zero bytes to 4 bytes or a multiple of 8, FAISS's fast
  widths: 4x faster for 48-bit codes than 6 bytes); radius
  search with IndexBinaryMultiHash (built on first use), which is exact here:
  its m hash tables cover m disjoint substrings of the code, and a code
  within distance r differs from the query in at most floor(r / m) bits of
  one of them, so probing floor(r / m) flips finds it. Beyond 2 flips the
  probing costs more than a scan, and IndexBinaryFlat.range_search is used.
- "milvus": pymilvus MilvusClient on a BINARY_VECTOR field with the
  HAMMING metric, index BIN_FLAT (exact) or BIN_IVF_FLAT (approximate,
  `nlist` lists, `nprobe` searched). Milvus returns at most 16,384 results
  per query, so k and the results of a radius search are capped there.
"""

import dataclasses
import logging
import os
import shutil
import tempfile
import uuid
import warnings

import numpy as np

from dhe_tf import run_dir
from dhe_tf.errors import ConfigError
from dhe_tf.errors import DataUnavailableError

FORMAT = 1
BACKENDS = ("faiss", "milvus")
MILVUS_INDEX_TYPES = ("BIN_FLAT", "BIN_IVF_FLAT")
MILVUS_MAX_RESULTS = 16384  # Milvus' limit on topk and on nq.
_MANIFEST = "index.json"
_CODES = "codes.npz"
_FAISS_FILE = "faiss.index"
_MILVUS_FILE = "milvus.db"
_MAX_FLIPS = 2

# FAISS logs at INFO which SIMD build it tries to load; keep that quiet.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def num_bytes(bits):
  """Bytes of a packed K-bit code: ceil(K / 8)."""
  return (bits + 7) // 8


def check_packed(packed, bits, what="codes"):
  """Returns `packed` as uint8 [N, ceil(K/8)]; ConfigError if it is not."""
  packed = np.asarray(packed)
  if (packed.ndim != 2 or packed.dtype != np.uint8 or
      packed.shape[1] != num_bytes(bits)):
    raise ConfigError(
        f"{what} must be packed {bits}-bit codes, uint8 [N, "
        f"{num_bytes(bits)}]. Received: dtype {packed.dtype}, shape "
        f"{packed.shape}")
  return np.ascontiguousarray(packed)


def codes_from_strings(texts, bits):
  """Packed uint8 [Q, ceil(K/8)] from strings of K characters 0 or 1.

  Raises:
    ConfigError: a string that is not K binary digits, naming it.
  """
  rows = []
  for text in texts:
    if not text or set(text) - {"0", "1"}:
      raise ConfigError(f"A code must be a string of 0 and 1. "
                        f"Received: code={text!r}")
    if len(text) != bits:
      raise ConfigError(f"Code {text!r} has {len(text)} bits; the index "
                        f"holds {bits}-bit codes.")
    rows.append([int(c) for c in text])
  return np.packbits(np.array(rows, np.uint8).reshape(len(rows), bits),
                     axis=1)


def check_k(k):
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    raise ConfigError(f"k must be a positive integer. Received: k={k!r}")


def check_radius(radius):
  if (isinstance(radius, bool) or
      not isinstance(radius, (int, np.integer)) or radius < 0):
    raise ConfigError(f"radius must be a non-negative integer. "
                      f"Received: radius={radius!r}")


def _sorted_hits(ids, distances):
  """(ids, distances) int64 [M] ordered by (distance, id)."""
  ids = np.asarray(ids, np.int64)
  distances = np.asarray(distances, np.int64)
  order = np.lexsort((ids, distances))
  return ids[order], distances[order]


class FaissBackend:
  """Exact Hamming search in process with FAISS binary indexes."""

  name = "faiss"

  def __init__(self, flat, bits):
    self.flat = flat
    self.bits = bits
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
  def write(cls, directory, packed, bits, settings):
    import faiss  # pylint: disable=g-import-not-at-top
    del bits
    width = cls.width(packed.shape[1])
    flat = faiss.IndexBinaryFlat(8 * width)
    flat.add(np.pad(packed, ((0, 0), (0, width - packed.shape[1]))))
    faiss.write_index_binary(flat, os.path.join(directory, _FAISS_FILE))
    return dict(settings)

  @classmethod
  def load(cls, directory, manifest):
    import faiss  # pylint: disable=g-import-not-at-top
    flat = faiss.read_index_binary(os.path.join(directory, _FAISS_FILE))
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

  def radius_search(self, queries, radius):
    num_tables = max(1, self.bits // 16)
    flips = radius // num_tables
    if flips <= _MAX_FLIPS:
      index = self._hash_index()
      index.nflip = flips
    else:
      index = self.flat
    # FAISS keeps distances < radius.
    limits, distances, ids = index.range_search(self._padded(queries),
                                                radius + 1)
    return [_sorted_hits(ids[a:b], distances[a:b])
            for a, b in zip(limits[:-1], limits[1:])]

  def close(self):
    pass


class MilvusBackend:
  """Hamming search in Milvus: embedded Milvus Lite or a server/cluster."""

  name = "milvus"
  _BATCH = 20_000  # Rows per insert request, well under gRPC's 64 MB.

  def __init__(self, client, uri, settings):
    self.client = client
    self.uri = uri
    self.collection = settings["collection"]
    self.settings = settings

  @staticmethod
  def _uri(directory, settings):
    return settings.get("uri") or os.path.join(directory, _MILVUS_FILE)

  @staticmethod
  def _client(uri):
    try:
      from pymilvus import MilvusClient  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ConfigError('The milvus backend needs pymilvus: pip install '
                        '"dhe_tf[milvus]".') from e
    try:
      with warnings.catch_warnings():
        # Milvus Lite 2.5 imports the deprecated pkg_resources.
        warnings.filterwarnings("ignore", "pkg_resources is deprecated")
        return MilvusClient(uri)
    except Exception as e:  # pylint: disable=broad-except
      # pymilvus raises MilvusException or gRPC errors, varying by version.
      raise DataUnavailableError(f"Cannot connect to Milvus at {uri}: "
                                 f"{str(e).splitlines()[0]}") from e

  @classmethod
  def write(cls, directory, packed, bits, settings):
    from pymilvus import DataType  # pylint: disable=g-import-not-at-top
    del bits
    index_type = settings.get("index_type", "BIN_FLAT")
    if index_type not in MILVUS_INDEX_TYPES:
      raise ConfigError(f"Unknown milvus_index {index_type!r}. "
                        f"Available: {', '.join(MILVUS_INDEX_TYPES)}")
    if settings.get("uri") and _is_local(settings["uri"]):
      if not settings["uri"].endswith(".db"):
        raise ConfigError("A Milvus URI is http(s)://host:port, or a Milvus "
                          "Lite file whose name ends in .db. Received: "
                          f"milvus_uri={settings['uri']}")
      settings = dict(settings, uri=os.path.abspath(settings["uri"]))
    uri = cls._uri(directory, settings)
    client = cls._client(uri)
    collection = f"dhe_{uuid.uuid4().hex}"
    try:
      schema = client.create_schema(auto_id=False)
      schema.add_field("id", DataType.INT64, is_primary=True)
      schema.add_field("code", DataType.BINARY_VECTOR,
                       dim=8 * packed.shape[1])
      index_params = client.prepare_index_params()
      params = ({"nlist": settings.get("nlist", 1024)}
                if index_type == "BIN_IVF_FLAT" else {})
      index_params.add_index(field_name="code", index_type=index_type,
                             metric_type="HAMMING", params=params)
      client.create_collection(collection, schema=schema,
                               index_params=index_params)
      for start in range(0, len(packed), cls._BATCH):
        rows = packed[start:start + cls._BATCH]
        client.insert(collection, [
            {"id": start + i, "code": row.tobytes()}
            for i, row in enumerate(rows)])
      client.flush(collection)
    except BaseException:
      client.drop_collection(collection)
      raise
    finally:
      _close(client, uri)
    return dict(settings, index_type=index_type, collection=collection)

  @classmethod
  def load(cls, directory, manifest):
    settings = manifest["settings"]
    uri = cls._uri(directory, settings)
    client = cls._client(uri)
    client.load_collection(settings["collection"])
    return cls(client, uri, settings)

  @classmethod
  def drop(cls, manifest):
    """Drops the collection of a replaced index kept outside its directory."""
    uri = manifest["settings"].get("uri")
    if uri:
      client = cls._client(uri)
      try:
        client.drop_collection(manifest["settings"]["collection"])
      finally:
        _close(client, uri)

  def _search(self, queries, limit, params):
    hits = []
    for start in range(0, len(queries), MILVUS_MAX_RESULTS):
      hits.extend(self.client.search(
          self.collection,
          data=[row.tobytes() for row in
                queries[start:start + MILVUS_MAX_RESULTS]],
          anns_field="code", limit=limit,
          search_params={"metric_type": "HAMMING", "params": params}))
    return [_sorted_hits([hit["id"] for hit in row],
                         [hit["distance"] for hit in row]) for row in hits]

  def _params(self):
    if self.settings["index_type"] == "BIN_IVF_FLAT":
      return {"nprobe": self.settings.get("nprobe", 16)}
    return {}

  def search(self, queries, k):
    if k > MILVUS_MAX_RESULTS:
      raise ConfigError(f"The milvus backend returns at most "
                        f"{MILVUS_MAX_RESULTS} results. Received: k={k}")
    rows = self._search(queries, k, self._params())
    # BIN_IVF_FLAT may find fewer than k codes in the lists it probes: the
    # missing places hold id -1 and distance -1.
    ids = np.full((len(rows), k), -1, np.int64)
    distances = np.full((len(rows), k), -1, np.int64)
    for row, (found_ids, found_distances) in enumerate(rows):
      ids[row, :len(found_ids)] = found_ids
      distances[row, :len(found_distances)] = found_distances
    return ids, distances

  def radius_search(self, queries, radius):
    # Milvus keeps range_filter <= distance < radius for HAMMING.
    rows = self._search(queries, MILVUS_MAX_RESULTS,
                        dict(self._params(), radius=radius + 1,
                             range_filter=0))
    for ids, _ in rows:
      if len(ids) >= MILVUS_MAX_RESULTS:
        raise ConfigError(
            f"More than {MILVUS_MAX_RESULTS} codes lie within radius "
            f"{radius}, more than Milvus returns: use a smaller radius, "
            "top-k search, or the faiss backend.")
    return rows

  def close(self):
    _close(self.client, self.uri)


def _is_local(uri):
  return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


def _close(client, uri):
  """Closes a MilvusClient, and stops the Milvus Lite server of a local URI.

  pymilvus 2.5's close() leaves the Lite server process running (until
  Python exits) with the database open; it must stop before the directory
  holding the database is renamed or opened again.
  """
  client.close()
  if _is_local(uri):
    from milvus_lite import server_manager  # pylint: disable=g-import-not-at-top
    server_manager.server_manager_instance.release_server(uri)


_BACKENDS = {"faiss": FaissBackend, "milvus": MilvusBackend}


def check_backend(backend):
  if backend not in _BACKENDS:
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
  manifest = run_dir.read_json(os.path.join(old, _MANIFEST))
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
    packed: uint8 [N, ceil(K/8)], codes packed as dhe_tf.metrics.pack_codes.
    bits: K.
    fingerprint: identifies the model that made the codes (see
      dhe_tf.serving.model_fingerprint); queries from another model are
      refused.
    sources: str [N], where each code comes from (default: its id).
    labels: 0/1 [N, C], or None.
    class_names: names of the C label columns.
    backend: one of BACKENDS.
    settings: backend settings; milvus: "uri" (default: INDEX/milvus.db,
      Milvus Lite), "index_type" (MILVUS_INDEX_TYPES), "nlist", "nprobe".

  Returns:
    The manifest written to INDEX/index.json.
  """
  check_backend(backend)
  if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
    raise ConfigError(f"bits must be a positive integer. Received: "
                      f"bits={bits!r}")
  packed = check_packed(packed, bits)
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
    backend_settings = _BACKENDS[backend].write(tmp, packed, bits,
                                                settings or {})
    manifest = dict(format=FORMAT, bits=bits, count=count, backend=backend,
                    fingerprint=fingerprint, class_names=list(class_names),
                    settings=backend_settings)
    run_dir.write_json(os.path.join(tmp, _MANIFEST), manifest)
    os.chmod(tmp, 0o755)
    replaced = _install(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    run_dir.remove_created(created)
    raise
  if replaced and replaced["backend"] == "milvus":
    MilvusBackend.drop(replaced)
  return manifest


@dataclasses.dataclass
class Index:
  """An open index. Close it (or use `with`) to release a Milvus client.

  Attributes:
    path: the index directory.
    bits: K, the code length.
    fingerprint: the fingerprint of the model that made the codes.
    backend: a FaissBackend or MilvusBackend.
    packed: uint8 [N, ceil(K/8)], the codes.
    sources: UTF-8 bytes [N] (see `source`), or [0] when they are the ids.
    labels: uint8 [N, C].
    class_names: C names.
  """
  path: str
  bits: int
  fingerprint: str
  backend: object
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

  def check_fingerprint(self, fingerprint, what):
    """Raises ConfigError unless `what` (a model) made this index's codes."""
    if fingerprint != self.fingerprint:
      raise ConfigError(
          f"The index at {self.path} was built by another model "
          f"(fingerprint {self.fingerprint[:12]}…), not by {what} "
          f"(fingerprint {fingerprint[:12]}…): rebuild the index with it.")

  def search(self, queries, k):
    """The k nearest codes of each query, by (distance, id).

    Args:
      queries: packed uint8 [Q, ceil(K/8)].
      k: ≥ 1; more than the index holds returns them all.

    Returns:
      (ids int64 [Q, k'], distances int64 [Q, k']), k' = min(k, N); with
      Milvus BIN_IVF_FLAT, places it found no code for hold -1.
    """
    check_k(k)
    queries = check_packed(queries, self.bits, "queries")
    return self.backend.search(queries, min(int(k), len(self)))

  def radius_search(self, queries, radius):
    """Every code within Hamming distance `radius` (inclusive) of each query.

    Returns:
      One (ids int64 [M], distances int64 [M]) per query, by (distance, id).
    """
    check_radius(radius)
    queries = check_packed(queries, self.bits, "queries")
    return self.backend.radius_search(queries, int(radius))

  def close(self):
    self.backend.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def open_index(path):
  """Opens the index at `path`.

  Raises:
    ConfigError: no index there, or one of another format.
  """
  manifest_path = os.path.join(path, _MANIFEST)
  if not os.path.isfile(manifest_path):
    raise ConfigError(f"No index at {path}: build one with "
                      "`python -m dhe_tf.search build`.")
  manifest = run_dir.read_json(manifest_path)
  if manifest.get("format") != FORMAT:
    raise ConfigError(f"The index at {path} has format "
                      f"{manifest.get('format')!r}; this version reads "
                      f"format {FORMAT}: rebuild it.")
  check_backend(manifest["backend"])
  with np.load(os.path.join(path, _CODES), allow_pickle=False) as codes:
    packed, sources, labels = (codes["packed"], codes["sources"],
                               codes["labels"])
  backend = _BACKENDS[manifest["backend"]].load(path, manifest)
  return Index(path=path, bits=manifest["bits"],
               fingerprint=manifest["fingerprint"], backend=backend,
               packed=packed, sources=sources, labels=labels,
               class_names=tuple(manifest["class_names"]))

