r"""Encodes images into code shards with Apache Beam (needs the `beam` extra).

    # A folder, a glob, an image list or TFRecord files, here (DirectRunner):
    python -m dhe_tf.encode --export_dir=exported/dhe/1 --input=photos/ \
        --output=codes/photos
    python -m dhe_tf.encode --export_dir=exported/dhe/1 \
        --input=lists/database.txt --output=codes/db \
        --direct_running_mode=multi_processing --direct_num_workers=2
    # ... then an index of the codes, without encoding again:
    python -m dhe_tf.search build --from_codes=codes/db --index=indexes/db

writes CODES/codes-*.parquet (id, source, packed code, labels), the images
that could not be encoded with their reason in CODES/rejects-*.jsonl, and
CODES/manifest.json (bits, model fingerprint, counts, shards) at the end
(dhe_tf.encoding.shards). The images are encoded by the export's
serving_default signature, as the search service and TF Serving encode them
(dhe_tf.encoding.pipeline, the library function `encode`). Arguments that
are not flags of this command are Beam pipeline options (--runner,
--project, --num_workers...): README, "Running on Dataflow / Flink / Spark".
"""

from absl import app
from absl import flags

from dhe_tf.core import errors

flags.DEFINE_string("export_dir", None,
                    "A version directory of dhe_tf.export (EXPORTED/dhe/N): "
                    "the SavedModel that encodes the images.")
flags.DEFINE_string("input", None,
                    "An image list (.txt: path [labels] per line), a folder "
                    "or glob of images, or TFRecord files (*.tfrecord*); "
                    "local or any filesystem Beam reads.")
flags.DEFINE_string("output", None,
                    "The codes directory; a new or empty one.")
flags.DEFINE_enum("input_format", "auto",
                  ["auto", "list", "files", "tfrecord"],
                  "What --input is; auto: by its name.")
flags.DEFINE_string("image_root", None,
                    "Where relative paths of an image list start (default: "
                    "the list's folder).")
flags.DEFINE_integer("batch_size", 64, "Images per call of the SavedModel.")
flags.DEFINE_integer("num_shards", 0,
                     "Code shards to write; 0 lets the runner choose.")
flags.mark_flags_as_required(["export_dir", "input", "output"])

FLAGS = flags.FLAGS


def _parse(argv):
  """Our flags; the other --options are left for Beam."""
  rest = FLAGS(argv, known_only=True)
  stray = [arg for arg in rest[1:] if not arg.startswith("--")]
  if stray:
    raise app.UsageError(f"Unexpected arguments: {' '.join(stray)}")
  return rest


def main(argv):
  with errors.reported_in_one_line("dhe_tf.encode"):
    # Beam is an extra: imported here, so `import dhe_tf` never needs it.
    try:
      from dhe_tf.encoding import pipeline as encoding_pipeline  # pylint: disable=g-import-not-at-top
    except ModuleNotFoundError as e:
      raise errors.ConfigError(
          f"dhe_tf.encode needs Apache Beam ({e}): pip install -e "
          "\".[beam]\"") from e
    manifest = encoding_pipeline.encode(
        FLAGS.export_dir, FLAGS.input, FLAGS.output,
        input_format_name=FLAGS.input_format, image_root=FLAGS.image_root,
        batch_size=FLAGS.batch_size, num_shards=FLAGS.num_shards,
        pipeline_args=argv[1:])
  print(f"{manifest['count']} codes of {manifest['bits']} bits in "
        f"{len(manifest['shards'])} shards, {manifest['rejects']} rejects "
        f"→ {FLAGS.output}")


if __name__ == "__main__":
  app.run(main, flags_parser=_parse)
