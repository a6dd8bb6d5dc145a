"""An index's codes, sources and labels on disk, read only where asked.

    INDEX/codes.npy         uint8 [N, ceil(K/8)], the codes packed as
                            dhe_tf.core.codes.pack packs them
    INDEX/labels.npy        uint8 [N, ceil(C/8)]: each code's 0/1 labels
                            packed along the classes (np.packbits); absent
                            when C = 0
    INDEX/sources.bin       every source's UTF-8 bytes, back to back, in
                            the order they were written; absent when the
                            sources are the ids
    INDEX/source_spans.npy  int64 [N, 2]: the source of code i is
                            sources.bin[start:end]

Why: at 10^8 codes, sources (paths of ~40 bytes) and one-hot labels are
gigabytes; loading them whole made opening an index take minutes and hold
them all in memory. Here every array is memory-mapped: opening reads no row,
and a search reads the rows of the ids it returns (a page each). Labels are
bits, 8 classes a byte.

`Writer` takes the rows in any order, each once, in batches (the code shards
of dhe_tf.encode come in shard order, not id order), so a build holds one
batch of sources and labels at a time; the spans let the sources be
appended in the order they come.
"""

import os

import numpy as np

from dhe_tf.core.errors import ConfigError
from dhe_tf.core.errors import DamagedIndexError

CODES, LABELS = "codes.npy", "labels.npy"
SOURCES, SPANS = "sources.bin", "source_spans.npy"


def _create(path, shape, dtype):
  return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def utf8(sources):
  """(UTF-8 bytes of every source back to back, int64 [M] byte lengths).

  sources: str [M] (a list, or a NumPy array of str or of UTF-8 bytes),
  or a pyarrow string array (its buffers are used as they are).
  """
  if hasattr(sources, "buffers") and hasattr(sources, "type"):  # pyarrow
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    sources = sources.cast(pa.large_string())
    if sources.null_count:
      raise ConfigError("A source is missing (null).")
    _, offsets, data = sources.buffers()
    offsets = np.frombuffer(offsets, np.int64)[
        sources.offset:sources.offset + len(sources) + 1]
    return (memoryview(data)[offsets[0]:offsets[-1]] if len(sources) else
            b"", np.diff(offsets))
  sources = np.asarray(sources)
  if sources.dtype.kind != "S":
    sources = np.char.encode(sources.astype(str), "utf-8")
  if not sources.size or not sources.itemsize:
    return b"", np.zeros(len(sources), np.int64)
  lengths = np.char.str_len(sources).astype(np.int64)
  table = sources.view(np.uint8).reshape(len(sources), sources.itemsize)
  return (table[np.arange(sources.itemsize) < lengths[:, None]].tobytes(),
          lengths)


class Writer:
  """Writes the rows of a new index's store, in any order, each once.

  Attributes:
    codes: the codes.npy being written, a writable memmap uint8 [N, B].
  """

  def __init__(self, directory, count, num_bytes, num_classes,
               with_sources):
    """count: N; num_bytes: B = ceil(K/8); num_classes: C (0: no labels);
    with_sources: whether sources are written (else they are the ids)."""
    self.count = count
    self.num_classes = num_classes
    self.codes = _create(os.path.join(directory, CODES), (count, num_bytes),
                         np.uint8)
    self._labels = (_create(os.path.join(directory, LABELS),
                            (count, -(-num_classes // 8)), np.uint8)
                    if num_classes else None)
    self._spans = self._sources = None
    if with_sources:
      self._spans = _create(os.path.join(directory, SPANS), (count, 2),
                            np.int64)
      self._sources = open(os.path.join(directory, SOURCES), "wb")  # pylint: disable=consider-using-with
      self._written_bytes = 0
    self._written = np.zeros(count, bool)

  def write(self, rows, packed, sources=None, labels=None):
    """Stores codes (and their sources and labels) at rows `rows`.

    Args:
      rows: int [M], distinct positions in 0..N-1 not written before.
      packed: uint8 [M, B].
      sources: str [M] (with_sources only).
      labels: 0/1 [M, C] (when C > 0).

    Raises:
      ConfigError: rows out of range or written twice, or a missing part.
    """
    rows = np.asarray(rows, np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= self.count):
      raise ConfigError(f"Rows must lie in 0..{self.count - 1}. Received: "
                        f"{rows.min()}..{rows.max()}")
    if self._written[rows].any() or len(np.unique(rows)) != len(rows):
      raise ConfigError("A row of the index was written twice (repeated "
                        "ids).")
    self._written[rows] = True
    self.codes[rows] = packed
    if self._labels is not None:
      self._labels[rows] = np.packbits(np.asarray(labels) > 0, axis=1)
    if self._sources is not None:
      blob, lengths = utf8(sources)
      if len(lengths) != len(rows):
        raise ConfigError(f"{len(rows)} codes came with {len(lengths)} "
                          "sources.")
      ends = self._written_bytes + np.cumsum(lengths, dtype=np.int64)
      self._spans[rows, 1] = ends
      self._spans[rows, 0] = ends - lengths
      self._sources.write(blob)
      self._written_bytes += len(blob)

  def close(self):
    """Flushes every file.

    Raises:
      ConfigError: rows that were never written.
    """
    missing = int(self.count - np.count_nonzero(self._written))
    for array in (self.codes, self._labels, self._spans):
      if array is not None:
        array.flush()
    if self._sources is not None:
      self._sources.close()
    if missing:
      raise ConfigError(f"{missing} of the {self.count} codes of the index "
                        "were never written.")

  def abort(self):
    """Closes the files without checking (the build failed)."""
    if self._sources is not None:
      self._sources.close()


class Store:
  """The codes, sources and labels of an open index, memory-mapped.

  Attributes:
    packed: uint8 [N, ceil(K/8)], memory-mapped (read-only).
    num_classes: C.
  """

  def __init__(self, directory, count, num_classes):
    self.directory = directory
    self.num_classes = num_classes
    self.packed = self._array(CODES, count)
    self._labels = (self._array(LABELS, count) if num_classes else None)
    self._spans = self._blob = None
    if os.path.exists(os.path.join(directory, SPANS)):
      self._spans = self._array(SPANS, count)
      path = os.path.join(directory, SOURCES)
      self._blob = (np.memmap(path, np.uint8, "r") if os.path.getsize(path)
                    else np.zeros(0, np.uint8))

  def _array(self, name, count):
    path = os.path.join(self.directory, name)
    try:
      array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
      raise DamagedIndexError(f"The index file {path} is corrupt ({e}): "
                              "rebuild the index with `python -m "
                              "dhe_tf.search build`.") from e
    if len(array) != count:
      raise DamagedIndexError(f"The index file {path} holds {len(array)} "
                              f"rows, index.json says {count}: rebuild the "
                              "index with `python -m dhe_tf.search build`.")
    return array

  def __len__(self):
    return len(self.packed)

  def _check(self, ids):
    ids = np.asarray(ids, np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= len(self)):
      raise DamagedIndexError(
          f"The index at {self.directory} returned ids outside 0.."
          f"{len(self) - 1}: its files are damaged; verify it with "
          "`python -m dhe_tf.search verify`.")
    return ids

  def labels_of(self, ids):
    """uint8 [M, C] 0/1 labels of the codes `ids` (int [M])."""
    ids = self._check(ids)
    if self._labels is None:
      return np.zeros((len(ids), 0), np.uint8)
    return np.unpackbits(self._labels[ids], axis=1,
                         count=self.num_classes)

  def source(self, item):
    """Where code `item` came from; str(item) when the sources are ids."""
    item = int(self._check([item])[0])
    if self._spans is None:
      return str(item)
    start, end = (int(v) for v in self._spans[item])
    if not 0 <= start <= end <= len(self._blob):
      raise DamagedIndexError(
          f"The index file {os.path.join(self.directory, SPANS)} points "
          f"outside {SOURCES}: rebuild the index.")
    return bytes(self._blob[start:end]).decode("utf-8", "replace")
