"""Code shards: a database's codes as Parquet files plus a manifest.

`python -m dhe_tf.encode` (dhe_tf.encoding.pipeline, an Apache Beam
pipeline) writes them; `python -m dhe_tf.search build --from_codes` reads
them into an index without encoding again. A codes directory holds:

    CODES/manifest.json      written last, when the pipeline has finished:
                             format, bits, fingerprint (of the model, as
                             dhe_tf.model.inference.model_fingerprint), the export
                             and input it came from, count, rejects,
                             class_names, and every shard with its rows
    CODES/codes-SSSSS-of-NNNNN.parquet
                             one row per encoded image (SCHEMA): id int64,
                             source string, code binary (packed as
                             dhe_tf.core.codes.pack), labels list<uint8> (0/1,
                             one per class name; empty without labels)
    CODES/rejects-SSSSS-of-NNNNN.jsonl
                             one JSON line per image that was not encoded:
                             {"id", "source", "reason"}

Why Parquet: it is columnar and self-describing, so pandas, DuckDB, Spark,
BigQuery and Milvus's bulk import read the shards as they are, and a reader
takes the id and code columns without the sources; TFRecord would need our
schema to read. The manifest lists the shards, so a reader never picks up
files of another run, and a directory without one (a run that failed) is
refused.

Ids are the position of the image in the input (line of an image list, rank
of a path in a sorted glob; TFRecord: file rank × 2**32 + record number), so
a re-run gives every image the same id, and ids are unique across shards.
An index of the shards holds the codes in id order; its ids are the row
numbers of that order.
"""

import json
import os
import posixpath

import numpy as np

from dhe_tf.core import checks
from dhe_tf.core import codes as codes_lib
from dhe_tf.core.errors import ConfigError

FORMAT = 1
MANIFEST = "manifest.json"
CODES_PREFIX = "codes"
REJECTS_PREFIX = "rejects"
CODES_SUFFIX = ".parquet"
REJECTS_SUFFIX = ".jsonl"
COLUMNS = ("id", "source", "code", "labels")


def schema():
  """The pyarrow schema of a shard's rows."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  return pa.schema([("id", pa.int64()), ("source", pa.string()),
                    ("code", pa.binary()), ("labels", pa.list_(pa.uint8()))])


def join(directory, name):
  """A path inside `directory`, local or a URI (gs://bucket/dir)."""
  if "://" in directory:
    return posixpath.join(directory, name)
  return os.path.join(directory, name)


def read_manifest(codes_dir):
  """manifest.json of a codes directory.

  Raises:
    ConfigError: no manifest (no codes there, or a run that did not finish)
      or one of another format.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = join(codes_dir, MANIFEST)
  if not tf.io.gfile.exists(path):
    raise ConfigError(
        f"No codes at {codes_dir}: {MANIFEST} is missing (write codes with "
        "`python -m dhe_tf.encode`; a run that failed writes none).")
  with tf.io.gfile.GFile(path, "r") as f:
    manifest = json.load(f)
  if manifest.get("format") != FORMAT:
    raise ConfigError(f"The codes at {codes_dir} have format "
                      f"{manifest.get('format')!r}; this version reads "
                      f"format {FORMAT}.")
  return manifest


def shard_files(codes_dir, prefix, suffix):
  """Names (not paths) of the shard files with `prefix` and `suffix`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  found = tf.io.gfile.glob(join(codes_dir, f"{prefix}-*{suffix}"))
  return sorted(posixpath.basename(path.replace("\\", "/"))
                for path in found)


def _check_shards(codes_dir, manifest):
  listed = [shard["file"] for shard in manifest["shards"]]
  present = shard_files(codes_dir, CODES_PREFIX, CODES_SUFFIX)
  if sorted(listed) != present:
    missing = sorted(set(listed) - set(present))
    extra = sorted(set(present) - set(listed))
    raise ConfigError(
        f"The shards at {codes_dir} are not those its {MANIFEST} lists "
        f"(missing: {', '.join(missing) or 'none'}; not listed: "
        f"{', '.join(extra) or 'none'}): encode again into a new --output.")


def _read_shard(codes_dir, shard, columns):
  """A shard's pyarrow table (`columns` only), checked against its count."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tf.io.gfile.GFile(join(codes_dir, shard["file"]), "rb") as f:
    table = pq.read_table(pa.BufferReader(f.read()), columns=list(columns))
  if table.num_rows != shard["rows"]:
    raise ConfigError(f"{shard['file']} of {codes_dir} holds "
                      f"{table.num_rows} rows; {MANIFEST} says "
                      f"{shard['rows']}.")
  return table


def stream_codes(codes_dir):
  """The codes of a codes directory, shard by shard, with their rank in id
  order: what an index is built from without holding every source and label
  at once (two passes: the ids of every shard, then each shard whole).

  Returns:
    (manifest, sorted ids int64 [N], batches): each batch, one per shard,
    is (rows int64 [M], the rank of each code's id among all ids; sources, a
    pyarrow string array [M]; packed uint8 [M, ceil(K/8)]; labels uint8
    [M, C]).

  Raises:
    ConfigError: no manifest, shards other than it lists, a shard whose
      rows differ from its count, repeated ids, and (while iterating) codes
      of another width or with padding bits set
      (dhe_tf.core.checks.packed_codes) or labels of another width.
  """
  manifest = read_manifest(codes_dir)
  _check_shards(codes_dir, manifest)
  ids = [_read_shard(codes_dir, shard, ("id",)).column("id").to_numpy()
         for shard in manifest["shards"]]
  ids = np.sort(np.concatenate(ids)) if ids else np.zeros(0, np.int64)
  if len(ids) != manifest["count"]:
    raise ConfigError(f"{codes_dir} holds {len(ids)} codes; {MANIFEST} says "
                      f"{manifest['count']}.")
  if len(ids) and np.any(ids[1:] == ids[:-1]):
    raise ConfigError(f"Repeated ids in the shards of {codes_dir}.")
  width = codes_lib.num_bytes(manifest["bits"])
  num_classes = len(manifest["class_names"])

  def batches():
    for shard in manifest["shards"]:
      table = _read_shard(codes_dir, shard, COLUMNS)
      code = table.column("code").combine_chunks()
      raw = np.frombuffer(code.buffers()[2], np.uint8) if len(code) else (
          np.zeros(0, np.uint8))
      offsets = np.frombuffer(code.buffers()[1], np.int32)[
          code.offset:code.offset + len(code) + 1]
      if np.any(np.diff(offsets) != width):
        raise ConfigError(f"The codes at {codes_dir} are not all {width} "
                          f"bytes ({manifest['bits']} bits).")
      packed = checks.packed_codes(
          raw[offsets[0]:offsets[-1]].reshape(len(code), width),
          manifest["bits"], f"codes of {codes_dir}")
      labels = table.column("labels").combine_chunks()
      flat = labels.flatten().to_numpy(zero_copy_only=False)
      if len(flat) != len(code) * num_classes:
        raise ConfigError(f"The labels at {codes_dir} are not all "
                          f"{num_classes} wide (one per class name).")
      rows = np.searchsorted(ids, table.column("id").to_numpy())
      yield (rows, table.column("source").combine_chunks(), packed,
             flat.astype(np.uint8).reshape(len(code), num_classes))

  return manifest, ids, batches()


def read_codes(codes_dir):
  """Every code of a codes directory, in id order (stream_codes, gathered).

  Returns:
    (manifest, ids int64 [N], sources str [N], packed uint8
    [N, ceil(K/8)], labels uint8 [N, C]).

  Raises:
    ConfigError: as stream_codes.
  """
  manifest, ids, batches = stream_codes(codes_dir)
  width = codes_lib.num_bytes(manifest["bits"])
  packed = np.zeros((len(ids), width), np.uint8)
  labels = np.zeros((len(ids), len(manifest["class_names"])), np.uint8)
  sources = np.zeros(len(ids), object)
  for rows, batch_sources, batch_packed, batch_labels in batches:
    packed[rows], labels[rows] = batch_packed, batch_labels
    sources[rows] = batch_sources.to_pylist()
  return manifest, ids, sources.astype(str), packed, labels


def read_rejects(codes_dir):
  """The rejected images of a codes directory: [{"id", "source", "reason"}],
  by id."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  manifest = read_manifest(codes_dir)
  rows = []
  for name in manifest["reject_files"]:
    with tf.io.gfile.GFile(join(codes_dir, name), "r") as f:
      rows.extend(json.loads(line) for line in f if line.strip())
  return sorted(rows, key=lambda row: row["id"])
