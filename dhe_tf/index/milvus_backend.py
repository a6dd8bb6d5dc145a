"""Backend "milvus": Hamming search in Milvus Lite or a Milvus server.

    INDEX/milvus.db   with no URI given: an embedded Milvus Lite database;
                      with a http://host:19530 URI the collection lives on
                      that Milvus server or cluster, and an index built
                      in its place drops it there (`drop`)

pymilvus MilvusClient on a BINARY_VECTOR field with the HAMMING metric,
index BIN_FLAT (exact) or BIN_IVF_FLAT (approximate, `nlist` lists, `nprobe`
searched). Milvus returns at most 16,384 results per query, so k and the
results of a radius search are capped there. Milvus does not document which
of the codes tied at the k-th distance it keeps (its hits are sorted here by
(distance, id)); in the tests and the 1,000,000-code benchmark of the README
("Serving and search") it kept the same ones as FAISS.
"""

import os
import uuid
import warnings

import numpy as np

from dhe_tf.core.errors import ConfigError
from dhe_tf.core.errors import DataUnavailableError
from dhe_tf.index.backend import Backend
from dhe_tf.index.backend import Setting
from dhe_tf.index.backend import sorted_hits

INDEX_TYPES = ("BIN_FLAT", "BIN_IVF_FLAT")
MAX_RESULTS = 16384  # Milvus' limit on topk and on nq.
_FILE = "milvus.db"


class MilvusBackend(Backend):
  """Hamming search in Milvus: embedded Milvus Lite or a server/cluster."""

  name = "milvus"
  settings = (
      Setting("uri", None, str,
              "a Milvus server or cluster (http://host:19530) or a Milvus "
              "Lite file (*.db); default INDEX/milvus.db."),
      Setting("index_type", "BIN_FLAT", str,
              "BIN_FLAT (exact) or BIN_IVF_FLAT.", choices=INDEX_TYPES,
              flag="index"),
      Setting("nlist", 1024, int, "BIN_IVF_FLAT: lists."),
      Setting("nprobe", 16, int, "BIN_IVF_FLAT: lists searched per query."),
  )
  _BATCH = 20_000  # Rows per insert request, well under gRPC's 64 MB.

  def __init__(self, client, uri, settings):
    self.client = client
    self.uri = uri
    self.collection = settings["collection"]
    self.index_type = settings["index_type"]
    self.nprobe = settings["nprobe"]

  @staticmethod
  def _uri(directory, settings):
    return settings.get("uri") or os.path.join(directory, _FILE)

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
    index_type = settings["index_type"]
    if settings["uri"] and _is_local(settings["uri"]):
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
      params = ({"nlist": settings["nlist"]}
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
    return dict(settings, collection=collection)

  @classmethod
  def load(cls, directory, manifest):
    settings = manifest["settings"]
    uri = cls._uri(directory, settings)
    client = cls._client(uri)
    client.load_collection(settings["collection"])
    return cls(client, uri, settings)

  @classmethod
  def drop(cls, manifest):
    """Drops the collection of a replaced index kept on a server.

    A Milvus Lite database inside the index directory went with it.
    """
    uri = manifest["settings"].get("uri")
    if uri:
      client = cls._client(uri)
      try:
        client.drop_collection(manifest["settings"]["collection"])
      finally:
        _close(client, uri)

  def _search(self, queries, limit, params):
    hits = []
    for start in range(0, len(queries), MAX_RESULTS):
      hits.extend(self.client.search(
          self.collection,
          data=[row.tobytes() for row in queries[start:start + MAX_RESULTS]],
          anns_field="code", limit=limit,
          search_params={"metric_type": "HAMMING", "params": params}))
    return [sorted_hits([hit["id"] for hit in row],
                        [hit["distance"] for hit in row]) for row in hits]

  def _params(self):
    if self.index_type == "BIN_IVF_FLAT":
      return {"nprobe": self.nprobe}
    return {}

  def search(self, queries, k):
    if k > MAX_RESULTS:
      raise ConfigError(f"The milvus backend returns at most {MAX_RESULTS} "
                        f"results. Received: k={k}")
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
    rows = self._search(queries, MAX_RESULTS,
                        dict(self._params(), radius=radius + 1,
                             range_filter=0))
    for ids, _ in rows:
      if len(ids) >= MAX_RESULTS:
        raise ConfigError(
            f"More than {MAX_RESULTS} codes lie within radius {radius}, more "
            "than Milvus returns: use a smaller radius, top-k search, or the "
            "faiss backend.")
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
