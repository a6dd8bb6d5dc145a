"""--dataset=list: a labelled collection described by list files, the
field's format (DeepHash-pytorch's): one `path l0 … l{C-1}` line an image, C
taken from the files, multi-label allowed, the columns named by classes.txt
(or concepts.txt) when there is one (dhe_tf.data.image_list reads and
checks the files).

Either the three lists of a given split (train.txt, test.txt = the
queries, database.txt: --protocol=lists; DeepHash-pytorch's files load as
they are) or one list, images.txt, split by --protocol=per_class or unseen
with --queries_per_class / --train_per_class. nuswide_21 is this reader
(from_lists) with its own protocols and the literature's 224/256 crops.
"""

import os

import numpy as np

from dhe_tf.core.errors import ConfigError
from dhe_tf.data import image_list
from dhe_tf.data import images as images_lib
from dhe_tf.data import protocols
from dhe_tf.data import splits
from dhe_tf.data.hashing_dataset import HashingDataset

_GIVEN = ", ".join(image_list.LIST_FILES.values())
_ONE = image_list.ONE_LIST


def _seeded_train_order(lists, seed):
  # Training images in a seeded random order (lists are often sorted by
  # folder, and the batching pipeline's shuffle buffer only mixes nearby
  # images); split["train"] records that order.
  train = lists["train"]
  order = np.random.default_rng(seed).permutation(len(train.paths))
  lists["train"] = image_list.ImageList(train.list_file, train.paths[order],
                             train.labels[order], train.lines[order])


def _dataset(name, lists, skipped, *, class_names, topk, image_root,
             image_size, cache, seed, center_crop, channels=3, extra=None):
  """The HashingDataset of checked lists (part -> image_list.ImageList)."""
  _seeded_train_order(lists, seed)
  image_size = image_size or images_lib.DEFAULT_IMAGE_SIZE
  files = {part: [os.path.join(image_root, path)
                  for path in lists[part].paths] for part in lists}
  labels = {part: lists[part].labels for part in lists}
  if center_crop:  # The literature's 224/256 crops (NUS-WIDE).
    parts = images_lib.file_parts(name, files, labels, image_size=image_size,
                                  seed=seed, cache=cache)
  else:
    parts = images_lib.fitted_parts(name, files, labels,
                                    image_size=image_size, channels=channels,
                                    cache=cache)
  split = {part: lists[part].paths for part in ("query", "train", "database")}
  split.update(extra or {})
  if skipped:
    split["skipped"] = np.array([str(entry) for entry in skipped])
  multi_label = bool(np.any(np.concatenate(
      [part.labels for part in lists.values()]).sum(1) != 1))
  return HashingDataset(name=name, parts=parts, split=split,
                        class_names=tuple(class_names),
                        multi_label=multi_label, topk=topk,
                        image_shape=(image_size, image_size, channels))


def from_lists(name, data_dir, *, num_classes, topk, image_root, image_size,
               on_bad_image, cache, seed, center_crop, channels=3):
  """The HashingDataset of the three lists in data_dir (LIST_FILES of
  dhe_tf.data.image_list: the queries are test.txt), every entry checked.

  Args:
    name: the dataset's registry name.
    data_dir: holds the lists, `relative/path.jpg l0 … l{C-1}` lines, and
      optionally the class names (CLASS_NAME_FILES) and protocol.json.
    num_classes: C, label columns of each line.
    topk: default k of mAP@k.
    image_root: directory the listed paths are relative to; None: data_dir.
    image_size: side of the images; None: 224.
    on_bad_image: "error" or "skip" (image_list.load_lists).
    cache: see dhe_tf.data.images.file_parts.
    seed: seed of the training order (and of crops and flips).
    center_crop: the literature's 224/256 crops (random for training) rather
      than whole images fitted (images.fitted_parts).
    channels: 3 or 1, for fitted images.
  """
  image_root = image_root or data_dir
  lists, skipped = image_list.load_lists(
      {part: os.path.join(data_dir, file)
       for part, file in image_list.LIST_FILES.items()},
      num_classes=num_classes, image_root=image_root,
      on_bad_image=on_bad_image)
  image_list.check_held_out(lists)
  return _dataset(name, lists, skipped,
                  class_names=image_list.read_class_names(data_dir,
                                                          num_classes),
                  topk=topk, image_root=image_root, image_size=image_size,
                  cache=cache, seed=seed, center_crop=center_crop,
                  channels=channels)


# --dataset=list: "lists" reads the three lists as they are (DeepHash-pytorch's
# files); the others split the one list, images.txt, with the counts asked.
PROTOCOLS = {
    "lists": protocols.Protocol(
        "the split the three lists hold (train.txt, test.txt = the queries, "
        "database.txt); mAP@ALL", topk=None),
    **protocols.COLLECTION_PROTOCOLS,
}


def _list_files_of(data_dir):
  """The list files of a --dataset=list directory, the first one first."""
  if not data_dir:
    raise ConfigError("--dataset=list reads list files from --data_dir: pass "
                      "--data_dir=DIR.")
  if not os.path.isdir(data_dir):
    raise ConfigError(f"--data_dir={data_dir} is not a directory.")
  given = [os.path.join(data_dir, f) for f in image_list.LIST_FILES.values()]
  one = os.path.join(data_dir, image_list.ONE_LIST)
  if all(os.path.isfile(f) for f in given):
    return given
  if os.path.isfile(one):
    return [one]
  raise ConfigError(f"--data_dir={data_dir} has neither {_ONE} (one list "
                    f"to split) nor {_GIVEN}.")


def _label_columns(list_file):
  with open(list_file, encoding="utf-8") as f:
    for text in f:
      if text.split():
        return len(text.split()) - 1
  raise ConfigError(f"Image list {list_file} is empty.")


def class_names(data_dir):
  """The label columns' names of a --dataset=list directory: from its
  classes.txt (or concepts.txt), else `concept_<i>`; C is the number of
  labels on the first line of the first list."""
  return image_list.read_class_names(
      data_dir, _label_columns(_list_files_of(data_dir)[0]))


def load(*, protocol, split_seed, data_dir, image_root, image_size,
         on_bad_image, cache, seed, seen_classes, queries_per_class,
         train_per_class, color_mode):
  """The HashingDataset of a --dataset=list directory (a DatasetSpec's load).

  Under "lists" the three lists are the split; otherwise images.txt is
  split by the protocol, with --queries_per_class / --train_per_class per class
  (single-label lists) or per label (multi-label ones, drawn without
  repetition from the rarest label, splits.split_per_concept).
  """
  files = _list_files_of(data_dir)
  names = class_names(data_dir)
  channels = {"rgb": 3, "grayscale": 1}[color_mode]
  if protocol == "lists":
    if len(files) != len(image_list.LIST_FILES):
      raise ConfigError(f"--protocol=lists needs {_GIVEN} in {data_dir}; "
                        f"it has {_ONE}: pass --protocol=per_class or unseen"
                        " to split it.")
    return from_lists("list", data_dir, num_classes=len(names), topk=None,
                      image_root=image_root, image_size=image_size,
                      on_bad_image=on_bad_image, cache=cache, seed=seed,
                      center_crop=False, channels=channels)
  if len(files) != 1:
    raise ConfigError(f"--protocol={protocol} splits {_ONE}; {data_dir} "
                      "holds the three lists of a given split: pass "
                      "--protocol=lists.")
  image_root = image_root or data_dir
  parsed, skipped = image_list.load_lists(
      {"all": files[0]}, num_classes=len(names), image_root=image_root,
      on_bad_image=on_bad_image)
  whole = parsed["all"]
  settings = protocols.with_counts(
      PROTOCOLS[protocol], queries_per_class=queries_per_class,
      train_per_class=train_per_class)
  single = bool(np.all(whole.labels.sum(1) == 1))
  if single:
    split = protocols.single_label_split(
        "list", protocol, np.argmax(whole.labels, 1), split_seed=split_seed,
        num_classes=len(names), seen_classes=seen_classes, settings=settings,
        class_names=names)
  elif settings.seen_fraction is not None:
    raise ConfigError(f"--protocol={protocol} holds classes out, which "
                      f"multi-label lists cannot do ({files[0]} has images of "
                      "several labels): use --protocol=per_class.")
  else:
    split = splits.split_per_concept(
        whole.labels, queries_per_class=settings.queries_per_class,
        train_per_class=settings.train_per_class, seed=split_seed,
        concept_names=names)
  lists = {part: image_list.ImageList(
      whole.list_file, whole.paths[split[part]], whole.labels[split[part]],
      whole.lines[split[part]]) for part in ("query", "train", "database")}
  extra = ({"seen_classes": split["seen_classes"]}
           if "seen_classes" in split else None)
  return _dataset("list", lists, skipped, class_names=names, extra=extra,
                  topk=None, image_root=image_root, image_size=image_size,
                  cache=cache, seed=seed, center_crop=False,
                  channels=channels)
