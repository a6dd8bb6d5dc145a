"""dhe_tf.index: FAISS and Milvus Lite against a brute-force NumPy reference.

Short codes tie a lot, so every comparison checks ids as well as distances:
ties must be broken by id, as dhe_tf.evaluation.metrics.retrieve breaks them.
"""

import os
import re

import numpy as np
import pytest

from dhe_tf.core import codes
from dhe_tf import index as index_lib
from dhe_tf.evaluation import metrics
from dhe_tf.core.errors import ConfigError


def _codes(num, bits, seed):
  return np.random.default_rng(seed).integers(0, 2, (num, bits))


def _within(query_packed, database_packed, radius):
  """Brute-force radius search: per query, (ids, distances) by (d, id)."""
  distances = metrics.hamming_distances(query_packed,
                                        database_packed).astype(np.int64)
  rows = []
  for row in distances:
    ids = np.flatnonzero(row <= radius)
    ids = ids[np.argsort(row[ids], kind="stable")]
    rows.append((ids, row[ids]))
  return rows


def _assert_same_rows(found, expected):
  assert len(found) == len(expected)
  for (ids, distances), (want_ids, want_distances) in zip(found, expected):
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(distances, want_distances)


@pytest.mark.parametrize("bits", [5, 12, 33, 48])
def test_faiss_top_k_and_radius_equal_brute_force(tmp_path, bits):
  database, queries = _codes(3000, bits, 0), _codes(40, bits, 1)
  path = str(tmp_path / "index")
  manifest = index_lib.build(path, codes.pack(database), bits=bits,
                             fingerprint="f")
  assert manifest["count"] == 3000 and manifest["backend"] == "faiss"
  packed_queries = codes.pack(queries)
  with index_lib.open_index(path) as index:
    for k in (1, 7, 100, 5000):
      ids, distances = index.search(packed_queries, k)
      want_ids, want_distances = metrics.retrieve(queries, database,
                                                  min(k, 3000))
      np.testing.assert_array_equal(ids, want_ids)
      np.testing.assert_array_equal(distances, want_distances)
    # 48 bits: 3 hash tables, so radii 0-8 use IndexBinaryMultiHash with up
    # to 2 flips, and larger radii the exhaustive range search.
    for radius in (0, 1, 2, 5, 9):
      _assert_same_rows(
          index.radius_search(packed_queries, radius),
          _within(packed_queries, index.packed, radius))


def test_padding_to_whole_bytes_is_zero_bits_at_the_end():
  packed = codes.from_strings(["1000000001", "0000000011"], 10)
  np.testing.assert_array_equal(packed, [[0b10000000, 0b01000000],
                                         [0b00000000, 0b11000000]])
  np.testing.assert_array_equal(
      packed, codes.pack([[1, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                                  [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]]))


def test_metadata_round_trips(tmp_path):
  path = str(tmp_path / "index")
  labels = np.eye(3, dtype=np.float32)[[0, 2, 1, 2]]
  index_lib.build(path, codes.pack(_codes(4, 12, 0)), bits=12,
                  fingerprint="abc", sources=["a.png", "é.png", "c", "d"],
                  labels=labels, class_names=("x", "y", "z"))
  with index_lib.open_index(path) as index:
    assert (len(index), index.bits, index.fingerprint) == (4, 12, "abc")
    assert [index.source(i) for i in range(4)] == ["a.png", "é.png", "c",
                                                   "d"]
    np.testing.assert_array_equal(index.labels, labels)
    assert index.class_names == ("x", "y", "z")


@pytest.mark.parametrize("call, message", [
    (lambda index: index.search(np.zeros((2, 3), np.uint8), 5),
     "queries must be packed 12-bit codes, uint8 [N, 2]. Received: dtype "
     "uint8, shape (2, 3)"),
    (lambda index: index.search(np.zeros((2, 2), np.uint8), 0),
     "k must be a positive integer. Received: k=0"),
    (lambda index: index.search(np.zeros((2, 2), np.uint8), -3),
     "k must be a positive integer. Received: k=-3"),
    (lambda index: index.radius_search(np.zeros((2, 2), np.uint8), -1),
     "radius must be a non-negative integer. Received: radius=-1"),
    (lambda index: codes.from_strings(["0101"], index.bits),
     "Code '0101' has 4 bits; 12-bit codes are expected."),
    (lambda index: codes.from_strings(["01x101010101"], 12),
     "A code must be a string of 0 and 1. Received: code='01x101010101'"),
    (lambda index: index.search(np.array([[0, 0x0F]], np.uint8), 1),
     "queries must be packed 12-bit codes, the last 4 bits of each code "
     "zero"),
])
def test_bad_queries_are_named(tmp_path, call, message):
  path = str(tmp_path / "index")
  index_lib.build(path, codes.pack(_codes(10, 12, 0)), bits=12,
                  fingerprint="f" * 64)
  with index_lib.open_index(path) as index:
    with pytest.raises(ConfigError, match=re.escape(message)):
      call(index)


def test_failed_build_keeps_the_old_index(tmp_path, monkeypatch):
  path = str(tmp_path / "index")
  index_lib.build(path, codes.pack(_codes(10, 12, 0)), bits=12,
                  fingerprint="old")

  def write_half_and_fail(directory, packed, bits, settings):
    del packed, bits, settings
    with open(os.path.join(directory, "faiss.index"), "wb") as f:
      f.write(b"half")
    raise OSError("disk full")

  monkeypatch.setattr(index_lib.FaissBackend, "write",
                      staticmethod(write_half_and_fail))
  with pytest.raises(OSError, match="disk full"):
    index_lib.build(path, codes.pack(_codes(20, 12, 1)), bits=12,
                    fingerprint="new")
  assert os.listdir(tmp_path) == ["index"]  # No temporary directory left.
  with index_lib.open_index(path) as index:
    assert (len(index), index.fingerprint) == (10, "old")
  monkeypatch.undo()
  index_lib.build(path, codes.pack(_codes(20, 12, 1)), bits=12,
                  fingerprint="new")
  with index_lib.open_index(path) as index:
    assert (len(index), index.fingerprint) == (20, "new")
  assert os.listdir(tmp_path) == ["index"]


def test_build_refuses_a_path_that_is_not_an_index(tmp_path):
  (tmp_path / "photos").mkdir()
  (tmp_path / "photos" / "keep.jpg").write_bytes(b"mine")
  with pytest.raises(ConfigError, match="is not a dhe_tf index"):
    index_lib.build(str(tmp_path / "photos"),
                    codes.pack(_codes(4, 8, 0)), bits=8,
                    fingerprint="f")
  assert os.listdir(tmp_path / "photos") == ["keep.jpg"]
  with pytest.raises(ConfigError, match="Received: bits=0"):
    index_lib.build(str(tmp_path / "x"), np.zeros((4, 1), np.uint8), bits=0,
                    fingerprint="f")
  with pytest.raises(ConfigError, match=re.escape(
      "codes must be packed 12-bit codes, uint8 [N, 2]")):
    index_lib.build(str(tmp_path / "x"), np.zeros((4, 1), np.uint8),
                    bits=12, fingerprint="f")
  with pytest.raises(ConfigError, match=re.escape(
      "Cannot write to index=/etc/hostname/index: File exists")):
    index_lib.build("/etc/hostname/index", np.zeros((4, 1), np.uint8),
                    bits=8, fingerprint="f")
  with pytest.raises(ConfigError, match="No index at"):
    index_lib.open_index(str(tmp_path / "photos"))


@pytest.fixture(scope="module")
def milvus_and_faiss(tmp_path_factory):
  """Both backends over the same 12-bit codes (many ties), Milvus Lite."""
  pytest.importorskip("pymilvus")
  pytest.importorskip("milvus_lite")
  root = tmp_path_factory.mktemp("indexes")
  database = _codes(4000, 12, 2)
  paths = {}
  for backend in ("milvus", "faiss"):
    paths[backend] = str(root / backend)
    index_lib.build(paths[backend], codes.pack(database), bits=12,
                    fingerprint="f", backend=backend)
  assert os.path.isfile(os.path.join(paths["milvus"], "milvus.db"))
  indexes = {backend: index_lib.open_index(path)
             for backend, path in paths.items()}
  yield indexes, database
  for index in indexes.values():
    index.close()


def test_milvus_lite_returns_what_faiss_returns(milvus_and_faiss):
  indexes, database = milvus_and_faiss
  queries = _codes(30, 12, 3)
  packed = codes.pack(queries)
  for k in (1, 10, 100):
    want = metrics.retrieve(queries, database, k)
    for backend in ("milvus", "faiss"):
      ids, distances = indexes[backend].search(packed, k)
      np.testing.assert_array_equal(ids, want[0], err_msg=backend)
      np.testing.assert_array_equal(distances, want[1], err_msg=backend)
  for radius in (0, 1, 2):
    want = _within(packed, codes.pack(database), radius)
    for backend in ("milvus", "faiss"):
      _assert_same_rows(indexes[backend].radius_search(packed, radius), want)


def test_milvus_caps_are_errors(milvus_and_faiss):
  indexes, _ = milvus_and_faiss
  # (Index.search first cuts k to the index size, 4000 here.)
  with pytest.raises(ConfigError, match="at most 16384 results"):
    indexes["milvus"].backend.search(np.zeros((1, 2), np.uint8), 20000)
