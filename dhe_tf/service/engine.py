"""The search service's engine: a model and an index, loaded once, searched by
many threads; `python -m dhe_tf.serve` puts it behind HTTP (dhe_tf.service.http_api).

    upload ─ check (dhe_tf.service.uploads) ─ decode (one request, its thread)
      → pixels ─ Batcher: one model call for every request waiting ─→ bits
      → index search (read lock) → neighbors, by (distance, id)

The model is a run (`--model_dir`, read by dhe_tf.runs.run_dir.load_run) or its
exported SavedModel (`--export_dir`, dhe_tf.saved_model.exporter): both decode an image as
dhe_tf.model.inference.decode_image does, as `dhe_tf.search query` does, and the
neighbors come from dhe_tf.index.searcher.search_packed, the function behind
`dhe_tf.search query`, so the service answers exactly what the command
prints. The index is opened once and checked to come from the same model;
`reload` opens it again after `dhe_tf.search build` has replaced it, waiting
for the searches in flight, never dropping one.

Clients are told the names of the model and the index (their directories'
base names) and the model's fingerprint, never where their files are; the
full paths go to the log ("dhe_tf.service") when the service starts.
"""

import json
import logging
import os
import threading
import time

import numpy as np
import tensorflow as tf

from dhe_tf.service import batching
from dhe_tf.core import checks
from dhe_tf.core import codes as codes_lib
from dhe_tf import index as index_lib
from dhe_tf.model import inference
from dhe_tf.model import network as model_lib
from dhe_tf.runs import run_dir
from dhe_tf.index import searcher
from dhe_tf.service import uploads as service_images
from dhe_tf.core.errors import ConfigError
from dhe_tf.service.uploads import RequestError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 50_000_000
MAX_K = 1000
_LOG = logging.getLogger("dhe_tf.service")


class RunModel:
  """The encoder of a finished dhe_tf.train run (a run_dir.Run)."""

  def __init__(self, run):
    self.source = run.path
    self.name = run.name
    self.bits = run.bits
    self.fingerprint = run.fingerprint
    self.image_shape = inference.input_shape(run.model)
    self.center_crop = run.center_crop
    self.data_dir = run.config.data_dir
    # Image files are listed relative to the image root (default data_dir).
    self.image_root = run.config.image_root or run.config.data_dir
    encoder = model_lib.encoder(run.model)
    self._encode = tf.function(
        lambda pixels: encoder(tf.cast(pixels, tf.float32), training=False),
        input_signature=[tf.TensorSpec((None, *self.image_shape), tf.uint8)])

  def encode(self, pixels):
    """0/1 codes uint8 [N, K] of uint8 pixels [N, H, W, C]."""
    return codes_lib.binarize(self._encode(pixels))


class ExportedModel:
  """The `pixels_uint8` signature of a SavedModel of dhe_tf.export."""

  def __init__(self, export_dir):
    path = os.path.join(export_dir, "assets.extra", "dhe_tf.json")
    if not os.path.isfile(path):
      raise ConfigError(f"{path} does not exist: --export_dir must be a "
                        "version directory written by dhe_tf.export "
                        "(exported/dhe/N).")
    with open(path, encoding="utf-8") as f:
      description = json.load(f)
    if "center_crop" not in description:
      raise ConfigError(f"The export {export_dir} predates dhe_tf.serve (its "
                        "dhe_tf.json lacks center_crop): export the run "
                        "again.")
    self.source = export_dir
    # "dhe/3": the version alone ("3") would not tell exports apart.
    self.name = "/".join(os.path.normpath(export_dir).split(os.sep)[-2:])
    self.bits = description["bits"]
    self.fingerprint = description["fingerprint"]
    self.center_crop = description["center_crop"]
    self.data_dir = self.image_root = None
    self._signature = tf.saved_model.load(export_dir).signatures[
        "pixels_uint8"]
    spec = self._signature.structured_input_signature[1]["images"]
    self.image_shape = tuple(int(side) for side in spec.shape[1:])

  def encode(self, pixels):
    return self._signature(images=tf.constant(pixels))["bits"].numpy()


def _one_thread_per_faiss_search():
  """Each request searches with one thread: concurrency comes from the
  requests. FAISS's OpenMP threads, spinning while they wait on a busy CPU,
  made one query over 100 codes take 24 ms instead of 0.06 ms (measured on
  2 cores running other work)."""
  import faiss  # pylint: disable=g-import-not-at-top
  faiss.omp_set_num_threads(1)


def load_model(*, model_dir=None, export_dir=None):
  if bool(model_dir) == bool(export_dir):
    raise ConfigError("Give the model as --model_dir (a dhe_tf.train run) or "
                      "as --export_dir (a dhe_tf.export version), one of "
                      "them.")
  if model_dir:
    return RunModel(run_dir.load_run(model_dir))
  return ExportedModel(export_dir)


def check_limits(*, max_k, max_upload_bytes, max_pixels, max_batch):
  for name, value in (("max_k", max_k), ("max_upload_bytes", max_upload_bytes),
                      ("max_pixels", max_pixels), ("max_batch", max_batch)):
    checks.positive_int(name, value)


class Service:
  """A model and an index, searched by many threads at once.

  Args:
    index_path: an index of dhe_tf.search build, made by this model.
    model_dir / export_dir: the model (one of them); model_dir may be the
      dhe_tf.runs.run_dir.Run read from it.
    data_dir, image_root: where the indexed images are, for thumbnails
      (default: the run's own).
    max_k: the largest k, and the most results a radius search returns.
    max_upload_bytes, max_pixels: the largest image accepted.
    max_batch: the most images per model call.
    remote_reload: whether clients beyond loopback may reload the index over
      HTTP (POST /v1/reload, dhe_tf.service.http_api); the engine keeps it
      with the other settings of the service and does not use it itself.

  Raises:
    ConfigError: a bad model or index, or an index of another model.
  """

  def __init__(self, index_path, *, model_dir=None, export_dir=None,
               data_dir=None, image_root=None, max_k=MAX_K,
               max_upload_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS,
               max_batch=64, remote_reload=False):
    check_limits(max_k=max_k, max_upload_bytes=max_upload_bytes,
                 max_pixels=max_pixels, max_batch=max_batch)
    self.index_path = index_path
    self.index_name = os.path.basename(os.path.normpath(index_path))
    self.max_k = max_k
    self.max_upload_bytes = max_upload_bytes
    self.max_pixels = max_pixels
    self.remote_reload = bool(remote_reload)
    self.model = load_model(model_dir=model_dir, export_dir=export_dir)
    self.thumbnails = service_images.Thumbnails(
        data_dir=data_dir or self.model.data_dir,
        image_root=image_root or self.model.image_root, max_pixels=max_pixels)
    self._lock = batching.ReadWriteLock()
    self._reloading = threading.Lock()
    _one_thread_per_faiss_search()
    self._index = self._open()
    self.loaded_at = time.time()
    _LOG.info("Serving the index %s (%d codes) with the model %s",
              os.path.abspath(index_path), len(self._index),
              os.path.abspath(self.model.source))
    self._decode = tf.function(
        lambda contents: inference.decode_image(
            contents, self.model.image_shape,
            center_crop=self.model.center_crop),
        input_signature=[tf.TensorSpec([], tf.string)])
    self.batcher = batching.Batcher(
        lambda images: list(self.model.encode(np.stack(images))),
        max_batch=max_batch, name="dhe_tf-encoder")

  def _check(self, manifest):
    checks.same_model(made=f"the index at {self.index_path} was built",
                      bits=manifest["bits"],
                      fingerprint=manifest["fingerprint"],
                      model=f"the model of {self.model.source}",
                      model_bits=self.model.bits,
                      model_fingerprint=self.model.fingerprint)

  def _open(self):
    self._check(index_lib.read_manifest(self.index_path))
    return index_lib.open_index(self.index_path)

  def reload(self):
    """Opens the index at index_path again (after a rebuild).

    The new index is verified (checksums, model) before the old one is let
    go; a damaged or mismatched one raises ConfigError and the old one goes
    on serving. Searches in flight finish on the old index; those that
    arrive during the swap wait for the new one.

    Returns:
      info() of the new index.
    """
    with self._reloading:
      self._check(index_lib.read_manifest(self.index_path))
      with self._lock.write():
        # Closed before the new one opens: a Milvus Lite database at the same
        # path must be released first.
        if self._index is not None:
          self._index.close()
        self._index = None
        self._index = index_lib.open_index(self.index_path)
        self.loaded_at = time.time()
      _LOG.info("Reloaded %s: %d codes", self.index_path, len(self._index))
      return self.info()

  @property
  def loaded(self):
    """Whether an index is open: a reload that fails after letting the old
    one go (it is closed before the new one opens) leaves none."""
    return self._index is not None

  def _current(self):
    if self._index is None:
      # The index's name, not its path: clients never learn where files are.
      raise RequestError(f"No index is loaded: rebuild {self.index_name} and "
                         "reload.", 503)
    return self._index

  def info(self):
    with self._lock.read():
      index = self._current()
      return {"bits": self.model.bits, "fingerprint": self.model.fingerprint,
              "model": self.model.name, "index": self.index_name,
              "backend": index.backend.name, "count": len(index),
              "class_names": list(index.class_names), "max_k": self.max_k,
              "max_upload_bytes": self.max_upload_bytes,
              "max_pixels": self.max_pixels, "loaded_at": self.loaded_at}

  def _mode(self, k, radius):
    if radius is None:
      k = 10 if k is None else k
      checks.positive_int("k", k)
      if k > self.max_k:
        raise RequestError(f"k must be at most {self.max_k} (--max_k). "
                           f"Received: k={k}")
      return {"k": int(k)}
    if k is not None:
      raise RequestError("Give k or radius, not both.")
    checks.non_negative_int("radius", radius)
    return {"radius": int(radius)}

  def encode_image(self, data):
    """0/1 code uint8 [K] of an uploaded image (raises RequestError)."""
    service_images.check_upload(data, max_bytes=self.max_upload_bytes,
                                max_pixels=self.max_pixels)
    try:
      pixels = self._decode(tf.constant(data)).numpy()
    except tf.errors.OpError as e:
      raise RequestError("Not an image the model can read (truncated or "
                         f"corrupt): {checks.op_error_text(e)}") from e
    return self.batcher(pixels)

  def search(self, *, image=None, code=None, k=None, radius=None):
    """Searches for an uploaded image's bytes or a code string.

    Returns:
      {"bits": the query's code as 0/1 text, "k" or "radius", "results":
      [{"rank", "id", "distance", "source", "labels"}] by (distance, id),
      "truncated": whether a radius search found more than max_k,
      "took_ms": the time of encoding and search}.
    """
    start = time.perf_counter()
    mode = self._mode(k, radius)
    if (image is None) == (code is None):
      raise RequestError("Give an image or a code, one of them.")
    if code is not None:
      if not isinstance(code, str):
        raise RequestError(f"A code must be a string of 0 and 1. "
                           f"Received: code={code!r}")
      packed = codes_lib.from_strings([code], self.model.bits)
    else:
      packed = codes_lib.pack(self.encode_image(image)[None])
    with self._lock.read():
      index = self._current()
      (results,) = searcher.search_packed(index, packed, **mode)
    truncated = len(results) > self.max_k
    return {"bits": codes_lib.to_strings(packed, self.model.bits)[0],
            **mode, "results": results[:self.max_k], "truncated": truncated,
            "took_ms": round(1000 * (time.perf_counter() - start), 3)}

  def image(self, item):
    """PNG bytes of the thumbnail of indexed code `item`."""
    with self._lock.read():
      index = self._current()
      if not 0 <= item < len(index):
        raise RequestError(f"Unknown id {item}: the index holds ids 0 to "
                           f"{len(index) - 1}.", 404)
      source = index.source(item)
    return self.thumbnails.png(source)

  def close(self):
    self.batcher.close()
    with self._lock.write():
      if self._index is not None:
        self._index.close()
        self._index = None
