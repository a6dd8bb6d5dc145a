"""The dataset registry: every dataset as train / query / database pipelines.

A `HashingDataset` is what the trainer and the evaluator consume: three
unbatched `tf.data.Dataset`s of `(image, label)` (image uint8 [H, W, C], label
float32 [C], one-hot for single-label data and multi-hot for multi-label data),
the indices (or file paths) that define the split, and the metadata
evaluation needs.

| dataset | source | protocols |
|---|---|---|
| embedded | 10,000 Fashion-MNIST images in the package | 1k5k, tiny, unseen |
| fashion_mnist, mnist | IDX files in data_dir, else tfds | 1k5k, tiny, unseen |
| cifar10 | tensorflow-datasets | 1k5k, 10k50k, tiny, unseen |
| nuswide_21 | image lists in data_dir + JPEGs in image_root | 2k10k, tiny |

Protocols (how each split is drawn) are in dhe_tf.data.protocols, the list
files of image-list datasets in dhe_tf.data.image_list.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf


from dhe_tf.data import folders
from dhe_tf.data.hashing_dataset import HashingDataset
from dhe_tf.data import idx_files
from dhe_tf.data import image_list
from dhe_tf.data import list_dataset
from dhe_tf.data import images as images_lib
from dhe_tf.data import protocols
from dhe_tf.data import tfds_source
from dhe_tf.data.protocols import PROTOCOLS
from dhe_tf.core.errors import ConfigError

EMBEDDED_PATH = os.path.join(os.path.dirname(__file__), "fashion_mnist_1k.npz")

FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat",
                         "sandal", "shirt", "sneaker", "bag", "ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                   "frog", "horse", "ship", "truck")
MNIST_CLASSES = tuple(str(d) for d in range(10))
NUSWIDE_21_NUM_CLASSES = 21


def from_arrays(name, images, class_ids, class_names, *, protocol, split_seed,
                num_train=None, seen_classes=()):
  """Builds a single-label HashingDataset from in-memory arrays.

  Args:
    name: the dataset's registry name.
    images: uint8 [N, H, W, C].
    class_ids: int [N].
    class_names: names of the classes, indexed by class id.
    protocol: a key of PROTOCOLS.
    split_seed: seed of the split draw.
    num_train: the first `num_train` images are the official training set
      and the rest the test set; needed by protocol "10k50k".
    seen_classes: the classes trained on under protocol "unseen" (empty:
      drawn with split_seed).
  """
  split = protocols.single_label_split(
      name, protocol, class_ids, split_seed=split_seed, num_train=num_train,
      num_classes=len(class_names), seen_classes=seen_classes)
  one_hot = np.eye(len(class_names), dtype=np.float32)[class_ids]
  parts = {
      part: tf.data.Dataset.from_tensor_slices((images[split[part]],
                                                one_hot[split[part]]))
      for part in ("query", "train", "database")
  }
  return HashingDataset(name=name, parts=parts, split=split,
                        class_names=tuple(class_names), multi_label=False,
                        topk=PROTOCOLS[protocol].topk,
                        image_shape=tuple(images.shape[1:]))


def load_embedded_arrays():
  """Returns (images uint8 [10000, 28, 28, 1], class ids int64 [10000]).

  The embedded sample: 1,000 Fashion-MNIST images of each class, shipped
  inside the package so that training works offline (MIT licence, see
  fashion_mnist_1k.LICENSE). Built by tools/build_embedded_dataset.py.
  """
  with np.load(EMBEDDED_PATH) as data:
    return data["images"], data["labels"].astype(np.int64)


def _embedded(*, protocol, split_seed, data_dir, seen_classes):
  del data_dir  # The embedded sample ships with the package.
  images, class_ids = load_embedded_arrays()
  return from_arrays("embedded", images, class_ids, FASHION_MNIST_CLASSES,
                     protocol=protocol, split_seed=split_seed,
                     seen_classes=seen_classes)


def _mnist_like(name, class_names):
  def load(*, protocol, split_seed, data_dir, seen_classes):
    if data_dir and idx_files.has_idx_files(data_dir):
      images, class_ids = idx_files.load_idx_directory(data_dir)
    else:
      images, class_ids, _ = tfds_source.load_all(name, data_dir=data_dir)
    return from_arrays(name, images, class_ids, class_names,
                       protocol=protocol, split_seed=split_seed,
                       seen_classes=seen_classes)
  return load


def _cifar10(*, protocol, split_seed, data_dir, seen_classes):
  images, class_ids, num_train = tfds_source.load_all("cifar10",
                                                      data_dir=data_dir)
  return from_arrays("cifar10", images, class_ids, CIFAR10_CLASSES,
                     protocol=protocol, split_seed=split_seed,
                     num_train=num_train, seen_classes=seen_classes)


def _nuswide_21(*, protocol, split_seed, data_dir, image_root, image_size,
                on_bad_image, cache, seed):
  del split_seed  # The lists hold the split (drawn by prepare_nuswide.py).
  if not data_dir:
    raise ConfigError(
        "nuswide_21 reads train.txt, test.txt and database.txt from "
        "--data_dir (tools/prepare_nuswide.py writes them): pass "
        "--data_dir=DIR and --image_root=DIR of the images.")
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"Data directory not found: {data_dir}")
  drawn_for = image_list.read_protocol(data_dir)
  if drawn_for is not None and drawn_for != protocol:
    raise ConfigError(f"The lists in {data_dir} were drawn for protocol "
                      f"{drawn_for!r} ({image_list.PROTOCOL_FILE}); pass "
                      f"--protocol={drawn_for}. Received: protocol={protocol}")
  return list_dataset.from_lists(
      "nuswide_21", data_dir, num_classes=NUSWIDE_21_NUM_CLASSES,
      topk=protocols.NUSWIDE_PROTOCOLS[protocol].topk, image_root=image_root,
      image_size=image_size, on_bad_image=on_bad_image, cache=cache,
      seed=seed, center_crop=True)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A registry entry.

  Attributes:
    load: keyword-only function (protocol, split_seed, data_dir, and
      seen_classes for array datasets, image_root, image_size, on_bad_image,
      cache, seed for image-file datasets, and all of these plus
      queries_per_class, train_per_class, color_mode for collections)
      -> HashingDataset.
    protocols: protocol name -> Protocol.
    num_classes: number of classes (label columns); 0 for a collection,
      whose classes come from its data (`classes`).
    default_protocol: the protocol used when none is named.
    image_files: whether images are decoded from files (so that image_root,
      image_size, on_bad_image and cache apply).
    center_crop: whether its images are cut to the central 224/256 window
      (the list datasets of the literature) rather than fitted whole
      (images.fit_square); the export and the service cut them alike.
    classes: for a collection, data_dir -> its class names, read without
      loading the images (so a config can be checked, and seen classes
      named, before anything loads); None otherwise.
  """
  load: object
  protocols: dict
  num_classes: int
  default_protocol: str = "1k5k"
  image_files: bool = False
  center_crop: bool = False
  classes: object = None


_ARRAY_PROTOCOLS = {p: PROTOCOLS[p]
                    for p in ("1k5k", "tiny", "unseen", "unseen_tiny")}

DATASETS = {
    "embedded": DatasetSpec(_embedded, _ARRAY_PROTOCOLS,
                            len(FASHION_MNIST_CLASSES)),
    "fashion_mnist": DatasetSpec(
        _mnist_like("fashion_mnist", FASHION_MNIST_CLASSES), _ARRAY_PROTOCOLS,
        len(FASHION_MNIST_CLASSES)),
    "mnist": DatasetSpec(_mnist_like("mnist", MNIST_CLASSES),
                         _ARRAY_PROTOCOLS, len(MNIST_CLASSES)),
    "cifar10": DatasetSpec(_cifar10, PROTOCOLS, len(CIFAR10_CLASSES)),
    "nuswide_21": DatasetSpec(_nuswide_21, protocols.NUSWIDE_PROTOCOLS,
                              NUSWIDE_21_NUM_CLASSES, default_protocol="2k10k",
                              image_files=True, center_crop=True),
    "folder": DatasetSpec(folders.load, protocols.COLLECTION_PROTOCOLS, 0,
                          default_protocol="per_class", image_files=True,
                          classes=folders.class_names),
    "list": DatasetSpec(list_dataset.load, list_dataset.PROTOCOLS, 0,
                        default_protocol="per_class", image_files=True,
                        classes=list_dataset.class_names),
}


def check_name(name):
  """Raises ConfigError unless `name` is a registered dataset."""
  if name not in DATASETS:
    raise ConfigError(f"Unknown dataset {name!r}. "
                      f"Available: {', '.join(sorted(DATASETS))}")


def default_protocol(name):
  """The protocol of dataset `name` when none is named (e.g. "1k5k")."""
  check_name(name)
  return DATASETS[name].default_protocol


def class_names(name, data_dir=None):
  """The class names of dataset `name` (read from data_dir for a collection),
  or None for datasets of fixed classes known only by id here."""
  check_name(name)
  spec = DATASETS[name]
  return tuple(spec.classes(data_dir)) if spec.classes else None


def num_classes(name, data_dir=None):
  """How many classes (label columns) dataset `name` has."""
  names = class_names(name, data_dir)
  return len(names) if names is not None else DATASETS[name].num_classes


def resolve_seen_classes(name, protocol, classes=(), *, split_seed=0,
                         data_dir=None):
  """The classes dataset `name` trains on under `protocol`, without loading
  it: `classes` (ids, or names for a collection) checked and sorted, or
  drawn with split_seed when empty; () unless the protocol holds classes out
  ("unseen").

  Raises:
    ConfigError: classes given under another protocol, or impossible ones.
  """
  check_name(name)
  spec = DATASETS[name]
  protocol = protocol or spec.default_protocol
  settings = spec.protocols.get(protocol)
  if not classes and (settings is None or settings.seen_fraction is None):
    return ()  # Nothing to resolve: a collection's folder is not read.
  names = class_names(name, data_dir)
  return protocols.resolve_seen_classes(
      protocol, settings, classes,
      num_classes=len(names) if names is not None else spec.num_classes,
      split_seed=split_seed, class_names=names)


def load_dataset(name, *, protocol=None, split_seed=0, data_dir=None,
                 image_root=None, image_size=None, on_bad_image="error",
                 cache=None, seed=0, seen_classes=(), queries_per_class=0,
                 train_per_class=0, color_mode="rgb"):
  """Returns the HashingDataset `name` under `protocol`.

  Args:
    name: a key of DATASETS.
    protocol: split protocol, a key of the dataset's protocols; None for
      the dataset's default_protocol.
    split_seed: seed of the split; fixed by default so runs are comparable.
      Image-list datasets take the split their lists hold.
    data_dir: where the dataset's files are (IDX files for MNIST-like data,
      the list files for NUS-WIDE, a tensorflow-datasets directory
      otherwise); ignored by "embedded".
    image_root: directory of the image files named by list files (default:
      data_dir); only for image-file datasets.
    image_size: side of the square crops of image-file datasets (default
      224); in-memory datasets keep their size (the model resizes in its
      graph).
    on_bad_image: "error" (stop before training, naming the first bad list
      entries) or "skip" (drop them and report which).
    cache: None, "memory" or a directory: where image-file datasets cache
      decoded images.
    seed: seed of the training order, crops and flips of image-file
      datasets.
    seen_classes: the classes trained on under protocol "unseen" (ids, or
      names for a collection); empty: floor(75 %) of them, drawn with
      split_seed.
    queries_per_class, train_per_class: the counts of a collection's
      protocol; 0 for its own (100 and 500).
    color_mode: a collection's images as "rgb" or "grayscale".
  """
  check_name(name)
  spec = DATASETS[name]
  protocol = protocol or spec.default_protocol
  if protocol not in spec.protocols:
    raise ConfigError(f"Unknown protocol {protocol!r} for dataset {name!r}. "
                      f"Available: {', '.join(sorted(spec.protocols))}")
  if on_bad_image not in image_list.ON_BAD_IMAGE:
    raise ConfigError(f"Unknown on_bad_image {on_bad_image!r}. "
                      f"Available: {', '.join(image_list.ON_BAD_IMAGE)}")
  if image_size is not None and image_size < 1:
    raise ConfigError(f"image_size must be at least 1. "
                      f"Received: image_size={image_size}")
  seen_classes = resolve_seen_classes(name, protocol, seen_classes,
                                      split_seed=split_seed, data_dir=data_dir)
  if not spec.image_files:
    if image_root:
      raise ConfigError(f"image_root applies to image-list datasets only; "
                        f"{name} does not read image files. "
                        f"Received: image_root={image_root}")
    return spec.load(protocol=protocol, split_seed=split_seed,
                     data_dir=data_dir, seen_classes=seen_classes)
  files = dict(protocol=protocol, split_seed=split_seed, data_dir=data_dir,
               image_root=image_root, image_size=image_size,
               on_bad_image=on_bad_image, cache=cache, seed=seed)
  if spec.classes is None:
    return spec.load(**files)
  if color_mode not in folders.COLOR_MODES:
    raise ConfigError(f"Unknown color_mode {color_mode!r}. Available: "
                      f"{', '.join(folders.COLOR_MODES)}")
  return spec.load(**files, seen_classes=seen_classes,
                   queries_per_class=queries_per_class,
                   train_per_class=train_per_class, color_mode=color_mode)
