r"""Measures --dataset=folder on a class folder written from IDX files.

    python tools/benchmark_folder.py --folder=data/fashion_mnist_folder \
        --idx_dir=/usr/share/datasets/fashion-mnist \
        --output=tools/results/benchmark_folder/results.md  # ~7 min, 2 cores

The folder is what tools/write_image_folder.py writes: DIR/<class>/NNNNN.png,
NNNNN the image's position in the IDX files (train, then t10k). Prints:

  * correctness: every image read the way the folder reader reads it
    (dhe_tf.data.images.fitted_parts, the decode + fit_square that
    dhe_tf.data.folders.load maps over the files) against the IDX image of
    its index, pixel for pixel, and each file's class folder against the
    IDX label;
  * the check before training: dhe_tf.data.image_checks.check_images over
    every file, as folders.load runs it, in files/s;
  * input speed, in images/s, side by side in alternating rounds (so that
    other jobs on the machine slow every pipeline alike; only the ratios
    carry over to another machine): a plain tf.data script that uses no
    dhe_tf code (list_files → read_file → decode_png → resize → batch →
    prefetch), the folder reader's parts batched the same way, and the
    parts through dhe_tf.data.pipeline.batches(training=True) as the
    trainer iterates them (shuffle, batch, cast to float32, prefetch);
  * with --profile, the map functions alone (the same alternating rounds),
    and the reader's with one step swapped for the plain map's, which says
    what each step of the reader's map costs.

Images/s vary with the other jobs on the machine from pass to pass; the
CPU time per image (this process's, all threads) varies less, and its ratio
is the steadier measure of what a pipeline costs. With --limit the plain
script takes the first N files of its glob (class folders in name order),
the dhe_tf pipelines the first N by index: as many images, other files.

Every file is read once (correctness) before the timed passes, so the OS
file cache holds them all for every pipeline alike. --limit=N keeps the
first N images (by index): a few seconds on a folder of a few dozen images.

On the 70,000 Fashion-MNIST PNGs, 2 cores of an Intel Xeon shared with two
trainings (load average 4 to 12; results.md has the tables): every image
equal to its IDX image and in its label's folder; check_images 343 to 467
files/s (150 to 204 s); the reader's pipeline 0.57 to 0.74 of the plain
script's images/s, 0.67 to 0.73 of its CPU efficiency (88 against 59 µs of
CPU per image): its map's two tf.conds (images.to_channels, fit_square)
cost about 10 to 20 µs each.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow loads.

import datetime  # pylint: disable=g-import-not-at-top
import platform
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from dhe_tf.data import datasets
from dhe_tf.data import folders
from dhe_tf.data import idx_files
from dhe_tf.data import image_checks
from dhe_tf.data import images as images_lib
from dhe_tf.data import pipeline

_FOLDER = flags.DEFINE_string("folder", None, "Class folder written by "
                              "tools/write_image_folder.py.", required=True)
_IDX_DIR = flags.DEFINE_string("idx_dir", "/usr/share/datasets/fashion-mnist",
                               "The IDX files the folder was written from.")
_CLASSES = flags.DEFINE_enum("classes", "fashion_mnist",
                             ["fashion_mnist", "mnist"],
                             "Class names of the IDX labels.")
_LIMIT = flags.DEFINE_integer("limit", None, "Only the first N images.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Images per batch.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed passes of each pipeline, "
                               "alternating.")
_PROFILE = flags.DEFINE_bool("profile", True, "Also time the map functions "
                             "alone, step by step.")
_PROFILE_LIMIT = flags.DEFINE_integer(
    "profile_limit", 20000, "Images of each pass of --profile.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the tables, the "
                              "machine and the date to this Markdown file.")

_CLASS_NAMES = {"fashion_mnist": datasets.FASHION_MNIST_CLASSES,
                "mnist": datasets.MNIST_CLASSES}
_SHOWN_MISMATCHES = 5


def folder_files(folder, limit=None):
  """(paths [N], IDX indices int64 [N], class folder names [N]) of the
  images of `folder` (folders.scan), by index, the first `limit`."""
  found = folders.scan(folder)
  try:
    indices = np.array([int(os.path.splitext(os.path.basename(path))[0])
                        for path in found.paths], np.int64)
  except ValueError as e:
    raise ValueError(f"{folder} has a file not named by its IDX index "
                     f"(NNNNN.png): {e}") from e
  order = np.argsort(indices, kind="stable")[:limit]
  paths = np.array([os.path.join(folder, path) for path in found.paths])
  names = np.array(found.class_names)[found.class_ids]
  return paths[order], indices[order], names[order]


# --- Correctness -----------------------------------------------------------


def read_as_the_reader(paths, indices, image_size, channels):
  """{index: uint8 [image_size, image_size, channels]} of every file that
  the folder reader yields, read by its own parts (images.fitted_parts)."""
  # The index rides as the label (float32 holds integers to 2^24 exactly),
  # so that an image the reader drops cannot shift the others.
  labels = indices.astype(np.float32)[:, None]
  part = images_lib.fitted_parts(
      "benchmark_folder", {"all": paths}, {"all": labels},
      image_size=image_size, channels=channels)["all"]
  read = {}
  for images, batch_indices in part.batch(1024).as_numpy_iterator():
    read.update(zip(batch_indices[:, 0].astype(np.int64), images))
  return read


def compare_pixels(read, indices, idx_images):
  """(equal count, lines on the first mismatches and missing images)."""
  equal, problems = 0, []
  for index in indices:
    if index not in read:
      problems.append(f"image {index}: not yielded by the reader")
      continue
    expected = idx_images[index]
    if read[index].shape != expected.shape:
      problems.append(f"image {index}: shape {read[index].shape}, IDX "
                      f"{expected.shape}")
      continue
    differing = np.count_nonzero(read[index] != expected)
    if differing:
      largest = np.abs(read[index].astype(int) - expected.astype(int)).max()
      problems.append(f"image {index}: {differing} pixels differ, by up to "
                      f"{largest}")
    else:
      equal += 1
  return equal, problems


def compare_labels(names, indices, idx_labels, class_names):
  """(count in the folder of their IDX label, lines on the first others)."""
  expected = np.array([folders.folder_name(class_names[label])
                       for label in idx_labels[indices]])
  wrong = np.flatnonzero(names != expected)
  return len(indices) - len(wrong), [
      f"image {indices[i]}: in {str(names[i])!r}, IDX label "
      f"{str(expected[i])!r}"
      for i in wrong[:_SHOWN_MISMATCHES]]


# --- Input speed -----------------------------------------------------------


def plain_pipeline(folder, image_size, batch_size, limit):
  """A plain tf.data script: no dhe_tf code."""
  files = tf.data.Dataset.list_files(os.path.join(folder, "*", "*.png"),
                                     shuffle=False)
  if limit:
    files = files.take(limit)

  def load(path):
    image = tf.io.decode_png(tf.io.read_file(path), channels=1)
    image = tf.image.resize(image, [image_size, image_size])
    return tf.cast(image, tf.uint8)

  return files.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(
      batch_size).prefetch(tf.data.AUTOTUNE)


def reader_part(paths, class_ids, num_classes, image_size):
  """The folder reader's part of these files (as folders.load builds it)."""
  one_hot = np.eye(num_classes, dtype=np.float32)[class_ids]
  return images_lib.fitted_parts(
      "benchmark_folder", {"train": paths}, {"train": one_hot},
      image_size=image_size, channels=1)["train"]


def speed_pipelines(paths, class_ids, num_classes, *, folder, image_size,
                    batch_size, limit):
  """name → a function that builds the pipeline afresh."""
  def reader():
    return reader_part(paths, class_ids, num_classes, image_size)
  return {
      "plain tf.data (decode_png, resize)": lambda: plain_pipeline(
          folder, image_size, batch_size, limit),
      "dhe_tf fitted_parts → batch → prefetch": lambda: reader().batch(
          batch_size).prefetch(tf.data.AUTOTUNE),
      "dhe_tf as the trainer (pipeline.batches)": lambda: pipeline.batches(
          reader(), batch_size=batch_size, training=True, seed=0),
  }


def map_functions(image_size):
  """name → map function of a path: the two pipelines' maps, and the
  reader's with one of its steps swapped for the plain map's, which says
  what each step costs."""
  def read(path):
    return tf.strings.length(tf.io.read_file(path))

  def decode_png(path):
    return tf.io.decode_png(tf.io.read_file(path), channels=1)

  def decode_image_first_channel(path):
    # images.decode without its tf.cond (to_channels): right for grey files.
    image = tf.io.decode_image(tf.io.read_file(path), channels=0,
                               expand_animations=False)[..., :1]
    image.set_shape([None, None, 1])
    return image

  def decode(path):
    return images_lib.decode(tf.io.read_file(path), 1)

  def resize_cast(image):
    return tf.cast(tf.image.resize(image, [image_size, image_size]),
                   tf.uint8)

  def fit(image):
    return images_lib.fit_square(image, image_size, image_size)

  return {
      "read_file": read,
      "read_file + decode_png(channels=1)": decode_png,
      "read_file + decode_image(channels=0)[..., :1]":
          decode_image_first_channel,
      "read_file + images.decode(channels=1)": decode,
      "plain map: decode_png + resize + cast":
          lambda path: resize_cast(decode_png(path)),
      "images.decode + resize + cast": lambda path: resize_cast(decode(path)),
      "decode_png + fit_square": lambda path: fit(decode_png(path)),
      "reader map: images.decode + fit_square": lambda path: fit(decode(path)),
  }


def images_per_second(dataset):
  """(images, images/s, CPU µs per image) of one pass over a batched
  dataset; CPU time is this process's, all threads."""
  start, cpu, count = time.perf_counter(), time.process_time(), 0
  for batch in dataset:
    count += int(tf.shape(tf.nest.flatten(batch)[0])[0])
  seconds = time.perf_counter() - start
  return count, count / seconds, (time.process_time() - cpu) / count * 1e6


def alternating_rounds(builders, rounds):
  """name → (images, [images/s of each round], [CPU µs/image of each]);
  each round runs every pipeline once, starting one further along the list
  each round."""
  names = list(builders)
  results = {name: (0, [], []) for name in names}
  for round_index in range(rounds):
    shift = round_index % len(names)
    for name in names[shift:] + names[:shift]:
      count, rate, cpu = images_per_second(builders[name]())
      results[name] = (count, results[name][1] + [rate],
                       results[name][2] + [cpu])
  return results


# --- Output ----------------------------------------------------------------


def _speed_table(results, reference, rounds):
  """Markdown lines: each round's images/s, the medians, and the ratios to
  `reference` (images/s: this / reference; CPU: reference's CPU time per
  image / this one's, so that above 1 is faster in both)."""
  rounds_header = " | ".join(f"round {r + 1} img/s" for r in range(rounds))
  lines = [f"| pipeline | images | {rounds_header} | median img/s | "
           "ratio | median CPU µs/image | CPU ratio |",
           "|---|---:|" + "---:|" * rounds + "---:|---:|---:|---:|"]
  base = statistics.median(results[reference][1])
  base_cpu = statistics.median(results[reference][2])
  for name, (count, rates, cpus) in results.items():
    median, cpu = statistics.median(rates), statistics.median(cpus)
    cells = " | ".join(f"{rate:,.0f}" for rate in rates)
    lines.append(f"| {name} | {count:,} | {cells} | {median:,.0f} | "
                 f"{median / base:.2f} | {cpu:,.0f} | {base_cpu / cpu:.2f} |")
  return lines


def _machine():
  try:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True,
                           check=True).stdout
    model = next(line.split(":", 1)[1].strip() for line in
                 lscpu.splitlines() if line.startswith("Model name"))
  except (OSError, subprocess.CalledProcessError, StopIteration):
    model = platform.processor() or "unknown CPU"
  return f"{model}, {os.cpu_count()} cores"


def correctness_lines(paths, indices, names, idx_images, idx_labels):
  """The table of the pixel, label and file checks (Markdown lines)."""
  total = len(paths)
  read = read_as_the_reader(paths, indices, idx_images.shape[1],
                            idx_images.shape[-1])
  equal, pixel_problems = compare_pixels(read, indices, idx_images)
  in_place, label_problems = compare_labels(
      names, indices, idx_labels, _CLASS_NAMES[_CLASSES.value])
  start = time.perf_counter()
  problems = image_checks.check_images(paths)
  seconds = time.perf_counter() - start
  lines = [
      "| measure | files | result |",
      "|---|---:|---|",
      f"| pixels of the folder reader (images.fitted_parts: decode + "
      f"fit_square) = the IDX image of the file's index | {total:,} | "
      f"{equal:,} of {total:,} equal |",
      f"| class folder = the IDX label's | {total:,} | {in_place:,} of "
      f"{total:,} equal |",
      f"| image_checks.check_images before training | {total:,} | "
      f"{seconds:.1f} s, {total / seconds:,.0f} files/s, {len(problems)} "
      "problems |", ""]
  shown = (pixel_problems[:_SHOWN_MISMATCHES] + label_problems +
           list(problems.values())[:_SHOWN_MISMATCHES])
  return lines + [f"- {problem}" for problem in shown] + ([""] if shown
                                                          else [])


def speed_lines(paths, names, image_size):
  """The table of the three pipelines' speeds (Markdown lines)."""
  class_ids = np.unique(names, return_inverse=True)[1]
  builders = speed_pipelines(
      paths, class_ids, len(np.unique(names)), folder=_FOLDER.value,
      image_size=image_size, batch_size=_BATCH_SIZE.value, limit=_LIMIT.value)
  reference = next(iter(builders))
  return [f"Input speed, batches of {_BATCH_SIZE.value}, {_ROUNDS.value} "
          f"alternating rounds; ratios to the {reference}:", ""] + (
              _speed_table(alternating_rounds(builders, _ROUNDS.value),
                           reference, _ROUNDS.value)) + [""]


def profile_lines(paths, image_size):
  """The table of the map functions alone (Markdown lines)."""
  files = tf.data.Dataset.from_tensor_slices(paths[:_PROFILE_LIMIT.value])

  def builder(function):
    return lambda: files.map(function, num_parallel_calls=tf.data.AUTOTUNE
                             ).batch(_BATCH_SIZE.value).prefetch(
                                 tf.data.AUTOTUNE)

  builders = {name: builder(function)
              for name, function in map_functions(image_size).items()}
  reference = "plain map: decode_png + resize + cast"
  return [f"The map functions alone (from_tensor_slices(paths) → map → "
          f"batch → prefetch), {_ROUNDS.value} alternating rounds; ratios to "
          f"the {reference}:", ""] + _speed_table(
              alternating_rounds(builders, _ROUNDS.value), reference,
              _ROUNDS.value) + [""]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  lines = [f"Machine: {_machine()}; TensorFlow {tf.__version__}; "
           f"{datetime.date.today().isoformat()}; load average at the start "
           f"{os.getloadavg()[0]:.1f} (other jobs share the CPU: compare "
           "ratios, not images/s).",
           f"Command: python {' '.join(sys.argv)}", ""]
  print("\n".join(lines), flush=True)
  if not os.path.isdir(_FOLDER.value):
    raise app.UsageError(f"--folder={_FOLDER.value} is not a directory.")
  idx_images, idx_labels = idx_files.load_idx_directory(_IDX_DIR.value)
  paths, indices, names = folder_files(_FOLDER.value, _LIMIT.value)
  if len(paths) < _BATCH_SIZE.value:
    raise app.UsageError(f"{len(paths)} images do not fill one training "
                         f"batch of --batch_size={_BATCH_SIZE.value}.")
  tables = [lambda: correctness_lines(paths, indices, names, idx_images,
                                      idx_labels),
            lambda: speed_lines(paths, names, idx_images.shape[1])]
  if _PROFILE.value:
    tables.append(lambda: profile_lines(paths, idx_images.shape[1]))
  for table in tables:
    table_lines = table()
    print("\n".join(table_lines), flush=True)
    lines += table_lines
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)),
                exist_ok=True)
    with open(_OUTPUT.value, "w", encoding="utf-8") as f:
      f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  app.run(main)
