r"""Builds an index of a model's binary codes; queries it by Hamming distance.

    # The codes of a run's database images (or --part=query / train):
    python -m dhe_tf.search build --model_dir=RUN --index=INDEX
    # ... or of image files: a folder, or a comma-separated list of files
    python -m dhe_tf.search build --model_dir=RUN --index=INDEX \
        --images=photos/
    # ... or of the code shards of `python -m dhe_tf.encode`, not encoded
    # again (--model_dir, when given, must be the model that made them):
    python -m dhe_tf.search build --from_codes=CODES --index=INDEX
    # In Milvus: embedded Milvus Lite in INDEX/milvus.db, or a server
    python -m dhe_tf.search build --model_dir=RUN --index=INDEX \
        --backend=milvus [--milvus_uri=http://host:19530]

    # The 10 nearest codes to a picture, as a table (and as JSON):
    python -m dhe_tf.search query --model_dir=RUN --index=INDEX \
        --images=query.png --k=10 [--json=results.json]
    # Every code within Hamming distance 2 of a given code:
    python -m dhe_tf.search query --index=INDEX --codes=010011001010 \
        --radius=2

    # Every byte of an index against its checksums (opening an index checks
    # every file's size, small files whole and large ones by samples):
    python -m dhe_tf.search verify --index=INDEX

Images are encoded as the exported SavedModel encodes them
(dhe_tf.model.inference). The index records the fingerprint of the model that made
it, and a query with another model's codes is refused. Results are ordered
by (distance, id), ties broken by id as in the evaluation (dhe_tf.index).
"""

from absl import app
from absl import flags

from dhe_tf.core import errors
from dhe_tf import index as index_lib
from dhe_tf.runs import run_dir
from dhe_tf.index import searcher
from dhe_tf.core.errors import ConfigError

COMMANDS = ("build", "query", "verify")

flags.DEFINE_string("index", None, "The index directory.")
flags.DEFINE_string("model_dir", None,
                    "Run directory of dhe_tf.train: the model that encodes "
                    "images (build, and query with --images).")
flags.DEFINE_list("images", [],
                  "Image files or folders (their .jpg/.jpeg/.png/.gif/.bmp "
                  "files): build indexes them instead of a dataset part; "
                  "query searches for them.")
flags.DEFINE_string("from_codes", None,
                    "build: a codes directory of dhe_tf.encode: index its "
                    "codes without encoding images.")
flags.DEFINE_string("part", "database",
                    "build: the run's dataset part to index when --images "
                    "is not given: database, query or train.")
flags.DEFINE_enum("backend", index_lib.DEFAULT_BACKEND,
                  list(index_lib.BACKENDS),
                  "build: backend (dhe_tf.index); its settings are the "
                  "flags --<backend>_<setting>.")
flags.DEFINE_list("codes", [],
                  "query: codes as strings of 0 and 1, comma-separated.")
flags.DEFINE_integer("k", 10, "query: number of nearest codes.")
flags.DEFINE_integer("radius", None,
                     "query: return every code within this Hamming distance "
                     "instead of the k nearest.")
flags.DEFINE_string("json", None, "query: also write the results as JSON to "
                    "this file ('-' for standard output).")
flags.DEFINE_integer("batch_size", 256, "Images per encoding batch.")


def _define_backend_flags():
  """A flag --<backend>_<setting> for each setting of each backend."""
  define = {str: flags.DEFINE_string, int: flags.DEFINE_integer,
            float: flags.DEFINE_float, bool: flags.DEFINE_boolean}
  for backend in index_lib.BACKENDS.values():
    for setting in backend.settings:
      name = backend.flag_name(setting)
      help_text = f"build, --backend={backend.name}: {setting.help}"
      if setting.choices and setting.type is str:
        flags.DEFINE_enum(name, setting.default, setting.choices, help_text)
      else:
        define[setting.type](name, setting.default, help_text)


_define_backend_flags()

FLAGS = flags.FLAGS


def _settings():
  """The settings of --backend, from its flags --<backend>_<setting>."""
  backend = index_lib.BACKENDS[FLAGS.backend]
  return {setting.name: FLAGS[backend.flag_name(setting)].value
          for setting in backend.settings}


def run(command):
  """Runs `command` with the parsed flags; returns the text to print."""
  if not FLAGS.index:
    raise ConfigError("--index is required: the index directory.")
  if command == "verify":
    return searcher.verify_index(FLAGS.index)
  if command == "build":
    if not FLAGS.model_dir and not FLAGS.from_codes:
      raise ConfigError("build needs --model_dir: the run whose model "
                        "encodes the images (or --from_codes).")
    manifest = searcher.build_index(
        FLAGS.model_dir, FLAGS.index, images=FLAGS.images, part=FLAGS.part,
        from_codes=FLAGS.from_codes, backend=FLAGS.backend, settings=_settings(),
        batch_size=FLAGS.batch_size)
    return (f"{manifest['count']} codes of {manifest['bits']} bits "
            f"({manifest['backend']}) → {FLAGS.index}")
  found = searcher.query_index(
      FLAGS.index, model_dir=FLAGS.model_dir, images=FLAGS.images,
      codes=FLAGS.codes, k=FLAGS.k, radius=FLAGS.radius,
      batch_size=FLAGS.batch_size)
  if FLAGS.json == "-":
    import json  # pylint: disable=g-import-not-at-top
    return json.dumps(found, indent=2)
  if FLAGS.json:
    run_dir.write_json(FLAGS.json, found)
  return searcher.format_table(found)


def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError(
        f"Expected one command, {', '.join(COMMANDS)}. Received: "
        f"{' '.join(argv[1:]) or 'none'}")
  with errors.reported_in_one_line("dhe_tf.search"):
    print(run(argv[1]))


if __name__ == "__main__":
  app.run(main)
