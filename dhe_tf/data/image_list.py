"""Image list files: `relative/path.jpg l0 l1 … lC-1`, checked before training.

The format of DeepHash-pytorch's `data/nuswide_21/{train,test,database}.txt`:
one image per line, its path relative to an image root, then one 0/1 label
per class (multi-hot). Blank lines are ignored.

Everything that could stop a run later is checked here, up front, and
reported with the list file and line: a wrong number of labels, a label other
than 0 or 1, an image with no label, a missing, empty or undecodable image,
an empty list. With `on_bad_image="error"` the first bad entries are raised
before training starts; with "skip" they are dropped and reported.

Checking an image is cheap: for a JPEG, its markers are walked up to the
frame header (which must give a size) and its last two bytes must be the
end-of-image marker; only files that fail that (trailing bytes after the end
marker, or other formats: PNG, GIF, BMP) are decoded in full.
"""

import concurrent.futures
import dataclasses
import os

from absl import logging
import numpy as np
import tensorflow as tf

from dhe_tf.errors import ConfigError

ON_BAD_IMAGE = ("error", "skip")
# How many bad entries an error message or a warning names.
_SHOWN = 5
_CHECK_THREADS = 32


@dataclasses.dataclass(frozen=True)
class BadEntry:
  """One unusable line of a list file."""
  list_file: str
  line: int  # 1-based.
  reason: str

  def __str__(self):
    return f"{self.list_file}:{self.line}: {self.reason}"


class BadEntriesError(ConfigError):
  """Lists name unusable images; `entries` holds every BadEntry found."""

  def __init__(self, entries):
    self.entries = tuple(entries)
    super().__init__(
        f"{len(self.entries)} bad entries in the image lists: "
        f"{describe(self.entries)}. Fix them, or pass --on_bad_image=skip to "
        "drop them.")


def describe(entries):
  """The first bad entries, then how many more, on one line."""
  shown = "; ".join(str(entry) for entry in entries[:_SHOWN])
  if len(entries) > _SHOWN:
    shown += f"; and {len(entries) - _SHOWN} more"
  return shown


@dataclasses.dataclass(frozen=True)
class ImageList:
  """The good entries of one list file.

  Attributes:
    list_file: the file they come from.
    paths: str [N], image paths as written in the list.
    labels: float32 [N, C], multi-hot.
    lines: int [N], 1-based line numbers in `list_file`.
  """
  list_file: str
  paths: np.ndarray
  labels: np.ndarray
  lines: np.ndarray


def parse_list(list_file, *, num_classes):
  """Reads a list file; returns (ImageList of good lines, [BadEntry]).

  Raises:
    FileNotFoundError: `list_file` does not exist.
    ConfigError: the list holds no entries at all.
  """
  if not os.path.isfile(list_file):
    raise FileNotFoundError(f"Image list not found: {list_file}")
  paths, labels, lines, bad = [], [], [], []
  with open(list_file, encoding="utf-8") as f:
    for number, text in enumerate(f, start=1):
      fields = text.split()
      if not fields:
        continue
      values = fields[1:]
      if len(values) != num_classes:
        bad.append(BadEntry(list_file, number,
                            f"expected a path and {num_classes} labels, found "
                            f"{len(values)} labels"))
        continue
      wrong = [i for i, v in enumerate(values) if v not in ("0", "1")]
      if wrong:
        bad.append(BadEntry(list_file, number,
                            f"label {wrong[0]} is {values[wrong[0]]!r}; labels "
                            "must be 0 or 1"))
        continue
      if "1" not in values:
        bad.append(BadEntry(list_file, number,
                            f"{fields[0]} has no label (all {num_classes} are "
                            "0)"))
        continue
      paths.append(fields[0])
      labels.append([v == "1" for v in values])
      lines.append(number)
  if not paths and not bad:
    raise ConfigError(f"Image list {list_file} is empty.")
  return ImageList(list_file=list_file, paths=np.array(paths, dtype=str),
                   labels=np.array(labels, np.float32).reshape(-1, num_classes),
                   lines=np.array(lines, np.int64)), bad


def _jpeg_header_problem(f):
  """Walks JPEG markers to the frame header; returns a problem or None."""
  f.seek(2)  # After the start-of-image marker.
  while True:
    marker = f.read(2)
    if len(marker) < 2 or marker[0] != 0xFF:
      return "corrupt JPEG header"
    kind = marker[1]
    if kind == 0xFF:  # Fill byte: the marker follows.
      f.seek(-1, os.SEEK_CUR)
      continue
    if kind == 0x01 or 0xD0 <= kind <= 0xD7:  # Markers without a length.
      continue
    if kind in (0xD9, 0xDA):
      return "corrupt JPEG: no frame header before the image data"
    length_bytes = f.read(2)
    if len(length_bytes) < 2:
      return "truncated JPEG header"
    length = int.from_bytes(length_bytes, "big")
    if length < 2:
      return "corrupt JPEG header"
    # Start-of-frame markers C0..CF, except DHT (C4), JPG (C8), DAC (CC).
    if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
      frame = f.read(5)
      if len(frame) < 5:
        return "truncated JPEG header"
      height = int.from_bytes(frame[1:3], "big")
      width = int.from_bytes(frame[3:5], "big")
      if height == 0 or width == 0:
        return f"JPEG header gives size {height}x{width}"
      return None
    f.seek(length - 2, os.SEEK_CUR)


def _decode_problem(path):
  try:
    image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                               expand_animations=False)
  except tf.errors.OpError as e:
    return f"cannot decode image {path}: {e.message.splitlines()[0]}"
  if 0 in image.shape:
    return f"image {path} is empty ({image.shape[0]}x{image.shape[1]})"
  return None


def image_problem(path):
  """Why the image file at `path` cannot be used, or None when it can."""
  try:
    with open(path, "rb") as f:
      head = f.read(3)
      if not head:
        return f"image file is empty: {path}"
      if head == b"\xff\xd8\xff":
        problem = _jpeg_header_problem(f)
        if problem:
          return f"{problem}: {path}"
        f.seek(-2, os.SEEK_END)
        if f.read(2) == b"\xff\xd9":
          return None
        # No end marker: truncated, or bytes after the end marker (harmless).
  except FileNotFoundError:
    return f"image not found: {path}"
  except IsADirectoryError:
    return f"image path is a directory: {path}"
  except OSError as e:
    return f"cannot read image {path}: {e.strerror}"
  return _decode_problem(path)


def check_images(paths):
  """Returns {path: problem} for the unusable files among `paths`."""
  paths = sorted(set(paths))
  with concurrent.futures.ThreadPoolExecutor(_CHECK_THREADS) as pool:
    problems = pool.map(image_problem, paths)
    return {path: problem for path, problem in zip(paths, problems) if problem}


def load_lists(list_files, *, num_classes, image_root, on_bad_image):
  """Reads and checks several list files whose paths share one image root.

  Args:
    list_files: part name -> list file.
    num_classes: labels per line.
    image_root: directory the list paths are relative to.
    on_bad_image: "error" raises BadEntriesError naming the first bad
      entries; "skip" drops them.

  Returns:
    (part name -> ImageList of the good entries, [BadEntry] dropped).

  Raises:
    FileNotFoundError: a list file or `image_root` does not exist.
    ConfigError: an empty list, or a part left empty after skipping.
    BadEntriesError: bad entries with on_bad_image="error".
  """
  if on_bad_image not in ON_BAD_IMAGE:
    raise ConfigError(f"Unknown on_bad_image {on_bad_image!r}. "
                      f"Available: {', '.join(ON_BAD_IMAGE)}")
  if not os.path.isdir(image_root):
    raise FileNotFoundError(f"Image root not found: {image_root}")
  lists, bad = {}, []
  for part, list_file in list_files.items():
    lists[part], part_bad = parse_list(list_file, num_classes=num_classes)
    bad.extend(part_bad)
  problems = check_images(os.path.join(image_root, path)
                          for image_list in lists.values()
                          for path in image_list.paths)
  for part, image_list in lists.items():
    keep = np.ones(len(image_list.paths), dtype=bool)
    for i, path in enumerate(image_list.paths):
      problem = problems.get(os.path.join(image_root, path))
      if problem:
        keep[i] = False
        bad.append(BadEntry(image_list.list_file, int(image_list.lines[i]),
                            problem))
    lists[part] = ImageList(image_list.list_file, image_list.paths[keep],
                            image_list.labels[keep], image_list.lines[keep])
  order = {list_file: i for i, list_file in enumerate(list_files.values())}
  bad.sort(key=lambda entry: (order[entry.list_file], entry.line))
  if bad and on_bad_image == "error":
    raise BadEntriesError(bad)
  if bad:
    logging.warning("Skipped %d bad entries of the image lists "
                    "(--on_bad_image=skip): %s", len(bad), describe(bad))
  for image_list in lists.values():
    if not len(image_list.paths):
      raise ConfigError(f"Image list {image_list.list_file} has no usable "
                        "entry left.")
  return lists, bad
