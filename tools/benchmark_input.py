r"""Measures the input pipelines alone, in images per second.

    python tools/benchmark_input.py                     # about 40 s on 2 cores
    python tools/benchmark_input.py --source=jpeg --cache=memory

Runs what the trainer iterates (a HashingDataset part through
dhe_tf.data.pipeline.batches), with no model, for --epochs epochs:

  * jpeg: --num_images JPEGs of --jpeg_shape (default 375x500, the size of
    Flickr's medium images) generated into --work_dir, written as image
    lists and loaded like nuswide_21: the up-front file check, then the
    training part (random crop window, decoded and resized to 224, flip;
    with --cache: whole image resized to 256, cached, cropped) and the
    database part (central window, decoded and resized).
  * fashion_mnist: the 70,000 images from IDX files in --data_dir, in
    memory: the training part (5,000) and the database part (69,000).

Output on 2 cores of an Intel Xeon @ 2.50GHz, shared with other jobs (load
average about 3), default flags (--num_images=2000 --batch_size=64):

    | pipeline                    | images | epoch 1 img/s | epoch 2 img/s |
    |-----------------------------|--------|---------------|---------------|
    | jpeg: check files up front  |   2000 |          6234 |             - |
    | jpeg: train (crop + flip)   |   1792 |           348 |           481 |
    | jpeg: database (center)     |   1800 |           343 |           459 |
    | fashion_mnist: train        |   4992 |         54366 |         79661 |
    | fashion_mnist: database     |  69000 |        101106 |        136709 |

With --cache=memory the training part reads 1,628 img/s from its second
epoch on. A JPEG costs about 2.3 ms of CPU (decoding the crop window and
resizing it), so each free core adds about 400 img/s.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow loads.

import time  # pylint: disable=g-import-not-at-top
import tempfile

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from dhe_tf.data import datasets
from dhe_tf.data import image_checks
from dhe_tf.data import image_list
from dhe_tf.data import pipeline

_SOURCE = flags.DEFINE_enum("source", "all", ["all", "jpeg", "fashion_mnist"],
                            "Which pipelines to measure.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 2000,
                                   "JPEGs to generate (jpeg source).")
_JPEG_SHAPE = flags.DEFINE_list("jpeg_shape", ["375", "500"],
                                "Height,width of the generated JPEGs.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Side of the crops.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per batch.")
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Passes over each part.")
_CACHE = flags.DEFINE_string("cache", "", "Cache of decoded images: empty, "
                             "'memory' or a directory (jpeg source).")
_WORK_DIR = flags.DEFINE_string(
    "work_dir", None, "Where the JPEGs are generated (kept, and reused when "
    "they are there already); default: a temporary directory.")
_DATA_DIR = flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist",
                                "IDX files of Fashion-MNIST.")


def generate_jpegs(directory, count, shape, seed=0, distinct=200):
  """Writes `count` JPEGs: smooth random pictures, sized like photos.

  Decoding costs the same whatever the picture, so `distinct` pictures are
  encoded and written over and over, which keeps generation quick.
  """
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(directory, "images"), exist_ok=True)
  encoded, paths = [], []
  for i in range(count):
    path = f"images/{i:06d}.jpg"
    paths.append(path)
    if os.path.exists(os.path.join(directory, path)):
      continue
    if len(encoded) < distinct:
      coarse = rng.uniform(0, 255, (1, 12, 16, 3)).astype(np.float32)
      image = tf.image.resize(coarse, shape, method="bicubic")[0]
      image += rng.normal(0, 8, image.shape).astype(np.float32)
      pixels = tf.cast(tf.clip_by_value(image, 0, 255), tf.uint8)
      encoded.append(tf.io.encode_jpeg(pixels, quality=90).numpy())
    with open(os.path.join(directory, path), "wb") as f:
      f.write(encoded[i % len(encoded)] if len(encoded) == distinct
              else encoded[-1])
  return paths


def write_lists(directory, paths, num_classes, seed=0):
  """Queries: the first tenth; training and database: the rest."""
  rng = np.random.default_rng(seed)
  labels = rng.random((len(paths), num_classes)) < 0.15
  labels[np.arange(len(paths)), rng.integers(0, num_classes, len(paths))] = 1
  queries = max(1, len(paths) // 10)
  parts = {"query": slice(0, queries), "train": slice(queries, None),
           "database": slice(queries, None)}
  for part, file in image_list.LIST_FILES.items():
    image_list.write_list(os.path.join(directory, file),
                          paths[parts[part]], labels[parts[part]])


def epochs_per_second(dataset, *, training, epochs):
  """Images per second of each pass over `dataset` through batches()."""
  batches = pipeline.batches(dataset, batch_size=_BATCH_SIZE.value,
                             training=training, seed=0)
  rates = []
  for _ in range(epochs):
    start, count = time.perf_counter(), 0
    for images, _ in batches:
      count += int(images.shape[0])
    rates.append(count / (time.perf_counter() - start))
  return count, rates


def _row(name, count, rates):
  cells = [f"{rate:13.0f}" for rate in rates] + ["            -"] * (
      2 - len(rates))
  print(f"| {name:<27} | {count:6d} | {' | '.join(cells[:2])} |")


def benchmark_jpeg(work_dir):
  paths = generate_jpegs(work_dir, _NUM_IMAGES.value,
                         [int(v) for v in _JPEG_SHAPE.value])
  write_lists(work_dir, paths, datasets.NUSWIDE_21_NUM_CLASSES)
  start = time.perf_counter()
  image_checks.check_images(os.path.join(work_dir, p) for p in paths)
  _row("jpeg: check files up front", len(paths),
       [len(paths) / (time.perf_counter() - start)])
  data = datasets.from_image_lists(
      "benchmark", work_dir, num_classes=datasets.NUSWIDE_21_NUM_CLASSES,
      topk=None, image_root=work_dir, image_size=_IMAGE_SIZE.value,
      on_bad_image="error", cache=_CACHE.value or None, seed=0)
  _row("jpeg: train (crop + flip)", *epochs_per_second(
      data.parts["train"], training=True, epochs=_EPOCHS.value))
  _row("jpeg: database (center)", *epochs_per_second(
      data.parts["database"], training=False, epochs=_EPOCHS.value))


def benchmark_fashion_mnist():
  data = datasets.load_dataset("fashion_mnist", data_dir=_DATA_DIR.value)
  _row("fashion_mnist: train", *epochs_per_second(
      data.parts["train"], training=True, epochs=_EPOCHS.value))
  _row("fashion_mnist: database", *epochs_per_second(
      data.parts["database"], training=False, epochs=_EPOCHS.value))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  print(f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, "
        f"batch {_BATCH_SIZE.value}, crops of {_IMAGE_SIZE.value} px, "
        f"cache: {_CACHE.value or 'none'}\n")
  print("| pipeline                    | images | epoch 1 img/s | "
        "epoch 2 img/s |")
  print("|-----------------------------|--------|---------------|"
        "---------------|")
  if _SOURCE.value in ("all", "jpeg"):
    if _WORK_DIR.value:
      benchmark_jpeg(_WORK_DIR.value)
    else:
      with tempfile.TemporaryDirectory() as work_dir:
        benchmark_jpeg(work_dir)
  if _SOURCE.value in ("all", "fashion_mnist"):
    benchmark_fashion_mnist()


if __name__ == "__main__":
  app.run(main)
