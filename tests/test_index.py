"""dhe_tf.index: FAISS, Milvus Lite and "distinct" against a brute-force NumPy
reference.

Short codes tie a lot, so every comparison checks ids as well as distances:
ties must be broken by id, as dhe_tf.evaluation.metrics.retrieve breaks them.
"""

import os
import re
import stat

import numpy as np
import pytest

from dhe_tf.core import codes
from dhe_tf import index as index_lib
from dhe_tf.index import distinct_backend
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
                             fingerprint="f", backend="faiss")
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
    np.testing.assert_array_equal(index.labels_of(np.arange(4)), labels)
    np.testing.assert_array_equal(index.labels_of([3, 0]), labels[[3, 0]])
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


# Backend "distinct": each distinct code once, with its ids.


def _learned_like(num, bits, num_codes, seed):
  """`num` codes drawn from `num_codes` distinct ones, some far more often
  than others, as learned codes repeat."""
  rng = np.random.default_rng(seed)
  distinct = rng.integers(0, 2, (num_codes, bits))
  weights = rng.random(num_codes) ** 3 + 1e-3
  return distinct[rng.choice(num_codes, num, p=weights / weights.sum())]


def _build_distinct(path, database, bits, **settings):
  return index_lib.build(path, codes.pack(database), bits=bits,
                         fingerprint="f", backend="distinct",
                         settings=settings)


def _assert_equals_brute_force(index, database, queries, ks, radii):
  packed_queries = codes.pack(queries)
  for k in ks:
    ids, distances = index.search(packed_queries, k)
    want_ids, want_distances = metrics.retrieve(queries, database,
                                                min(k, len(database)))
    np.testing.assert_array_equal(ids, want_ids, err_msg=f"k={k}")
    np.testing.assert_array_equal(distances, want_distances,
                                  err_msg=f"k={k}")
  for radius in radii:
    _assert_same_rows(index.radius_search(packed_queries, radius),
                      _within(packed_queries, codes.pack(database), radius))


def test_group_keeps_each_code_once_with_its_ids_sorted():
  packed = np.array([[5], [3], [5], [9], [3], [5]], np.uint8)
  distinct, offsets, ids = distinct_backend.group(packed)
  # In the order of their lowest ids: 5 (id 0), 3 (id 1), 9 (id 3).
  np.testing.assert_array_equal(distinct, [[5], [3], [9]])
  np.testing.assert_array_equal(offsets, [0, 3, 5, 6])
  np.testing.assert_array_equal(ids, [0, 2, 5, 1, 4, 3])
  assert offsets.dtype == np.int64 and ids.dtype == np.int32
  # Two 64-bit words (72 bits): the words after the first split codes too.
  wide = np.zeros((3, 9), np.uint8)
  wide[1, 8] = 1
  distinct, offsets, ids = distinct_backend.group(wide)
  np.testing.assert_array_equal(distinct, wide[:2])
  np.testing.assert_array_equal(offsets, [0, 2, 3])
  np.testing.assert_array_equal(ids, [0, 2, 1])


@pytest.mark.parametrize("bits", [12, 32, 64, 5])
@pytest.mark.parametrize("radius_index", ["scan", "multi_hash"])
def test_distinct_equals_brute_force_on_learned_like_codes(tmp_path, bits,
                                                          radius_index):
  """12 bits are packed in 2 bytes, 5 in 1: the padding never counts."""
  database = _learned_like(3000, bits, 60, seed=bits)
  queries = np.concatenate([database[:5], _codes(20, bits, 7)])
  path = str(tmp_path / "index")
  manifest = _build_distinct(path, database, bits, radius=radius_index)
  settings = manifest["settings"]
  assert (settings["layout"], settings["radius"]) == ("distinct",
                                                      radius_index)
  assert settings["distinct_codes"] == len(np.unique(database, axis=0))
  largest = max(np.unique(database, axis=0, return_counts=True)[1])
  with index_lib.open_index(path) as index:
    assert isinstance(index.backend.ids, np.memmap)  # Opening reads no id.
    # k beyond the ids of the most common code, k = N, k > N.
    _assert_equals_brute_force(
        index, database, queries, ks=(1, 7, 100, largest + 1, 3000, 5000),
        radii=(0, 1, 2, bits // 2))


@pytest.mark.parametrize("bits", [12, 32, 64])
def test_distinct_layout_on_random_codes_equals_brute_force(tmp_path, bits):
  # max_fraction=1.0 keeps the distinct layout where nearly nothing repeats.
  database, queries = _codes(2000, bits, 0), _codes(30, bits, 1)
  path = str(tmp_path / "index")
  assert _build_distinct(path, database, bits, max_fraction=1.0)[
      "settings"]["layout"] == "distinct"
  with index_lib.open_index(path) as index:
    _assert_equals_brute_force(index, database, queries, ks=(1, 10, 2001),
                               radii=(0, 1, 2))


def test_ties_across_codes_at_the_kth_distance_keep_the_lowest_ids(tmp_path):
  # The query is 0000. Distance 0: ids 9, 10. Distance 1: the codes 1000
  # (ids 2, 7, 11), 0100 (ids 0, 5), 0010 (ids 3, 12), 0001 (id 1). Distance
  # 2: 1100 (ids 4, 6, 8). k = 6 cuts inside distance 1, whose ids come from
  # four codes: 9, 10, then 0, 1, 2, 3.
  strings = ["0100", "0001", "1000", "0010", "1100", "0100", "1100", "1000",
             "1100", "0000", "0000", "1000", "0010"]
  packed = codes.from_strings(strings, 4)
  path = str(tmp_path / "index")
  index_lib.build(path, packed, bits=4, fingerprint="f", backend="distinct",
                  settings={"max_fraction": 1.0})
  with index_lib.open_index(path) as index:
    ids, distances = index.search(codes.from_strings(["0000"], 4), 6)
    np.testing.assert_array_equal(ids, [[9, 10, 0, 1, 2, 3]])
    np.testing.assert_array_equal(distances, [[0, 0, 1, 1, 1, 1]])
    database = codes.unpack(packed, 4)
    _assert_equals_brute_force(index, database, database, ks=range(1, 14),
                               radii=(0, 1, 2, 4))


def test_distinct_falls_back_to_the_flat_layout_when_codes_barely_repeat(
    tmp_path):
  random_codes, queries = _codes(3000, 32, 0), _codes(20, 32, 1)
  path = str(tmp_path / "random")
  settings = _build_distinct(path, random_codes, 32)["settings"]
  assert settings["layout"] == "flat" and settings["max_fraction"] == 0.8
  assert sorted(os.listdir(path)) == ["codes.npy", "faiss.index",
                                      "index.json"]
  with index_lib.open_index(path) as index:
    assert isinstance(index.backend.codes, index_lib.FaissBackend)
    _assert_equals_brute_force(index, random_codes, queries, ks=(1, 50),
                               radii=(0, 2, 9))
  learned = _learned_like(3000, 32, 100, seed=0)
  settings = _build_distinct(path, learned, 32)["settings"]
  assert settings["layout"] == "distinct"
  assert settings["radius"] in ("scan", "multi_hash")  # Timed at build.
  assert sorted(os.listdir(path)) == ["codes.npy", "distinct.npy", "ids.npy",
                                      "index.json", "offsets.npy"]
  assert _build_distinct(path, learned, 32, max_fraction=0.0)[
      "settings"]["layout"] == "flat"


def test_distinct_returns_what_faiss_returns(tmp_path):
  """Larger learned-like codes: IndexBinaryFlat over all codes and the id
  tie-break (backend "faiss"), ids and distances."""
  database = _learned_like(20000, 32, 500, seed=3)
  queries = codes.pack(np.concatenate([database[:50], _codes(50, 32, 4)]))
  indexes = {}
  for backend in ("faiss", "distinct"):
    path = str(tmp_path / backend)
    index_lib.build(path, codes.pack(database), bits=32, fingerprint="f",
                    backend=backend)
    indexes[backend] = index_lib.open_index(path)
  for k in (10, 100, 1000):
    for got, want in zip(indexes["distinct"].search(queries, k),
                         indexes["faiss"].search(queries, k)):
      np.testing.assert_array_equal(got, want)
  for radius in (0, 1, 2, 3):
    _assert_same_rows(indexes["distinct"].radius_search(queries, radius),
                      indexes["faiss"].radius_search(queries, radius))


def test_distinct_expands_a_large_radius_search_in_batches(tmp_path,
                                                           monkeypatch):
  monkeypatch.setattr(distinct_backend, "_MAX_EXPANDED", 50)
  database = _learned_like(2000, 12, 30, seed=5)
  path = str(tmp_path / "index")
  _build_distinct(path, database, 12)
  with index_lib.open_index(path) as index:
    _assert_equals_brute_force(index, database, database[:40], ks=(),
                               radii=(0, 3))
    assert index.radius_search(np.zeros((0, 2), np.uint8), 1) == []
    ids, distances = index.search(np.zeros((0, 2), np.uint8), 5)
    assert ids.shape == distances.shape == (0, 5)


@pytest.mark.parametrize("backend, settings", [
    ("faiss", None), ("distinct", None), ("distinct", {"max_fraction": 0.0}),
    ("milvus", None)])
def test_every_index_file_is_0644(tmp_path, backend, settings):
  """index.json too: a service running as another user reads the index."""
  if backend == "milvus":
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
  old_umask = os.umask(0o022)
  try:
    path = str(tmp_path / "index")
    index_lib.build(path, codes.pack(_learned_like(500, 12, 20, 0)), bits=12,
                    fingerprint="f", backend=backend, settings=settings)
  finally:
    os.umask(old_umask)
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o755
  files = [os.path.join(root, name) for root, _, names in os.walk(path)
           for name in names if not name.startswith(".")]
  assert "index.json" in map(os.path.basename, files)
  modes = {os.path.relpath(f, path): oct(stat.S_IMODE(os.stat(f).st_mode))
           for f in files}
  assert set(modes.values()) == {"0o644"}, modes


@pytest.mark.parametrize("hashed", [False, True])
def test_distinct_on_many_small_tie_heavy_databases(hashed):
  """Random sizes, widths, k and radius, codes of skewed frequencies: every
  tie case of the k-th distance, against the brute-force ranking."""
  rng = np.random.default_rng(int(hashed))
  for _ in range(100):
    bits = int(rng.choice([3, 5, 8, 12, 20, 32]))
    count = int(rng.integers(1, 500))
    database = _learned_like(count, bits, int(rng.integers(1, 40)),
                             int(rng.integers(1 << 30)))
    queries = np.concatenate([database[:3], _codes(8, bits, count)])
    distinct, offsets, ids = distinct_backend.group(codes.pack(database))
    backend = distinct_backend.DistinctBackend(
        index_lib.FaissBackend(index_lib.FaissBackend.flat_index(distinct),
                               bits, hashed=hashed), count, offsets, ids)
    packed_queries = codes.pack(queries)
    for k in {1, int(rng.integers(1, count + 1)), count}:
      found = backend.search(packed_queries, k)
      for got, want in zip(found, metrics.retrieve(queries, database, k)):
        np.testing.assert_array_equal(got, want)
    radius = int(rng.integers(0, bits + 1))
    _assert_same_rows(backend.radius_search(packed_queries, radius),
                      _within(packed_queries, codes.pack(database), radius))
