"""NUS-WIDE-21 image lists from the files of the official NUS-WIDE release.

The release (lms.comp.nus.edu.sg/research/NUS-WIDE.htm) comes as:

    ImageList/Imagelist.txt               269,648 image paths, one per line,
                                          `actor\\0001_2124494179.jpg`
    Groundtruth/AllLabels/Labels_<c>.txt  one 0/1 per line, in Imagelist order
    ConceptsList/Concepts81.txt           the 81 concept names (optional here)
    Flickr/<folder>/<file>.jpg            the images (Flickr.zip, separate)

NUS-WIDE-21 keeps the 21 concepts that label the most images and the images
that carry at least one of them (195,834 in the full release). Its hashing
protocol (`2k10k`): 100 queries and 500 training images per concept, drawn
without repetition by dhe_tf.data.splits.split_per_concept (concepts from the
rarest; queries first, then training images, each among the images carrying
the concept that are not drawn yet), so 2,100 queries and 10,500 training
images; the database is every image but the queries. `prepare_lists` writes
them as an image-list directory (dhe_tf.data.image_list: lines
`path l0 … l20`, as in DeepHash-pytorch's data/nuswide_21), which
dhe_tf.data.datasets reads as dataset "nuswide_21".
"""

import os
import re

import numpy as np

from dhe_tf.data import datasets
from dhe_tf.data import image_checks
from dhe_tf.data import image_list
from dhe_tf.data import protocols
from dhe_tf.data import splits
from dhe_tf.core.errors import ConfigError

_IMAGE_LISTS = ("ImageList/Imagelist.txt", "ImageList/ImageList.txt",
                "Imagelist.txt")
_CONCEPT_LISTS = ("ConceptsList/Concepts81.txt", "Concepts81.txt")
_LABELS_DIR = "Groundtruth/AllLabels"
# `C:\ImageData\Flickr\actor\0001_2124494179.jpg` in some list files.
_WINDOWS_PREFIX = re.compile(r"^[A-Za-z]:/(?:.*/)?Flickr/", re.IGNORECASE)


def _first_existing(directory, candidates, what):
  for candidate in candidates:
    path = os.path.join(directory, candidate)
    if os.path.isfile(path):
      return path
  raise FileNotFoundError(
      f"No {what} in {directory} (looked for {', '.join(candidates)}): pass "
      "--nuswide_dir pointing to the unpacked NUS-WIDE release.")


def _read_lines(path):
  """Stripped lines of a text file, without trailing blank lines."""
  with open(path, encoding="utf-8", errors="replace") as f:
    lines = [line.strip() for line in f.read().splitlines()]
  while lines and not lines[-1]:
    lines.pop()
  return lines


def image_path(release_path):
  """`actor/0001_2124494179.jpg` from a line of the release's image lists."""
  path = release_path.strip().replace("\\", "/")
  return _WINDOWS_PREFIX.sub("", path)


def read_release(nuswide_dir):
  """Reads image paths and the 81 concept labels of the release.

  Returns:
    (paths str [N] relative to the Flickr folder, labels bool [N, 81],
    concept names [81]).

  Raises:
    FileNotFoundError: a file of the release is missing.
    ConfigError: a label file has the wrong length or a value other than 0
      or 1 (named with its line).
  """
  list_path = _first_existing(nuswide_dir, _IMAGE_LISTS, "image list")
  paths = np.array([image_path(line) for line in _read_lines(list_path)],
                   dtype=str)
  labels_dir = os.path.join(nuswide_dir, _LABELS_DIR)
  try:
    concepts = [c for c in _read_lines(
        _first_existing(nuswide_dir, _CONCEPT_LISTS, "concept list")) if c]
  except FileNotFoundError:
    if not os.path.isdir(labels_dir):
      raise FileNotFoundError(
          f"No label directory {labels_dir}: pass --nuswide_dir pointing to "
          "the unpacked NUS-WIDE release.") from None
    concepts = sorted(name[len("Labels_"):-len(".txt")]
                      for name in os.listdir(labels_dir)
                      if name.startswith("Labels_") and name.endswith(".txt"))
  columns = []
  for concept in concepts:
    path = os.path.join(labels_dir, f"Labels_{concept}.txt")
    if not os.path.isfile(path):
      raise FileNotFoundError(f"Label file not found: {path}")
    values = np.array(_read_lines(path), dtype=str)
    if len(values) != len(paths):
      raise ConfigError(f"{path} has {len(values)} lines but {list_path} "
                        f"lists {len(paths)} images.")
    wrong = np.flatnonzero((values != "0") & (values != "1"))
    if len(wrong):
      raise ConfigError(f"{path}:{wrong[0] + 1}: label is "
                        f"{str(values[wrong[0]])!r}; labels must be 0 or 1.")
    columns.append(values == "1")
  if not columns:
    raise ConfigError(f"No Labels_<concept>.txt files in {labels_dir}.")
  return paths, np.stack(columns, axis=1), concepts


def most_frequent(labels, concepts, count):
  """Columns of the `count` concepts labelling most images, most first.

  Ties are broken by concept name, so the choice is reproducible.
  """
  if count > len(concepts):
    raise ConfigError(f"Asked for the {count} most frequent concepts of "
                      f"{len(concepts)}.")
  frequency = labels.sum(axis=0)
  order = sorted(range(len(concepts)),
                 key=lambda c: (-frequency[c], concepts[c]))
  return np.array(order[:count])


def prepare_lists(nuswide_dir, out_dir, *, protocol="2k10k", split_seed=0,
                  image_root=None,
                  num_concepts=datasets.NUSWIDE_21_NUM_CLASSES):
  """Draws a NUS-WIDE-21 split and writes it as list files.

  Args:
    nuswide_dir: the unpacked NUS-WIDE release (see the module docstring).
    out_dir: where train.txt, test.txt (queries), database.txt,
      concepts.txt and protocol.json are written (created if missing).
    protocol: a key of protocols.NUSWIDE_PROTOCOLS.
    split_seed: seed of the draw.
    image_root: if given, the folder the image paths are relative to
      (Flickr/); images missing there or unreadable are left out before
      the draw, so that the protocol's counts hold for the images you have.
    num_concepts: how many of the most frequent concepts to keep.

  Returns:
    The dict written to protocol.json: protocol, seed, concepts, counts.
  """
  if protocol not in protocols.NUSWIDE_PROTOCOLS:
    raise ConfigError(f"Unknown protocol {protocol!r} for NUS-WIDE. Available:"
                      f" {', '.join(sorted(protocols.NUSWIDE_PROTOCOLS))}")
  settings = protocols.NUSWIDE_PROTOCOLS[protocol]
  paths, labels, concepts = read_release(nuswide_dir)
  columns = most_frequent(labels, concepts, num_concepts)
  labels = labels[:, columns]
  labelled = labels.any(axis=1)
  summary = {"protocol": protocol, "split_seed": split_seed,
             "concepts": [concepts[c] for c in columns],
             "release_images": int(len(paths)),
             "without_concept": int((~labelled).sum())}
  paths, labels = paths[labelled], labels[labelled]
  if image_root is not None:
    if not os.path.isdir(image_root):
      raise FileNotFoundError(f"Image root not found: {image_root}")
    problems = image_checks.check_images(os.path.join(image_root, p)
                                       for p in paths)
    usable = np.array([os.path.join(image_root, p) not in problems
                       for p in paths], dtype=bool)
    summary["unusable_images"] = int((~usable).sum())
    paths, labels = paths[usable], labels[usable]
  split = splits.split_per_concept(
      labels, queries_per_class=settings.queries_per_class,
      train_per_class=settings.train_per_class,
      database_size=settings.database_size, seed=split_seed,
      concept_names=summary["concepts"])
  summary["counts"] = {part: int(len(indices))
                       for part, indices in split.items()}
  image_list.write_lists(
      out_dir, {part: (paths[indices], labels[indices])
                for part, indices in split.items()},
      class_names=summary["concepts"], record=summary)
  return summary
