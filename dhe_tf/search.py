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

from dhe_tf import index as index_lib
from dhe_tf import retrieval
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
    manifest = retrieval.build_index(FLAGS.model_dir, FLAGS.index, images=FLAGS.images,
                           part=FLAGS.part, backend=FLAGS.backend,
                           settings=_settings(),
                           batch_size=FLAGS.batch_size)
    return (f"{manifest['count']} codes of {manifest['bits']} bits "
            f"({manifest['backend']}) → {FLAGS.index}")
  found = retrieval.query_index(FLAGS.index, model_dir=FLAGS.model_dir,
                      images=FLAGS.images, codes=FLAGS.codes, k=FLAGS.k,
                      radius=FLAGS.radius, batch_size=FLAGS.batch_size)
  if FLAGS.json == "-":
    import json  # pylint: disable=g-import-not-at-top
    return json.dumps(found, indent=2)
  if FLAGS.json:
    run_dir.write_json(FLAGS.json, found)
  return retrieval.format_table(found)


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
