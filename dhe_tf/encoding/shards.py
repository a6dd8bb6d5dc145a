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


def read_codes(codes_dir):
  """Every code of a codes directory, in id order.

  Returns:
    (manifest, ids int64 [N], sources str [N], packed uint8
    [N, ceil(K/8)], labels uint8 [N, C]).

  Raises:
    ConfigError: no manifest, shards other than it lists, a shard whose
      rows differ from its count, codes of another width or with padding
      bits set (dhe_tf.core.checks.packed_codes), repeated ids.
  """
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  manifest = read_manifest(codes_dir)
  _check_shards(codes_dir, manifest)
  width = codes_lib.num_bytes(manifest["bits"])
  tables = []
  for shard in manifest["shards"]:
    with tf.io.gfile.GFile(join(codes_dir, shard["file"]), "rb") as f:
      table = pq.read_table(pa.BufferReader(f.read()), columns=list(COLUMNS))
    if table.num_rows != shard["rows"]:
      raise ConfigError(f"{shard['file']} of {codes_dir} holds "
                        f"{table.num_rows} rows; {MANIFEST} says "
                        f"{shard['rows']}.")
    tables.append(table)
  ids = np.concatenate([t.column("id").to_numpy() for t in tables]
                       ) if tables else np.zeros(0, np.int64)
  order = np.argsort(ids, kind="stable")
  ids = ids[order]
  if len(ids) != manifest["count"]:
    raise ConfigError(f"{codes_dir} holds {len(ids)} codes; {MANIFEST} says "
                      f"{manifest['count']}.")
  if len(ids) and np.any(ids[1:] == ids[:-1]):
    raise ConfigError(f"Repeated ids in the shards of {codes_dir}.")
  sources = np.array([s for t in tables for s in t.column("source")
                      .to_pylist()], dtype=str)[order]
  raw = b"".join(b for t in tables for b in t.column("code").to_pylist())
  if len(raw) != len(ids) * width:
    raise ConfigError(f"The codes at {codes_dir} are not all {width} bytes "
                      f"({manifest['bits']} bits).")
  packed = checks.packed_codes(
      np.frombuffer(raw, np.uint8).reshape(len(ids), width)[order],
      manifest["bits"], f"codes of {codes_dir}")
  num_classes = len(manifest["class_names"])
  labels = np.array([row for t in tables for row in t.column("labels")
                     .to_pylist()], np.uint8).reshape(len(ids), num_classes)
  return manifest, ids, sources, packed, labels[order]


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
