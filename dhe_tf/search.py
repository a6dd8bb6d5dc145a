r"""Builds an index of a model's binary codes; queries it by Hamming distance.

    # The codes of a run's database images (or --part=query / train):
    python -m dhe_tf.search build --model_dir=RUN --index=INDEX
    # ... or of image files: a folder, or a comma-separated list of files
    python -m dhe_tf.search build --model_dir=RUN --index=INDEX \
        --images=photos/
    # In Milvus: embedded Milvus Lite in INDEX/milvus.db, or a server
    python -m dhe_tf.search build --model_dir=RUN --index=INDEX \
        --backend=milvus [--milvus_uri=http://host:19530]

    # The 10 nearest codes to a picture, as a table (and as JSON):
    python -m dhe_tf.search query --model_dir=RUN --index=INDEX \
        --images=query.png --k=10 [--json=results.json]
    # Every code within Hamming distance 2 of a given code:
    python -m dhe_tf.search query --index=INDEX --codes=010011001010 \
        --radius=2

Images are encoded as the exported SavedModel encodes them
(dhe_tf.serving). The index records the fingerprint of the model that made
it, and a query with another model's codes is refused. Results are ordered
by (distance, id), ties broken by id as in the evaluation (dhe_tf.index).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow loads.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np

from dhe_tf import index as index_lib
from dhe_tf import metrics
from dhe_tf import run_dir
from dhe_tf.errors import ConfigError
from dhe_tf.errors import DataUnavailableError

COMMANDS = ("build", "query")

flags.DEFINE_string("index", None, "The index directory.")
flags.DEFINE_string("model_dir", None,
                    "Run directory of dhe_tf.train: the model that encodes "
                    "images (build, and query with --images).")
flags.DEFINE_list("images", [],
                  "Image files or folders (their .jpg/.jpeg/.png/.gif/.bmp "
                  "files): build indexes them instead of a dataset part; "
                  "query searches for them.")
flags.DEFINE_string("part", "database",
                    "build: the run's dataset part to index when --images "
                    "is not given: database, query or train.")
flags.DEFINE_enum("backend", "faiss", index_lib.BACKENDS, "build: backend.")
flags.DEFINE_string("milvus_uri", None,
                    "build, milvus: a Milvus server or cluster "
                    "(http://host:19530) or a Milvus Lite file (*.db); "
                    "default INDEX/milvus.db.")
flags.DEFINE_enum("milvus_index", "BIN_FLAT", index_lib.MILVUS_INDEX_TYPES,
                  "build, milvus: BIN_FLAT (exact) or BIN_IVF_FLAT.")
flags.DEFINE_integer("milvus_nlist", 1024, "build, BIN_IVF_FLAT: lists.")
flags.DEFINE_integer("milvus_nprobe", 16,
                     "build, BIN_IVF_FLAT: lists searched per query.")
flags.DEFINE_list("codes", [],
                  "query: codes as strings of 0 and 1, comma-separated.")
flags.DEFINE_integer("k", 10, "query: number of nearest codes.")
flags.DEFINE_integer("radius", None,
                     "query: return every code within this Hamming distance "
                     "instead of the k nearest.")
flags.DEFINE_string("json", None, "query: also write the results as JSON to "
                    "this file ('-' for standard output).")
flags.DEFINE_integer("batch_size", 256, "Images per encoding batch.")

FLAGS = flags.FLAGS


def _check_split(data, model_dir, part):
  path = os.path.join(model_dir, "split.npz")
  if not os.path.isfile(path):
    return
  with np.load(path) as recorded:
    if part in recorded and not np.array_equal(recorded[part],
                                               data.split[part]):
      raise ConfigError(
          f"The {part} images of {data.name} differ from those in {path}: "
          "the data or its split changed since training.")


def _encode_part(model, config, model_dir, part, batch_size):
  """(codes [N, K], sources str [N], labels [N, C], class names) of a part."""
  from dhe_tf import evaluation  # pylint: disable=g-import-not-at-top
  from dhe_tf import training  # pylint: disable=g-import-not-at-top
  data = training.load_data(config)
  if part not in data.parts:
    raise ConfigError(f"Unknown part {part!r}. "
                      f"Available: {', '.join(sorted(data.parts))}")
  _check_split(data, model_dir, part)
  codes, labels = evaluation.encode(model, data.parts[part],
                                    batch_size=batch_size)
  where = np.asarray(data.split[part])
  sources = (where.astype(str) if where.dtype.kind in "US" else
             np.char.add(f"{data.name}[", np.char.add(where.astype(str), "]")))
  return codes, sources, labels, data.class_names


def build_index(model_dir, index_path, *, images=(), part="database",
                backend="faiss", settings=None, batch_size=256):
  """Encodes a run's dataset part, or image files, into an index.

  Args:
    model_dir: a finished dhe_tf.train run.
    index_path: the index directory to write (an index there is replaced).
    images: image files or folders; empty for the dataset part `part`.
    part: "database", "query" or "train".
    backend: one of dhe_tf.index.BACKENDS.
    settings: backend settings (see dhe_tf.index.build).
    batch_size: images per encoding batch.

  Returns:
    The index manifest.
  """
  from dhe_tf import serving  # pylint: disable=g-import-not-at-top
  index_lib.check_backend(backend)
  model, config = serving.load_run(model_dir)
  if images:
    paths = serving.image_paths(images)
    codes = serving.encode_files(model, paths,
                                 center_crop=serving.center_crops(config),
                                 batch_size=batch_size)
    sources, labels, class_names = paths, None, ()
  else:
    codes, sources, labels, class_names = _encode_part(
        model, config, model_dir, part, batch_size)
  return index_lib.build(index_path, metrics.pack_codes(codes),
                         bits=int(codes.shape[1]),
                         fingerprint=serving.model_fingerprint(model),
                         sources=sources, labels=labels,
                         class_names=class_names, backend=backend,
                         settings=settings)


def _query_codes(index, *, model_dir, images, codes, batch_size):
  """(names, packed queries) from images (encoded by the run) or codes."""
  if bool(images) == bool(codes):
    raise ConfigError("Give the queries as --images or as --codes (one of "
                      "them).")
  if codes:
    return list(codes), index_lib.codes_from_strings(codes, index.bits)
  if not model_dir:
    raise ConfigError("--images needs --model_dir: the run whose model "
                      "built the index.")
  from dhe_tf import serving  # pylint: disable=g-import-not-at-top
  model, config = serving.load_run(model_dir)
  bits = int(model.get_layer("hash").output.shape[-1])
  if bits != index.bits:
    raise ConfigError(f"The model of {model_dir} makes {bits}-bit codes; the "
                      f"index at {index.path} holds {index.bits}-bit codes.")
  index.check_fingerprint(serving.model_fingerprint(model),
                          f"the model of {model_dir}")
  paths = serving.image_paths(images)
  bits = serving.encode_files(model, paths,
                              center_crop=serving.center_crops(config),
                              batch_size=batch_size)
  return paths, metrics.pack_codes(bits)


def _neighbor(index, rank, item, distance):
  names = [name for name, on in zip(index.class_names, index.labels[item])
           if on]
  return {"rank": rank, "id": int(item), "distance": int(distance),
          "source": index.source(item), "labels": names}


def query_index(index_path, *, model_dir=None, images=(), codes=(), k=10,
                radius=None, batch_size=256):
  """Searches the index for images or codes.

  Args:
    index_path: an index built by `build_index` or dhe_tf.index.build.
    model_dir: the run that built the index; needed with `images`.
    images: image files or folders to search for.
    codes: codes as strings of K characters 0 or 1, instead of images.
    k: the number of nearest codes (top-k search), ≥ 1.
    radius: when given, every code within this distance instead.
    batch_size: images per encoding batch.

  Returns:
    {"index", "bits", "k" or "radius", "results": [{"query": name,
    "neighbors": [{"rank", "id", "distance", "source", "labels"}]}]}, the
    neighbors ordered by (distance, id).
  """
  if radius is None:
    index_lib.check_k(k)
  else:
    index_lib.check_radius(radius)
  with index_lib.open_index(index_path) as index:
    names, queries = _query_codes(index, model_dir=model_dir, images=images,
                                  codes=codes, batch_size=batch_size)
    if radius is None:
      rows = zip(*index.search(queries, k))
    else:
      rows = index.radius_search(queries, radius)
    results = [
        {"query": name,
         "neighbors": [_neighbor(index, rank, item, distance)
                       for rank, (item, distance) in
                       enumerate(zip(ids, distances), 1)]}
        for name, (ids, distances) in zip(names, rows)]
    mode = {"k": int(k)} if radius is None else {"radius": int(radius)}
    return {"index": index_path, "bits": index.bits, **mode,
            "results": results}


def format_table(found):
  """The results of query_index as a plain-text table, one row a neighbor."""
  header = ("query", "rank", "id", "distance", "source", "labels")
  rows = []
  for result in found["results"]:
    if not result["neighbors"]:
      rows.append((result["query"], "-", "-", "-",
                   f"(nothing within radius {found.get('radius')})", ""))
    for hit in result["neighbors"]:
      rows.append((result["query"], str(hit["rank"]), str(hit["id"]),
                   str(hit["distance"]), hit["source"],
                   ",".join(hit["labels"])))
  widths = [max(len(row[i]) for row in [header, *rows])
            for i in range(len(header))]
  return "\n".join("  ".join(cell.ljust(width) for cell, width in
                             zip(row, widths)).rstrip()
                   for row in [header, *rows])


def _settings():
  if FLAGS.backend != "milvus":
    return {}
  return {"uri": FLAGS.milvus_uri, "index_type": FLAGS.milvus_index,
          "nlist": FLAGS.milvus_nlist, "nprobe": FLAGS.milvus_nprobe}


def run(command):
  """Runs `command` with the parsed flags; returns the text to print."""
  if not FLAGS.index:
    raise ConfigError("--index is required: the index directory.")
  if command == "build":
    if not FLAGS.model_dir:
      raise ConfigError("build needs --model_dir: the run whose model "
                        "encodes the images.")
    manifest = build_index(FLAGS.model_dir, FLAGS.index, images=FLAGS.images,
                           part=FLAGS.part, backend=FLAGS.backend,
                           settings=_settings(),
                           batch_size=FLAGS.batch_size)
    return (f"{manifest['count']} codes of {manifest['bits']} bits "
            f"({manifest['backend']}) → {FLAGS.index}")
  found = query_index(FLAGS.index, model_dir=FLAGS.model_dir,
                      images=FLAGS.images, codes=FLAGS.codes, k=FLAGS.k,
                      radius=FLAGS.radius, batch_size=FLAGS.batch_size)
  if FLAGS.json == "-":
    import json  # pylint: disable=g-import-not-at-top
    return json.dumps(found, indent=2)
  if FLAGS.json:
    run_dir.write_json(FLAGS.json, found)
  return format_table(found)


def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError(
        f"Expected one command, {' or '.join(COMMANDS)}. Received: "
        f"{' '.join(argv[1:]) or 'none'}")
  try:
    print(run(argv[1]))
  except (ConfigError, DataUnavailableError, FileNotFoundError) as e:
    print(f"dhe_tf.search: error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
