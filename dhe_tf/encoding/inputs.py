"""The inputs of dhe_tf.encoding.pipeline: planned here, read on the workers.

`plan` turns an input into work items of up to CHUNK images, each with the
id of its first image (one pass over an image list, one match of a glob);
`ReadImages` reads a work item's images on a worker and checks their headers
as training's image files are checked (dhe_tf.data.image_checks.read_header:
a format TensorFlow does not decode, too many or too few pixels, a corrupt
header are rejects, named, never decoded). Ids are positions in the input
(dhe_tf.encoding.shards).

An image list holds one image a line, `path l0 … lC-1`, its labels 0/1
optional (the NUS-WIDE lists of dhe_tf.data.image_list); a relative path is
taken from --image_root, by default the list's folder. A folder stands for
its image files (dhe_tf.data.folders.IMAGE_EXTENSIONS), a glob for every file
it matches, sorted. TFRecord files hold tf.train.Example records:
"image/encoded" (bytes), optionally "image/source" (bytes) and
"image/labels" (int64 0/1); they are read through TensorFlow's filesystems,
everything else through Beam's.
"""

import os
import posixpath

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from dhe_tf.core import checks
from dhe_tf.encoding import shards as code_shards
from dhe_tf.data import folders
from dhe_tf.data import image_checks
from dhe_tf.core.errors import ConfigError

NAMESPACE = "dhe_tf.encode"
INPUT_FORMATS = ("auto", "list", "files", "tfrecord")
LIST_SUFFIXES = (".txt", ".list", ".lst")
CHUNK = 1000  # Images per work item.
TFRECORD_STRIDE = 2 ** 32  # TFRecord ids: file rank × stride + record.
REJECTS = "rejects"
RAW = CompressionTypes.UNCOMPRESSED


def input_format(spec, requested="auto"):
  """"list", "files" or "tfrecord": `requested`, or guessed from `spec`."""
  if requested not in INPUT_FORMATS:
    raise ConfigError(f"Unknown input format {requested!r}. Available: "
                      f"{', '.join(INPUT_FORMATS)}")
  if requested != "auto":
    return requested
  name = posixpath.basename(spec.rstrip("/")).lower()
  if ".tfrecord" in name or name.endswith(".tfr"):
    return "tfrecord"
  return "list" if name.endswith(LIST_SUFFIXES) else "files"


def join(directory, name):
  return code_shards.join(directory, name)


def matches(pattern):
  """Sorted paths matching a glob, through Beam's filesystems."""
  found = FileSystems.match([pattern])[0].metadata_list
  return sorted(meta.path for meta in found)


def _plan_list(list_path, image_root):
  """Work items ("list", list, byte offset, first id, count, root) and the
  number of labels, from one pass over the list."""
  if not FileSystems.exists(list_path):
    raise ConfigError(f"Image list not found: {list_path}")
  root = image_root or FileSystems.split(list_path)[0]
  items, offset, first, count, start, num_labels = [], 0, 0, 0, 0, None
  with FileSystems.open(list_path, compression_type=RAW) as f:
    for line in f:
      fields = line.split()
      if fields:
        if num_labels is None:
          num_labels = len(fields) - 1
        if not count:
          start = offset
        count += 1
        if count == CHUNK:
          items.append(("list", list_path, start, first, count, root))
          first, count = first + count, 0
      offset += len(line)
  if count:
    items.append(("list", list_path, start, first, count, root))
  if not items:
    raise ConfigError(f"Image list {list_path} is empty.")
  return items, num_labels


def _plan_files(spec):
  """Work items ("files", paths, first id): the images of a folder (by
  extension) or every file a glob matches, sorted."""
  if os.path.isdir(spec) or ("://" in spec and spec.endswith("/")):
    paths = [path for path in matches(join(spec, "*"))
             if path.lower().endswith(folders.IMAGE_EXTENSIONS)]
  else:
    paths = matches(spec)
  if not paths:
    raise ConfigError(f"No image files at {spec}.")
  return [("files", tuple(paths[i:i + CHUNK]), i)
          for i in range(0, len(paths), CHUNK)], 0


def _tfrecord_labels(path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for record in tf.data.TFRecordDataset(path).take(1):
    example = tf.train.Example.FromString(record.numpy())
    return len(example.features.feature["image/labels"].int64_list.value)
  return 0


def _plan_tfrecord(spec):
  paths = matches(spec)
  if not paths:
    raise ConfigError(f"No TFRecord files match {spec}.")
  return ([("tfrecord", path, rank) for rank, path in enumerate(paths)],
          _tfrecord_labels(paths[0]))


def plan(spec, *, input_format_name="auto", image_root=None):
  """(work items, number of labels) of an input, see the module docstring."""
  kind = input_format(spec, input_format_name)
  if kind == "list":
    return _plan_list(spec, image_root)
  if kind == "tfrecord":
    return _plan_tfrecord(spec)
  return _plan_files(spec)


def _resolve(root, path):
  if "://" in path or os.path.isabs(path):
    return path
  return join(root, path)


def reject(record_id, source, reason, counter):
  Metrics.counter(NAMESPACE, "images_rejected").inc()
  Metrics.counter(NAMESPACE, f"rejected_{counter}").inc()
  return beam.pvalue.TaggedOutput(
      REJECTS, {"id": int(record_id), "source": source, "reason": reason})


class ReadImages(beam.DoFn):
  """Work item → (id, source, labels, bytes) per image; the rest rejected."""

  def __init__(self, num_labels):
    super().__init__()
    self._num_labels = num_labels

  def _entries(self, item):
    if item[0] == "files":
      _, paths, first = item
      for n, path in enumerate(paths):
        yield first + n, path, []
      return
    _, list_path, start, first, count, root = item
    with FileSystems.open(list_path, compression_type=RAW) as f:
      f.seek(start)
      n = 0
      while n < count:
        line = f.readline()
        if not line:
          return
        fields = line.decode("utf-8").split()
        if fields:
          yield first + n, _resolve(root, fields[0]), fields[1:]
          n += 1

  def _records(self, item):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    _, path, rank = item
    n = -1
    try:
      for n, record in enumerate(tf.data.TFRecordDataset(path)):
        example = tf.train.Example.FromString(record.numpy())
        features = example.features.feature
        source = features["image/source"].bytes_list.value
        contents = features["image/encoded"].bytes_list.value
        yield (rank * TFRECORD_STRIDE + n,
               source[0].decode("utf-8") if source else f"{path}#{n}",
               [str(v) for v in features["image/labels"].int64_list.value],
               contents[0] if contents else None)
    except tf.errors.OpError as e:
      yield (rank * TFRECORD_STRIDE + n + 1, f"{path}#{n + 1}", None,
             f"cannot read TFRecord {path} past record {n}: "
             f"{checks.op_error_text(e)}")

  def process(self, item):
    if item[0] == "tfrecord":
      entries = self._records(item)
    else:
      entries = ((i, source, labels, None) for i, source, labels in
                 self._entries(item))
    for record_id, source, labels, contents in entries:
      if labels is None:  # A TFRecord file that broke off: its reason.
        yield reject(record_id, source, contents, "unreadable")
        continue
      if (len(labels) != self._num_labels or
          set(labels) - {"0", "1"}):
        yield reject(record_id, source,
                      f"expected {self._num_labels} labels of 0 or 1, found "
                      f"{' '.join(labels) or 'none'}", "bad_labels")
        continue
      if contents is None and item[0] != "tfrecord":
        try:
          with FileSystems.open(source, compression_type=RAW) as f:
            contents = f.read()
        except Exception as e:  # pylint: disable=broad-except
          # Each filesystem raises its own: FileNotFoundError, BeamIOError...
          yield reject(record_id, source, f"cannot read {source}: {e}",
                        "unreadable")
          continue
      if not contents:
        yield reject(record_id, source, f"empty image: {source}", "empty")
        continue
      try:
        image_checks.read_header(contents)
      except image_checks.ImageError as e:
        yield reject(record_id, source, e.line(source), e.kind)
        continue
      yield record_id, source, [int(v) for v in labels], contents
