"""Image-list datasets on disk: the list files, read, written and checked.

A list file holds one image per line, `relative/path.jpg l0 l1 … lC-1`: its
path relative to an image root, then one 0/1 label per class (multi-hot);
blank lines are ignored. A dataset's directory holds three of them
(LIST_FILES, the names of DeepHash-pytorch's data/nuswide_21), and, when
tools/prepare_nuswide.py wrote it, the class names (CONCEPTS_FILE) and the
protocol the lists were drawn for (PROTOCOL_FILE). `parse_list` and
`load_lists` read lists, `write_list` and `write_lists` write them.

Everything that could stop a run later is checked here, up front, and
reported with the list file and line: a wrong number of labels, a label other
than 0 or 1, an image with no label, a missing, empty or undecodable image,
an empty list. With `on_bad_image="error"` the first bad entries are raised
before training starts; with "skip" they are dropped and reported.

Images are checked by dhe_tf.data.image_checks.
"""

import dataclasses
import json
import os

from absl import logging
import numpy as np
import tensorflow as tf

from dhe_tf.core import checks
from dhe_tf.data import image_checks
from dhe_tf.core.errors import ConfigError

# The files of an image-list dataset's directory (data_dir): DeepHash-pytorch's
# three lists, plus what tools/prepare_nuswide.py adds.
LIST_FILES = {"train": "train.txt", "query": "test.txt",
              "database": "database.txt"}
CONCEPTS_FILE = "concepts.txt"  # One class name per line, in label order.
# --dataset=list: the class names (either file), and the one list that a
# protocol splits when the three lists above are not there.
CLASS_NAME_FILES = ("classes.txt", CONCEPTS_FILE)
ONE_LIST = "images.txt"
PROTOCOL_FILE = "protocol.json"  # The protocol and seed the lists hold.

ON_BAD_IMAGE = ("error", "skip")
# How many bad entries an error message or a warning names.
_SHOWN = 5


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


def write_list(path, paths, labels):
  """Writes `path l0 … lC-1` lines, the format parse_list reads.

  Args:
    path: the list file.
    paths: str [N], image paths relative to the image root.
    labels: 0/1 or bool [N, C].
  """
  with open(path, "w", encoding="utf-8") as f:
    for image, row in zip(paths, np.asarray(labels).astype(np.uint8)):
      f.write(f"{image} {' '.join(map(str, row))}\n")


def write_lists(out_dir, lists, *, class_names, record):
  """Writes an image-list directory: the lists, class names and record.

  Args:
    out_dir: the directory (created if missing).
    lists: part name (a key of LIST_FILES) -> (paths str [N], labels [N, C]).
    class_names: the label columns' names, written to CONCEPTS_FILE.
    record: JSON-serialisable dict written to PROTOCOL_FILE; its "protocol"
      is the one protocol the lists may be loaded with (read_protocol).
  """
  os.makedirs(out_dir, exist_ok=True)
  for part, (paths, labels) in lists.items():
    write_list(os.path.join(out_dir, LIST_FILES[part]), paths, labels)
  with open(os.path.join(out_dir, CONCEPTS_FILE), "w", encoding="utf-8") as f:
    f.write("".join(f"{name}\n" for name in class_names))
  with open(os.path.join(out_dir, PROTOCOL_FILE), "w", encoding="utf-8") as f:
    json.dump(record, f, indent=2)
    f.write("\n")


def read_class_names(data_dir, num_classes):
  """The names in data_dir's classes.txt or concepts.txt (CLASS_NAME_FILES);
  `concept_<i>` without one."""
  found = [os.path.join(data_dir, name) for name in CLASS_NAME_FILES
           if os.path.isfile(os.path.join(data_dir, name))]
  if not found:
    return tuple(f"concept_{i}" for i in range(num_classes))
  path = found[0]
  with open(path, encoding="utf-8") as f:
    names = tuple(line.strip() for line in f if line.strip())
  if len(names) != num_classes:
    raise ConfigError(f"{path} names {len(names)} concepts; the lists have "
                      f"{num_classes} label columns.")
  return names


def read_protocol(data_dir):
  """The protocol data_dir's lists were drawn for; None if not recorded.

  Lists from elsewhere (e.g. DeepHash-pytorch's) have no PROTOCOL_FILE.
  """
  path = os.path.join(data_dir, PROTOCOL_FILE)
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f).get("protocol")


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
  problems = image_checks.check_images(os.path.join(image_root, path)
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


def check_held_out(lists):
  """Raises ConfigError when a query is also a training or database image.

  Args:
    lists: part name ("query", "train", "database") -> ImageList.
  """
  queries = set(lists["query"].paths)
  for part in ("train", "database"):
    shared = queries.intersection(lists[part].paths)
    if shared:
      raise ConfigError(
          f"{len(shared)} images are both queries ({lists['query'].list_file}"
          f") and in {lists[part].list_file}, e.g. {min(shared)}: queries "
          "must be held out.")
