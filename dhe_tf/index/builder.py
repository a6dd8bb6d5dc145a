"""Building an index: codes streamed in, written, indexed, renamed into place.

The directory is built under a temporary name next to its final path and
renamed into place, so a failed build never leaves a partial index (and
never touches the index already there). `Builder` takes the codes in
batches, in any order (the code shards of dhe_tf.encode come in shard order);
`build` is the same from arrays in memory.
"""

import os
import shutil
import tempfile

import numpy as np

from dhe_tf.core import checks
from dhe_tf.core import codes as codes_lib
from dhe_tf.core.errors import ConfigError
from dhe_tf.index import checksums
from dhe_tf.index import store
from dhe_tf.index.registry import BACKENDS
from dhe_tf.index.registry import DEFAULT_BACKEND
from dhe_tf.index.registry import FORMAT
from dhe_tf.index.registry import check_backend
from dhe_tf.runs import run_dir

_MANIFEST = checksums.MANIFEST
# Codes a build from memory writes at a time.
_BATCH = 1 << 20


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


class Builder:
  """Builds an index by streaming its codes in, in batches, in any order.

  A build holds one batch of sources and labels at a time; the codes are
  written to INDEX/codes.npy (memory-mapped) and the backend indexes them
  when the builder closes. On an exception inside the `with`, nothing is
  left behind and an index already at `path` is untouched.

      with Builder(path, count=N, bits=K, fingerprint=f) as builder:
        for rows, packed, sources, labels in batches:
          builder.write(rows, packed, sources, labels)
      builder.manifest   # what INDEX/index.json holds

  Args:
    path: the index directory. An existing index there is replaced only
      once the new one is complete; any other existing path is refused.
    count: N ≥ 1, the number of codes; each row 0..N-1 is written once.
    bits: K.
    fingerprint: identifies the model that made the codes (see
      dhe_tf.model.inference.model_fingerprint); queries from another model
      are refused.
    class_names: names of the C label columns (() without labels).
    with_sources: whether `write` gets sources (else a code's source is its
      id).
    backend: a name in BACKENDS.
    settings: dict of the backend's settings (its `settings` declare them;
      a missing or None one takes its default). milvus: "uri" (default:
      INDEX/milvus.db, Milvus Lite), "index_type", "nlist", "nprobe".
  """

  def __init__(self, path, *, count, bits, fingerprint, class_names=(),
               with_sources=False, backend=DEFAULT_BACKEND,
               settings=None):
    check_backend(backend)
    self.bits = checks.positive_int("bits", bits)
    self.backend_class = BACKENDS[backend]
    self.settings = self.backend_class.resolve_settings(settings)
    if count < 1:
      raise ConfigError("An index needs at least one code. Received: 0 codes")
    if os.path.lexists(path) and not _is_index(path):
      raise ConfigError(f"{path} exists and is not a dhe_tf index: choose "
                        "another --index path.")
    self.path, self.count, self.fingerprint = path, int(count), fingerprint
    self.class_names = list(class_names)
    self.manifest = None
    self._tmp = self._writer = None
    self._with_sources = with_sources

  def __enter__(self):
    parent = os.path.dirname(os.path.abspath(self.path))
    self._created = _create(parent, f"index={self.path}")
    self._tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.path)}"
                                 ".tmp-", dir=parent)
    try:
      self._writer = store.Writer(
          self._tmp, self.count, codes_lib.num_bytes(self.bits),
          len(self.class_names), self._with_sources)
    except BaseException:
      self._abort()
      raise
    return self

  def write(self, rows, packed, sources=None, labels=None):
    """Stores codes at rows `rows` (see dhe_tf.index.store.Writer.write):
    packed uint8 [M, ceil(K/8)] checked as dhe_tf.core.codes.pack packs
    them, sources str [M], labels 0/1 [M, C]."""
    packed = checks.packed_codes(packed, self.bits)
    if len(packed) != len(rows) or (
        labels is not None and len(labels) != len(rows)):
      raise ConfigError(f"sources and labels need one row per code. "
                        f"Received: {len(packed)} codes for {len(rows)} rows"
                        f", {'no' if labels is None else len(labels)} labels")
    if self.class_names and (labels is None or np.shape(labels)[1] != len(
        self.class_names)):
      raise ConfigError(f"labels have {np.shape(labels)[1:] or 'no'} "
                        f"columns but {len(self.class_names)} class names "
                        "were given.")
    self._writer.write(rows, packed, sources, labels)

  def _abort(self):
    if self._writer is not None:
      self._writer.abort()
    shutil.rmtree(self._tmp, ignore_errors=True)
    run_dir.remove_created(self._created)

  def __exit__(self, kind, value, traceback):
    if kind is not None:
      self._abort()
      return False
    try:
      self._writer.close()
      recorded = self.backend_class.write(self._tmp, self._writer.codes,
                                          self.bits, self.settings)
      self._writer = None
      self.manifest = dict(
          format=FORMAT, bits=self.bits, count=self.count,
          backend=self.backend_class.name, fingerprint=self.fingerprint,
          class_names=self.class_names, settings=recorded,
          files=checksums.record(self._tmp))
      run_dir.write_json(os.path.join(self._tmp, _MANIFEST), self.manifest)
      os.chmod(self._tmp, 0o755)
      replaced = _install(self._tmp, self.path)
    except BaseException:
      self._abort()
      raise
    if replaced and replaced.get("backend") in BACKENDS:
      BACKENDS[replaced["backend"]].drop(replaced)
    return False


def build(path, packed, *, bits, fingerprint, sources=None, labels=None,
          class_names=(), backend=DEFAULT_BACKEND, settings=None):
  """Builds the index at `path` (replacing an index there) from codes in
  memory; `Builder` streams them instead.

  Args:
    path, bits, fingerprint, class_names, backend, settings: as `Builder`.
    packed: uint8 [N, ceil(K/8)], codes packed as dhe_tf.core.codes.pack.
    sources: str [N], where each code comes from (default: its id).
    labels: 0/1 [N, C], or None.

  Returns:
    The manifest written to INDEX/index.json.
  """
  packed = checks.packed_codes(packed, checks.positive_int("bits", bits))
  for name, part in (("sources", sources), ("labels", labels)):
    if part is not None and len(part) != len(packed):
      raise ConfigError(f"sources and labels need one row per code. "
                        f"Received: {len(packed)} codes, {len(part)} {name}")
  if labels is not None and np.shape(labels)[1] != len(class_names):
    raise ConfigError(f"labels have {np.shape(labels)[1]} columns but "
                      f"{len(class_names)} class names were given.")
  if labels is not None and not len(class_names):
    labels = None
  with Builder(path, count=len(packed), bits=bits, fingerprint=fingerprint,
               class_names=class_names, with_sources=sources is not None,
               backend=backend, settings=settings) as builder:
    for start in range(0, len(packed), _BATCH):
      part = slice(start, start + _BATCH)
      builder.write(np.arange(start, min(start + _BATCH, len(packed))),
                    packed[part], None if sources is None else sources[part],
                    None if labels is None else labels[part])
  return builder.manifest
