"""Class folders: DIR/<class>/<image>, the convention of Keras'
`image_dataset_from_directory` and torchvision's `ImageFolder`.

Class names are the subfolders' names, sorted (class id = position in that
order). Each class folder is walked recursively, symlinks followed (a link
that loops is refused). Files whose extension is an image format TensorFlow
decodes are the class's images; everything else — other extensions, hidden
files such as `.DS_Store`, hidden folders — is ignored and counted, never
fatal. Whether an image file can really be decoded is checked later, with the
list readers' check (dhe_tf.data.image_list).
"""

import collections
import dataclasses
import os

import numpy as np

from dhe_tf.core.errors import ConfigError

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


def scan(root):
  """Lists the images of the class folders in `root`.

  Raises:
    ConfigError: root missing, not a directory, or with fewer than two
      class folders; a class folder without an image; a symbolic link loop.
  """
  if not root:
    raise ConfigError("--dataset=folder reads one subfolder per class from "
                      "--data_dir: pass --data_dir=DIR.")
  if not os.path.isdir(root):
    raise ConfigError(f"--data_dir={root} is not a directory.")
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
