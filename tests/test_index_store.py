"""dhe_tf.index.store and Builder: rows streamed in any order, read back by id;
open checks sizes and samples, `verify` reads every byte."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dhe_tf import index as index_lib
from dhe_tf.core import codes as codes_lib
from dhe_tf.core.errors import ConfigError
from dhe_tf.core.errors import DamagedIndexError
from dhe_tf.encoding import shards
from dhe_tf.index import checksums
from dhe_tf.index import searcher
from dhe_tf.index import store

_NAMES = tuple(f"c{i}" for i in range(11))  # 11 classes: 2 bytes of bits.


def _data(count, bits=12, seed=0):
  rng = np.random.default_rng(seed)
  packed = codes_lib.pack(rng.integers(0, 2, (count, bits)))
  labels = rng.integers(0, 2, (count, len(_NAMES))).astype(np.uint8)
  sources = np.array([f"img/{i}-é.png" if i % 3 else "" for i in range(count)])
  return packed, labels, sources


def test_rows_streamed_in_any_order_read_back_by_id(tmp_path):
  packed, labels, sources = _data(1000)
  order = np.random.default_rng(1).permutation(1000)
  path = str(tmp_path / "index")
  with index_lib.Builder(path, count=1000, bits=12, fingerprint="f",
                         class_names=_NAMES, with_sources=True,
                         backend="distinct") as builder:
    for rows in np.array_split(order, 7):
      builder.write(rows, packed[rows], pa.array(sources[rows]),
                    labels[rows])
  reference = str(tmp_path / "reference")
  index_lib.build(reference, packed, bits=12, fingerprint="f",
                  sources=sources, labels=labels, class_names=_NAMES)
  with index_lib.open_index(path) as index, index_lib.open_index(
      reference) as expected:
    np.testing.assert_array_equal(index.packed, packed)
    ids = np.array([999, 0, 17, 3])
    np.testing.assert_array_equal(index.labels_of(ids), labels[ids])
    assert [index.source(i) for i in ids] == list(sources[ids])
    assert [expected.source(i) for i in ids] == list(sources[ids])
    for found, want in zip(index.search(packed[:20], 15),
                           expected.search(packed[:20], 15)):
      np.testing.assert_array_equal(found, want)
  # Labels are bits: 11 classes take 2 bytes a code.
  assert np.load(os.path.join(path, store.LABELS)).shape == (1000, 2)


def test_an_index_without_sources_or_labels_names_codes_by_id(tmp_path):
  packed, _, _ = _data(10)
  path = str(tmp_path / "index")
  index_lib.build(path, packed, bits=12, fingerprint="f")
  assert sorted(os.listdir(path)) == ["codes.npy", "faiss.index",
                                      "index.json"]
  with index_lib.open_index(path) as index:
    assert index.source(7) == "7"
    assert index.labels_of([1, 2]).shape == (2, 0)


@pytest.mark.parametrize("rows, message", [
    ([0, 1, 1], "written twice"), ([0, 5], "Rows must lie in 0..3"),
    ([0, 1], "2 of the 4 codes of the index were never written")])
def test_bad_rows_leave_nothing_and_keep_the_old_index(tmp_path, rows,
                                                       message):
  packed, labels, sources = _data(4)
  path = str(tmp_path / "index")
  index_lib.build(path, packed, bits=12, fingerprint="old")
  before = sorted(os.listdir(tmp_path))
  with pytest.raises(ConfigError, match=message):
    with index_lib.Builder(path, count=4, bits=12, fingerprint="new",
                           class_names=_NAMES, with_sources=True) as builder:
      rows = np.array(rows)
      builder.write(rows, packed[rows % 4], sources[rows % 4],
                    labels[rows % 4])
  assert sorted(os.listdir(tmp_path)) == before
  with index_lib.open_index(path) as index:
    assert index.fingerprint == "old"


def _large_index(tmp_path, monkeypatch):
  """An index whose codes.npy counts as large (sampled at open)."""
  monkeypatch.setattr(checksums, "SAMPLE_ABOVE", 1 << 16)
  monkeypatch.setattr(checksums, "_BLOCK", 1 << 10)  # 64 KiB of 600 KB.
  packed, labels, sources = _data(300_000, bits=16)
  path = str(tmp_path / "index")
  index_lib.build(path, packed, bits=16, fingerprint="f", sources=sources,
                  labels=labels, class_names=_NAMES)
  files = json.load(open(os.path.join(path, "index.json")))["files"]
  assert "sample_sha256" in files["codes.npy"]
  return path, os.path.join(path, "codes.npy")


def _flip(path, offset):
  with open(path, "r+b") as f:
    f.seek(offset)
    byte = f.read(1)
    f.seek(offset)
    f.write(bytes([byte[0] ^ 1]))


def test_open_samples_large_files_and_verify_reads_every_byte(
    tmp_path, monkeypatch):
  path, codes_file = _large_index(tmp_path, monkeypatch)
  # A byte between two sampled blocks: open passes, verify names the file.
  _flip(codes_file, 5_000)
  index_lib.open_index(path).close()
  with pytest.raises(DamagedIndexError, match=(
      f"The index file {codes_file} does not match its checksum")):
    index_lib.open_index(path, verify="full")
  with pytest.raises(DamagedIndexError, match="codes.npy does not match"):
    searcher.verify_index(path)
  _flip(codes_file, 5_000)
  assert "every byte matches" in searcher.verify_index(path)
  # The first block is sampled (a header overwritten), and so is the last.
  for offset in (10, os.path.getsize(codes_file) - 1):
    _flip(codes_file, offset)
    with pytest.raises(DamagedIndexError, match="codes.npy does not match"):
      index_lib.open_index(path)
    _flip(codes_file, offset)


def test_a_file_of_another_size_is_named_at_open(tmp_path, monkeypatch):
  path, codes_file = _large_index(tmp_path, monkeypatch)
  with open(codes_file, "ab") as f:
    f.write(b"\0")
  with pytest.raises(DamagedIndexError, match="codes.npy is longer than"):
    index_lib.open_index(path)


def test_ids_out_of_range_are_named_not_crashed_on(tmp_path):
  packed, labels, sources = _data(50)
  path = str(tmp_path / "index")
  index_lib.build(path, packed, bits=12, fingerprint="f", sources=sources,
                  labels=labels, class_names=_NAMES)
  with index_lib.open_index(path) as index:
    with pytest.raises(DamagedIndexError, match="ids outside 0..49"):
      index.labels_of([3, 50])
    with pytest.raises(DamagedIndexError, match="ids outside 0..49"):
      index.source(-1)


def _write_shards(directory, ids, packed, sources, labels, parts):
  """Code shards as dhe_tf.encode writes them, rows split over `parts`."""
  os.makedirs(directory)
  listed = []
  for number, rows in enumerate(np.array_split(np.arange(len(ids)), parts)):
    name = f"codes-{number:05d}-of-{parts:05d}.parquet"
    pq.write_table(pa.table({
        "id": pa.array(ids[rows], pa.int64()),
        "source": pa.array(sources[rows]),
        "code": pa.array([row.tobytes() for row in packed[rows]],
                         pa.binary()),
        "labels": pa.array([list(row) for row in labels[rows]],
                           pa.list_(pa.uint8()))}, schema=shards.schema()),
                   os.path.join(directory, name))
    listed.append({"file": name, "rows": len(rows)})
  with open(os.path.join(directory, shards.MANIFEST), "w") as f:
    json.dump({"format": shards.FORMAT, "bits": 12, "fingerprint": "f",
               "count": len(ids), "rejects": 0, "class_names": list(_NAMES),
               "shards": listed, "reject_files": []}, f)


def test_shards_out_of_id_order_index_in_id_order(tmp_path):
  packed, labels, sources = _data(500)
  ids = np.random.default_rng(2).permutation(500) * 7 + 2**32
  codes_dir = str(tmp_path / "codes")
  _write_shards(codes_dir, ids, packed, sources, labels, parts=4)
  path = str(tmp_path / "index")
  searcher.build_index(None, path, from_codes=codes_dir, backend="distinct")
  order = np.argsort(ids)
  with index_lib.open_index(path) as index:
    np.testing.assert_array_equal(index.packed, packed[order])
    np.testing.assert_array_equal(index.labels_of(np.arange(500)),
                                  labels[order])
    assert [index.source(i) for i in range(5)] == list(sources[order][:5])
  _, read_ids, read_sources, read_packed, read_labels = shards.read_codes(
      codes_dir)
  np.testing.assert_array_equal(read_ids, ids[order])
  np.testing.assert_array_equal(read_packed, packed[order])
  np.testing.assert_array_equal(read_labels, labels[order])
  assert list(read_sources) == list(sources[order])


def test_code_shards_move_to_milvus_without_encoding(tmp_path):
  pytest.importorskip("pymilvus")
  pytest.importorskip("milvus_lite")
  packed, labels, sources = _data(300)
  ids = np.random.default_rng(3).permutation(300)
  codes_dir = str(tmp_path / "codes")
  _write_shards(codes_dir, ids, packed, sources, labels, parts=3)
  # As `python -m dhe_tf.search build --from_codes=CODES --backend=milvus
  # --milvus_uri=...` does; a server's http:// URI takes the same path.
  paths = {}
  for backend, settings in (("milvus", {"uri": str(tmp_path / "m.db")}),
                            ("faiss", None)):
    paths[backend] = str(tmp_path / backend)
    searcher.build_index(None, paths[backend], from_codes=codes_dir,
                         backend=backend, settings=settings)
  found = {backend: searcher.query_index(path, codes=["0" * 12, "1" * 12],
                                         k=7)
           for backend, path in paths.items()}
  assert found["milvus"]["results"] == found["faiss"]["results"]
