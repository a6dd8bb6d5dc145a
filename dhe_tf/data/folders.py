"""Class folders: DIR/<class>/<image>, the convention of Keras'
`image_dataset_from_directory` and torchvision's `ImageFolder`.

Class names are the subfolders' names, sorted (class id = position in that
order). Each class folder is walked recursively, symlinks followed (a link
that loops is refused). Files whose extension is an image format TensorFlow
decodes are the class's images; everything else — other extensions, hidden
files such as `.DS_Store`, hidden folders — is ignored and counted, never
fatal. Whether an image file can really be decoded is checked later, with the
list readers' check (dhe_tf.data.image_checks).
"""

import collections
import dataclasses
import os
import shutil
import tempfile

from absl import logging
import numpy as np
import tensorflow as tf

from dhe_tf.core.errors import ConfigError
from dhe_tf.data import image_checks
from dhe_tf.data import images as images_lib
from dhe_tf.data import protocols
from dhe_tf.data.hashing_dataset import HashingDataset

PARTS = ("query", "train", "database")
# What tf.io.decode_image reads (WebP since TensorFlow 2.16).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")


@dataclasses.dataclass(frozen=True)
class ClassFolders:
  """The images of a class-folder directory.

  Attributes:
    root: the directory.
    paths: str [N], image paths relative to root, sorted by class then path.
    class_ids: int64 [N], the class of each image.
    class_names: the class folders' names, sorted.
    ignored: {reason: count} of the files that are not images.
  """
  root: str
  paths: np.ndarray
  class_ids: np.ndarray
  class_names: tuple
  ignored: dict


def _hidden(name):
  return name.startswith(".")


def _images_of(root, class_name, ignored):
  """Sorted image paths under root/class_name, relative to root."""
  found, visited = [], set()
  top = os.path.join(root, class_name)
  for directory, folders, files in os.walk(top, followlinks=True):
    real = os.path.realpath(directory)
    if real in visited:
      raise ConfigError(f"The class folder {top} has a symbolic link that "
                        f"loops back to {real}: remove the link.")
    visited.add(real)
    for folder in [f for f in folders if _hidden(f)]:
      folders.remove(folder)
      ignored["hidden folder"] += 1
    folders.sort()
    for name in files:
      extension = os.path.splitext(name)[1].lower()
      if _hidden(name):
        ignored["hidden file"] += 1
      elif extension not in IMAGE_EXTENSIONS:
        ignored[f"not an image ({extension or 'no extension'})"] += 1
      else:
        found.append(os.path.relpath(os.path.join(directory, name), root))
  return sorted(found)


def _check_root(root):
  if not root:
    raise ConfigError("--dataset=folder reads one subfolder per class from "
                      "--data_dir: pass --data_dir=DIR.")
  if not os.path.isdir(root):
    raise ConfigError(f"--data_dir={root} is not a directory.")


def class_names(root):
  """The class folders' names, sorted (no file is read)."""
  _check_root(root)
  return tuple(sorted(name for name in os.listdir(root) if not _hidden(name)
                      and os.path.isdir(os.path.join(root, name))))


def scan(root):
  """Lists the images of the class folders in `root`.

  Raises:
    ConfigError: root missing, not a directory, or with fewer than two
      class folders; a class folder without an image; a symbolic link loop.
  """
  _check_root(root)
  ignored = collections.Counter()
  class_names = []
  for name in sorted(os.listdir(root)):
    if _hidden(name):
      ignored["hidden file" if os.path.isfile(os.path.join(root, name))
              else "hidden folder"] += 1
    elif os.path.isdir(os.path.join(root, name)):
      class_names.append(name)
    else:
      ignored["file beside the class folders"] += 1
  if len(class_names) < 2:
    found = (f"only the class folder {class_names[0]!r}" if class_names
             else "no class folder")
    raise ConfigError(f"--data_dir={root} has {found}: a hashing model needs "
                      "one subfolder per class, at least two.")
  paths, class_ids = [], []
  for class_id, name in enumerate(class_names):
    images = _images_of(root, name, ignored)
    if not images:
      raise ConfigError(f"The class folder {os.path.join(root, name)} has no "
                        f"image ({', '.join(IMAGE_EXTENSIONS)}).")
    paths.extend(images)
    class_ids.extend([class_id] * len(images))
  return ClassFolders(root=root, paths=np.array(paths),
                      class_ids=np.array(class_ids, np.int64),
                      class_names=tuple(class_names), ignored=dict(ignored))


COLOR_MODES = {"rgb": 3, "grayscale": 1}  # Keras' names → channels.


def _checked_files(root, paths, on_bad_image):
  """(keep mask [N], "path: problem" of the dropped) after checking every
  image file; BadEntriesError-like ConfigError naming them with "error"."""
  problems = image_checks.check_images(os.path.join(root, p) for p in paths)
  keep = np.array([os.path.join(root, p) not in problems for p in paths],
                  dtype=bool)
  bad = [problems[os.path.join(root, p)] for p in paths[~keep]]
  if bad and on_bad_image == "error":
    shown = "; ".join(bad[:5]) + ("" if len(bad) <= 5 else
                                  f"; and {len(bad) - 5} more")
    raise ConfigError(f"{len(bad)} unusable image files in {root}: {shown}. "
                      "Fix or remove them, or pass --on_bad_image=skip.")
  if bad:
    logging.warning("Skipped %d unusable image files (--on_bad_image=skip): "
                    "%s", len(bad), "; ".join(bad[:5]))
  return keep, bad


def load(*, protocol, split_seed, data_dir, image_root, image_size,
            on_bad_image, cache, seed, seen_classes, queries_per_class,
            train_per_class, color_mode):
  """The HashingDataset of the class folders in data_dir: every image file
  checked (image_checks), then split by a collection protocol
  (protocols.COLLECTION_PROTOCOLS, counts from the command line) drawn with
  split_seed; a DatasetSpec's `load` (dhe_tf.data.datasets)."""
  if image_root:
    raise ConfigError("image_root applies to list files; a class folder's "
                      f"images are under --data_dir. Received: image_root="
                      f"{image_root}")
  found = scan(data_dir)
  if found.ignored:
    logging.info("Ignored in %s (not images): %s", data_dir, ", ".join(
        f"{count} {reason}" for reason, count in sorted(found.ignored.items())))
  keep, bad = _checked_files(data_dir, found.paths, on_bad_image)
  paths, class_ids = found.paths[keep], found.class_ids[keep]
  settings = protocols.with_counts(
      protocols.COLLECTION_PROTOCOLS[protocol],
      queries_per_class=queries_per_class, train_per_class=train_per_class)
  split = protocols.single_label_split(
      "folder", protocol, class_ids, split_seed=split_seed,
      num_classes=len(found.class_names), seen_classes=seen_classes,
      settings=settings, class_names=found.class_names)
  # Training images in a seeded order: the files are sorted by class, and
  # the batching pipeline's shuffle buffer only mixes nearby images.
  split["train"] = np.random.default_rng(seed).permutation(split["train"])
  one_hot = np.eye(len(found.class_names), dtype=np.float32)[class_ids]
  image_size = image_size or images_lib.DEFAULT_IMAGE_SIZE
  channels = COLOR_MODES[color_mode]
  parts = images_lib.fitted_parts(
      "folder", {part: [os.path.join(data_dir, p) for p in
                        paths[split[part]]] for part in PARTS},
      {part: one_hot[split[part]] for part in PARTS},
      image_size=image_size, channels=channels, cache=cache)
  recorded = {part: paths[split[part]] for part in PARTS}
  if "seen_classes" in split:
    recorded["seen_classes"] = split["seen_classes"]
  if bad:
    recorded["skipped"] = np.array(bad)
  return HashingDataset(name="folder", parts=parts, split=recorded,
                        class_names=found.class_names, multi_label=False,
                        topk=None, image_shape=(image_size, image_size,
                                                channels))


def folder_name(class_name):
  """A class name as a folder name: "/" (and the OS separator) become "_"."""
  return class_name.replace("/", "_").replace(os.sep, "_")


def write(images, class_ids, class_names, out_dir):
  """Writes uint8 images [N, H, W, C] as out_dir/<class>/<index>.png, the
  layout `scan` reads (tools/write_image_folder.py; a file is named by its
  index, so a reader's pixels can be checked image by image). Written under
  a temporary name and renamed at the end: nothing half-written is left.

  Returns:
    {folder name: number of images}.
  """
  if os.path.exists(out_dir):
    raise ConfigError(f"{out_dir} exists: pass a new --out_dir.")
  parent = os.path.dirname(os.path.abspath(out_dir))
  os.makedirs(parent, exist_ok=True)
  work = tempfile.mkdtemp(prefix=".writing_", dir=parent)
  try:
    counts = {}
    width = len(str(len(images) - 1))
    for index, (image, class_id) in enumerate(zip(images, class_ids)):
      name = folder_name(class_names[class_id])
      if name not in counts:
        os.makedirs(os.path.join(work, name))
        counts[name] = 0
      counts[name] += 1
      tf.io.write_file(os.path.join(work, name, f"{index:0{width}d}.png"),
                       tf.io.encode_png(image))
    os.rename(work, out_dir)
  except BaseException:
    shutil.rmtree(work, ignore_errors=True)
    raise
  return counts
