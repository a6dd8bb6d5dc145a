"""The backend registry of dhe_tf.index: every entry has every piece.

A backend is one class behind dhe_tf.index.backend.Backend plus one line in
dhe_tf.index.BACKENDS; these tests fail when a registered backend lacks a
method, declares a setting the command line cannot express, or returns
other codes than a brute-force NumPy scan.

Importing dhe_tf.search defines its absl flags in the global FLAGS; no other
test imports an entry point in process, so the names cannot clash.
"""
# pylint: disable=protected-access

import importlib.util
import inspect
import os
import re

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from dhe_tf.core import codes
from dhe_tf import index as index_lib
from dhe_tf import search
from dhe_tf.core.errors import ConfigError
from dhe_tf.index import backend as backend_lib

FLAGS = flags.FLAGS
_NEEDS = {"milvus": ("pymilvus", "milvus_lite")}


def _skip_unless_installed(name):
  for module in _NEEDS.get(name, ()):
    if importlib.util.find_spec(module) is None:
      pytest.skip(f"backend {name} needs {module}")


def _brute_force(queries, database):
  """Hamming distances int64 [Q, N] of 0/1 codes, by comparing every bit."""
  return (queries[:, None, :] != database[None, :, :]).sum(-1).astype(np.int64)


def _top_k(distances, k):
  """(ids, distances) [Q, k] by (distance, id)."""
  ids = np.argsort(distances, axis=1, kind="stable")[:, :k]
  return ids, np.take_along_axis(distances, ids, axis=1)


@pytest.fixture
def parsed_flags():
  """dhe_tf.search's flags at their defaults, restored after the test."""
  if not FLAGS.is_parsed():
    FLAGS.mark_as_parsed()
  with flagsaver.flagsaver():
    yield


@pytest.mark.parametrize("name", list(index_lib.BACKENDS))
def test_registered_backend_implements_the_interface(name):
  backend = index_lib.BACKENDS[name]
  assert issubclass(backend, backend_lib.Backend)
  assert backend.name == name
  assert not inspect.isabstract(backend), backend.__abstractmethods__
  for method in ("write", "load", "drop"):
    assert isinstance(inspect.getattr_static(backend, method), classmethod), (
        f"{name}.{method} must be a classmethod")


@pytest.mark.parametrize("name", list(index_lib.BACKENDS))
def test_every_setting_is_typed_and_has_a_flag(name, parsed_flags):
  del parsed_flags  # Used for its set-up.
  backend = index_lib.BACKENDS[name]
  assert isinstance(backend.settings, tuple)
  names = [setting.name for setting in backend.settings]
  assert len(names) == len(set(names)), names
  for setting in backend.settings:
    assert isinstance(setting, backend_lib.Setting)
    assert setting.type in backend_lib.SETTING_TYPES, setting
    assert setting.help, setting
    if setting.default is not None:
      assert isinstance(setting.default, setting.type), setting
      assert setting.type is bool or not isinstance(setting.default, bool)
    if setting.choices:
      assert setting.default in setting.choices, setting
    flag = backend.flag_name(setting)
    assert flag in FLAGS, f"dhe_tf.search has no flag --{flag}"
    assert FLAGS[flag].default == setting.default, flag
  with flagsaver.flagsaver(backend=name):
    assert search._settings() == backend.resolve_settings({})


def test_flags_become_settings(parsed_flags):
  del parsed_flags  # Used for its set-up.
  with flagsaver.flagsaver(backend="milvus", milvus_index="BIN_IVF_FLAT",
                           milvus_nlist=64):
    assert search._settings() == {
        "uri": None, "index_type": "BIN_IVF_FLAT", "nlist": 64, "nprobe": 16}
  with flagsaver.flagsaver(backend="faiss"):
    assert search._settings() == {}
  with flagsaver.flagsaver(backend="distinct", distinct_max_fraction=0.25,
                           distinct_radius="scan"):
    assert search._settings() == {"max_fraction": 0.25, "radius": "scan"}


@pytest.mark.parametrize("name", list(index_lib.BACKENDS))
@pytest.mark.parametrize("repeating", [False, True])
def test_build_open_search_equals_brute_force(tmp_path, name, repeating):
  """Random codes, and codes that repeat as learned codes do (600 ids over
  40 codes: backend "distinct" keeps its distinct layout)."""
  _skip_unless_installed(name)
  rng = np.random.default_rng(0)
  bits = 20  # 3 bytes: FAISS pads to 4.
  database = rng.integers(0, 2, (600, bits), dtype=np.uint8)
  if repeating:
    database = database[rng.integers(0, 40, 600)]
  queries = np.concatenate([database[:3], rng.integers(0, 2, (7, bits),
                                                       dtype=np.uint8)])
  distances = _brute_force(queries, database)
  path = str(tmp_path / "index")
  manifest = index_lib.build(path, codes.pack(database), bits=bits,
                             fingerprint="f", backend=name)
  assert manifest["backend"] == name and manifest["count"] == 600
  with index_lib.open_index(path) as index:
    assert isinstance(index.backend, index_lib.BACKENDS[name])
    for k in (1, 25, 700):
      found = index.search(codes.pack(queries), k)
      want = _top_k(distances, min(k, 600))
      for got, expected in zip(found, want):
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected, err_msg=f"k={k}")
    for radius in (0, 4):
      rows = index.radius_search(codes.pack(queries), radius)
      assert len(rows) == len(queries)
      for row, (ids, found_distances) in zip(distances, rows):
        want_ids = np.flatnonzero(row <= radius)
        want_ids = want_ids[np.argsort(row[want_ids], kind="stable")]
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(found_distances, row[want_ids])


class _ScanBackend(backend_lib.Backend):
  """A whole backend in a few lines: a NumPy scan over scan.npy."""

  name = "scan"
  settings = (backend_lib.Setting("mode", "all", str, "which rows to scan.",
                                  choices=("all",)),
              backend_lib.Setting("chunk", 64, int, "queries per chunk."))
  dropped = []

  def __init__(self, bits, packed):
    self.bits, self.packed = bits, packed

  @classmethod
  def write(cls, directory, packed, bits, settings):
    np.save(os.path.join(directory, "scan.npy"), packed)
    return dict(settings, stored="scan.npy")

  @classmethod
  def load(cls, directory, manifest):
    return cls(manifest["bits"], np.load(os.path.join(
        directory, manifest["settings"]["stored"])))

  @classmethod
  def drop(cls, manifest):
    cls.dropped.append(manifest["fingerprint"])

  def _distances(self, queries):
    return _brute_force(codes.unpack(queries, self.bits),
                        codes.unpack(self.packed, self.bits))

  def search(self, queries, k):
    return _top_k(self._distances(queries), k)

  def radius_search(self, queries, radius):
    return [backend_lib.sorted_hits(np.flatnonzero(row <= radius),
                                    row[row <= radius])
            for row in self._distances(queries)]

  def close(self):
    pass


def test_a_new_backend_is_a_class_and_a_registry_line(tmp_path, monkeypatch):
  monkeypatch.setitem(index_lib.BACKENDS, "scan", _ScanBackend)
  monkeypatch.setattr(_ScanBackend, "dropped", [])
  test_registered_backend_implements_the_interface("scan")
  path = str(tmp_path / "index")
  database = np.random.default_rng(1).integers(0, 2, (50, 9), dtype=np.uint8)
  manifest = index_lib.build(path, codes.pack(database), bits=9,
                             fingerprint="old", backend="scan",
                             settings={"chunk": np.int64(8)})
  assert manifest["settings"] == {"mode": "all", "chunk": 8,
                                  "stored": "scan.npy"}
  with index_lib.open_index(path) as index:
    ids, distances = index.search(codes.pack(database[:2]), 3)
    np.testing.assert_array_equal(ids[:, 0], [0, 1])
    np.testing.assert_array_equal(distances[:, 0], [0, 0])
  # The replaced index's backend drops what it kept outside the directory.
  index_lib.build(path, codes.pack(database), bits=9, fingerprint="new",
                  backend="scan")
  assert _ScanBackend.dropped == ["old"]
  with pytest.raises(ConfigError, match=re.escape(
      "Unknown backend 'nope'. Available: faiss, milvus, distinct, scan")):
    index_lib.build(path, codes.pack(database), bits=9, fingerprint="f",
                    backend="nope")


@pytest.mark.parametrize("settings, message", [
    ({"colour": 1}, "Unknown setting 'colour' of backend 'scan'. "
                    "Available: mode, chunk"),
    ({"mode": "some"}, "Unknown scan_mode 'some'. Available: all"),
    ({"chunk": "8"}, "scan_chunk must be of type int. Received: "
                     "scan_chunk='8'"),
    ({"chunk": True}, "scan_chunk must be of type int. Received: "
                      "scan_chunk=True"),
])
def test_bad_settings_are_named(tmp_path, monkeypatch, settings, message):
  monkeypatch.setitem(index_lib.BACKENDS, "scan", _ScanBackend)
  with pytest.raises(ConfigError, match=re.escape(message)):
    index_lib.build(str(tmp_path / "index"), np.zeros((2, 1), np.uint8),
                    bits=8, fingerprint="f", backend="scan",
                    settings=settings)
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize("backend, settings, message", [
    ("distinct", {"radius": "hnsw"},
     "Unknown distinct_radius 'hnsw'. Available: auto, scan, multi_hash"),
    ("milvus", {"index_type": "HNSW"},
     "Unknown milvus_index 'HNSW'. Available: BIN_FLAT, BIN_IVF_FLAT"),
])
def test_bad_choice_of_a_registered_backend_is_named(tmp_path, backend,
                                                      settings, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    index_lib.build(str(tmp_path / "index"), np.zeros((2, 1), np.uint8),
                    bits=8, fingerprint="f", backend=backend,
                    settings=settings)
