"""Images to code shards with Apache Beam, encoded by an exported SavedModel.

    input: an image list, a folder or glob of image files, TFRecord files
      → plan (here, in the launcher: work items of up to 1,000 images, each
        with the id of its first image; dhe_tf.encoding.inputs)
      → Reshuffle (spread over the workers)
      → read the bytes, check the header (unreadable file, bad labels, a
        format TensorFlow does not decode, too many or too few pixels →
        rejects; dhe_tf.data.image_checks.read_header)
      → batches → the export's `serving_default` signature: decode, fit to the
        model's input, encode, pack (undecodable image → rejects)
      → CODES/codes-*.parquet, CODES/rejects-*.jsonl (dhe_tf.encoding.shards)
      → CODES/manifest.json, written here once the pipeline has finished

The pipeline loads the SavedModel of `python -m dhe_tf.export` and calls the
signature the service and TF Serving call, so its codes are theirs bit for
bit. A bad image never stops the pipeline: it is counted (Beam metrics in
the namespace "dhe_tf.encode": images_encoded, images_rejected and
rejected_<reason>) and written with its reason to the rejects.
`python -m dhe_tf.encode` is the command line of `encode`.
"""

import json
import os
import posixpath

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from dhe_tf.core import checks
from dhe_tf.encoding import shards as code_shards
from dhe_tf.encoding import inputs
from dhe_tf.saved_model import exporter
from dhe_tf.encoding.inputs import RAW
from dhe_tf.encoding.inputs import REJECTS
from dhe_tf.encoding.inputs import join
from dhe_tf.encoding.inputs import matches
from dhe_tf.core.errors import ConfigError


class EncodeImages(beam.DoFn):
  """Batches of (id, source, labels, bytes) → shard rows, through the
  export's serving_default signature; an undecodable image is rejected."""

  def __init__(self, export_dir):
    super().__init__()
    self._export_dir = export_dir
    self._encode = None

  def setup(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self._encode = tf.saved_model.load(self._export_dir).signatures[
        exporter.BYTES_SIGNATURE]

  def _packed(self, contents):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return self._encode(images=tf.constant(contents))["packed"].numpy()

  def _row(self, record, code):
    Metrics.counter(inputs.NAMESPACE, "images_encoded").inc()
    record_id, source, labels, _ = record
    return {"id": int(record_id), "source": source, "code": code.tobytes(),
            "labels": labels}

  def process(self, batch):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    try:
      packed = self._packed([record[3] for record in batch])
    except tf.errors.OpError:
      # One bad image fails its batch: encode the batch one by one.
      for record in batch:
        try:
          yield self._row(record, self._packed([record[3]])[0])
        except tf.errors.OpError as e:
          yield inputs.reject(record[0], record[1],
                              f"cannot decode image: "
                              f"{checks.op_error_text(e)}", "undecodable")
      return
    for record, code in zip(batch, packed):
      yield self._row(record, code)


def read_export(export_dir):
  """assets.extra/dhe_tf.json of an export: bits, fingerprint, center_crop."""
  path = join(join(export_dir, "assets.extra"), "dhe_tf.json")
  if not FileSystems.exists(path):
    raise ConfigError(
        f"{export_dir} is not a SavedModel of dhe_tf.export (no "
        "assets.extra/dhe_tf.json): pass a version directory, "
        "--export_dir=EXPORTED/dhe/N.")
  with FileSystems.open(path, compression_type=RAW) as f:
    return json.loads(f.read().decode("utf-8"))


def check_output_free(output):
  """Raises ConfigError when `output` holds anything: shards of two runs are
  never mixed in one directory."""
  if os.path.isfile(output):
    raise ConfigError(f"--output={output} is a file: give a directory.")
  found = matches(join(output, "*")) if FileSystems.exists(output) else []
  if found:
    raise ConfigError(
        f"--output={output} already holds {len(found)} files (e.g. "
        f"{posixpath.basename(found[0])}): encode into a new directory; "
        "codes of two runs are never mixed.")


def build_pipeline(pipeline, items, *, export_dir, output, num_labels,
                   batch_size, num_shards):
  """Adds the steps from work items to the shard files to `pipeline`."""
  read = (pipeline
          | "Plan" >> beam.Create(items)
          | "Spread" >> beam.Reshuffle()
          | "Read" >> beam.ParDo(inputs.ReadImages(num_labels)).with_outputs(
              REJECTS, main="images"))
  encoded = (read.images
             | "Batch" >> beam.BatchElements(min_batch_size=batch_size,
                                             max_batch_size=batch_size)
             | "Encode" >> beam.ParDo(EncodeImages(export_dir)).with_outputs(
                 REJECTS, main="rows"))
  _ = encoded.rows | "WriteCodes" >> beam.io.WriteToParquet(
      join(output, code_shards.CODES_PREFIX), code_shards.schema(),
      file_name_suffix=code_shards.CODES_SUFFIX, num_shards=num_shards)
  _ = ((read[REJECTS], encoded[REJECTS])
       | "Rejects" >> beam.Flatten()
       | "Json" >> beam.Map(json.dumps, sort_keys=True)
       | "WriteRejects" >> beam.io.WriteToText(
           join(output, code_shards.REJECTS_PREFIX),
           file_name_suffix=code_shards.REJECTS_SUFFIX, num_shards=1))


def _shard_rows(path):
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  with FileSystems.open(path, compression_type=RAW) as f:
    return pq.ParquetFile(f).metadata.num_rows


def _lines(path):
  with FileSystems.open(path, compression_type=RAW) as f:
    return sum(1 for line in f if line.strip())


def _class_names(spec, kind, num_labels):
  if kind == "list":
    path = join(FileSystems.split(spec)[0], "concepts.txt")
    if FileSystems.exists(path):
      with FileSystems.open(path, compression_type=RAW) as f:
        names = [n.strip() for n in f.read().decode("utf-8").splitlines()
                 if n.strip()]
      if len(names) == num_labels:
        return names
  return [f"class_{i}" for i in range(num_labels)]


def write_manifest(output, *, export_dir, description, spec, kind,
                   num_labels, counters):
  """Writes CODES/manifest.json from the shard files; returns it."""
  shards = [{"file": posixpath.basename(path), "rows": _shard_rows(path)}
            for path in matches(join(output, f"{code_shards.CODES_PREFIX}-*"
                                       f"{code_shards.CODES_SUFFIX}"))]
  rejects = matches(join(output, f"{code_shards.REJECTS_PREFIX}-*"
                           f"{code_shards.REJECTS_SUFFIX}"))
  manifest = {
      "format": code_shards.FORMAT, "bits": description["bits"],
      "fingerprint": description["fingerprint"],
      "center_crop": description["center_crop"], "export_dir": export_dir,
      "input": spec, "input_format": kind,
      "count": sum(shard["rows"] for shard in shards),
      "rejects": sum(_lines(path) for path in rejects),
      "class_names": _class_names(spec, kind, num_labels),
      "shards": shards,
      "reject_files": [posixpath.basename(path) for path in rejects],
      "metrics": counters}
  with FileSystems.create(join(output, code_shards.MANIFEST)) as f:
    f.write(json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
  return manifest


def _counters(result):
  """The pipeline's counters by name, summed over its steps."""
  counters = {}
  for counter in result.metrics().query()["counters"]:
    if counter.key.metric.namespace == inputs.NAMESPACE:
      name = counter.key.metric.name
      value = counter.committed if counter.committed is not None else (
          counter.attempted)
      counters[name] = counters.get(name, 0) + int(value or 0)
  return counters


def encode(export_dir, spec, output, *, input_format_name="auto",
           image_root=None, batch_size=64, num_shards=0, pipeline_args=()):
  """Encodes the images of `spec` into code shards at `output`.

  Args:
    export_dir: a version directory of dhe_tf.export (EXPORTED/dhe/N).
    spec: an image list, a folder or glob of images, or TFRecord files.
    output: a new or empty directory (local or a URI).
    input_format_name: one of INPUT_FORMATS.
    image_root: where relative paths of an image list start.
    batch_size: images per call of the SavedModel.
    num_shards: codes shards; 0 lets the runner choose.
    pipeline_args: Beam pipeline options, e.g. ["--runner=DataflowRunner"].

  Returns:
    The manifest (dhe_tf.encoding.shards).
  """
  checks.positive_int("batch_size", batch_size)
  description = read_export(export_dir)
  check_output_free(output)
  kind = inputs.input_format(spec, input_format_name)
  items, num_labels = inputs.plan(spec, input_format_name=kind,
                           image_root=image_root)
  pipeline = beam.Pipeline(options=PipelineOptions(list(pipeline_args)))
  build_pipeline(pipeline, items, export_dir=export_dir, output=output,
                 num_labels=num_labels, batch_size=batch_size,
                 num_shards=num_shards)
  result = pipeline.run()
  result.wait_until_finish()
  return write_manifest(output, export_dir=export_dir,
                        description=description, spec=spec, kind=kind,
                        num_labels=num_labels, counters=_counters(result))
