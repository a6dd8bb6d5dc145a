r"""Benchmarks encoding a folder of PNG files: the Beam pipeline vs in-process.

    python tools/benchmark_encode.py --model_dir=runs/bench32 \
        --data_dir=/usr/share/datasets/fashion-mnist --num_images=70000 \
        --workers=2 [--work_dir=/tmp/bench_encode]

Writes the first --num_images Fashion-MNIST images (the train then the test
IDX files of --data_dir; the embedded 10,000 without it) as PNG files into
one folder (not timed), exports the run (dhe_tf.saved_model.exporter), then times, on
the same files and model:
- in-process: `python -m dhe_tf.search build --images=FOLDER`
  (dhe_tf.index.searcher.build_index: check every image, encode with the Keras
  model in tf.data batches, write the FAISS index);
- beam: `python -m dhe_tf.encode` (dhe_tf.encoding.pipeline.encode) on the
  DirectRunner in multi_processing mode with --workers workers, then
  `search build --from_codes` (the index, timed apart);
- beam fixed cost: the same pipeline on 16 of the images: starting the
  workers, importing TensorFlow and loading the SavedModel in each.
Prints a Markdown table (seconds, images/s, ratio to in-process) and
whether both indexes hold the same codes.
"""

import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow as tf

from dhe_tf.encoding import pipeline as encoding_pipeline
from dhe_tf.saved_model import exporter
from dhe_tf import index as index_lib
from dhe_tf.index import searcher
from dhe_tf.data import datasets
from dhe_tf.data import idx_files

flags.DEFINE_string("model_dir", None, "A run of dhe_tf.train.")
flags.DEFINE_string("data_dir", None,
                    "Fashion-MNIST IDX files (train, t10k); default: the "
                    "embedded 10,000 images.")
flags.DEFINE_integer("num_images", 70000, "PNG files to encode.")
flags.DEFINE_integer("workers", 2, "DirectRunner worker processes.")
flags.DEFINE_integer("batch_size", 64, "Images per SavedModel call (beam).")
flags.DEFINE_string("work_dir", None, "Where the files go (default: a "
                    "temporary directory, removed at the end).")
flags.mark_flags_as_required(["model_dir"])

FLAGS = flags.FLAGS


def _images(data_dir, count):
  if not data_dir:
    return datasets.load_embedded_arrays()[0][:count]
  parts = []
  for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
    path = os.path.join(data_dir, stem)
    parts.append(idx_files.read_idx(path if os.path.exists(path)
                                    else path + ".gz"))
  return np.concatenate(parts)[:count, :, :, None]


def _write_pngs(images, folder):
  os.makedirs(folder)
  for i, image in enumerate(images):
    tf.io.write_file(os.path.join(folder, f"{i:06d}.png"),
                     tf.io.encode_png(image))


def _timed(function):
  start = time.perf_counter()
  value = function()
  return value, time.perf_counter() - start


def _beam(export, spec, output, workers):
  return encoding_pipeline.encode(
      export, spec, output, batch_size=FLAGS.batch_size,
      pipeline_args=["--direct_running_mode=multi_processing",
                     f"--direct_num_workers={workers}"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  work = FLAGS.work_dir or tempfile.mkdtemp(prefix="bench_encode-")
  try:
    images = _images(FLAGS.data_dir, FLAGS.num_images)
    folder, small = os.path.join(work, "pngs"), os.path.join(work, "small")
    _, write_s = _timed(lambda: _write_pngs(images, folder))
    _write_pngs(images[:16], small)
    print(f"{len(images)} PNG files written in {write_s:.1f} s",
          file=sys.stderr)
    export = exporter.export_run(FLAGS.model_dir, os.path.join(work, "export"))
    _, in_process_s = _timed(lambda: searcher.build_index(
        FLAGS.model_dir, os.path.join(work, "index_images"), images=[folder]))
    _, fixed_s = _timed(lambda: _beam(export, small,
                                      os.path.join(work, "codes_small"),
                                      FLAGS.workers))
    manifest, beam_s = _timed(lambda: _beam(
        export, folder, os.path.join(work, "codes"), FLAGS.workers))
    _, from_codes_s = _timed(lambda: searcher.build_index(
        None, os.path.join(work, "index_codes"),
        from_codes=os.path.join(work, "codes")))
    with index_lib.open_index(os.path.join(work, "index_images")) as a, \
        index_lib.open_index(os.path.join(work, "index_codes")) as b:
      same = np.array_equal(a.packed, b.packed)
    count = len(images)
    rows = [("in-process search build --images", in_process_s, count),
            (f"beam encode, DirectRunner {FLAGS.workers} workers",
             beam_s, manifest["count"]),
            ("beam encode + search build --from_codes",
             beam_s + from_codes_s, manifest["count"]),
            ("beam fixed cost (16 images)", fixed_s, 16)]
    print("| run | images | seconds | images/s | time vs in-process |")
    print("|---|---|---|---|---|")
    for name, seconds, n in rows:
      print(f"| {name} | {n:,} | {seconds:.1f} | {n / seconds:,.0f} | "
            f"{seconds / in_process_s:.2f} |")
    print(f"\nrejects: {manifest['rejects']}; shards: "
          f"{len(manifest['shards'])}; same codes in both indexes: "
          f"{'yes' if same else 'NO'}")
  finally:
    if not FLAGS.work_dir:
      shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
