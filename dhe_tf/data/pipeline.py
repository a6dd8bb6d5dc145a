"""Batching of HashingDataset parts into input pipelines for Keras."""

import numpy as np
import tensorflow as tf

from dhe_tf.core.errors import ConfigError

_SHUFFLE_BUFFER = 10_000
# The shuffle buffer holds decoded images: at 224 px, 10,000 of them would
# take 1.5 GB and a long refill every epoch, so its size is capped by bytes
# (the training files of image-list datasets come in a seeded random order).
_SHUFFLE_BUFFER_BYTES = 512 * 2**20
_MIN_SHUFFLE_BUFFER = 1_000


def shuffle_buffer_size(element_spec):
  """Images in the training shuffle buffer: ≤ 10,000 and about ≤ 512 MiB."""
  image_spec = element_spec[0]
  if not image_spec.shape.is_fully_defined():
    return _MIN_SHUFFLE_BUFFER
  image_bytes = int(np.prod(image_spec.shape)) * image_spec.dtype.size
  return int(np.clip(_SHUFFLE_BUFFER_BYTES // max(image_bytes, 1),
                     _MIN_SHUFFLE_BUFFER, _SHUFFLE_BUFFER))


AUGMENTATIONS = ("none", "shift_flip")
# Largest shift of "shift_flip", in pixels: 2 of 28 keeps a garment whole.
_MAX_SHIFT = 2


def check_augment(augment):
  if augment not in AUGMENTATIONS:
    raise ConfigError(f"Unknown augment {augment!r}. Available: "
                      f"{', '.join(AUGMENTATIONS)}")


def shift_flip(image, seed):
  """A random shift of up to 2 px (zero fill) and a random horizontal flip.

  Args:
    image: uint8 [H, W, C].
    seed: int32 [2], the stateless seed of this image's draw.

  Returns:
    uint8 [H, W, C]. Suits small centred objects on a plain background
    (Fashion-MNIST, MNIST-like data, CIFAR-10); MNIST digits should not be
    flipped, so it is an option, not a default.
  """
  height, width = image.shape[0], image.shape[1]
  padded = tf.pad(image, [[_MAX_SHIFT, _MAX_SHIFT], [_MAX_SHIFT, _MAX_SHIFT],
                          [0, 0]])
  crop_seed, flip_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  image = tf.image.stateless_random_crop(padded, tf.shape(image), crop_seed)
  image = tf.image.stateless_random_flip_left_right(image, flip_seed)
  return tf.ensure_shape(image, (height, width, None))


SAMPLERS = ("shuffle", "balanced")


def check_sampler(sampler, classes_per_batch, *, batch_size, num_classes):
  """Raises ConfigError unless the sampler can fill batches of batch_size
  from num_classes classes."""
  received = (f"Received: batch_size={batch_size}, "
              f"classes_per_batch={classes_per_batch}")
  if sampler not in SAMPLERS:
    raise ConfigError(f"Unknown sampler {sampler!r}. Available: "
                      f"{', '.join(SAMPLERS)}")
  if sampler != "balanced":
    if classes_per_batch:
      raise ConfigError("classes_per_batch applies to --sampler=balanced "
                        f"only. {received}")
  elif classes_per_batch == 0:  # Chosen from the data: default_classes_per_batch.
    default_classes_per_batch(batch_size, num_classes)
  elif not 2 <= classes_per_batch <= num_classes:
    raise ConfigError(f"--sampler=balanced needs 2 ≤ classes_per_batch ≤ "
                      f"the {num_classes} classes of the training images. "
                      f"{received}")
  elif batch_size % classes_per_batch:
    raise ConfigError(f"batch_size must be divisible by classes_per_batch. "
                      f"{received}")


def default_classes_per_batch(batch_size, num_classes):
  """P for --sampler=balanced when none is given: the most classes a batch
  can hold in equal shares of at least 2 images, i.e. the largest divisor
  of batch_size that is at most num_classes and batch_size / 2 (8 for a
  batch of 128 over 10 classes, 4 over the 7 seen classes of `unseen`).

  Raises:
    ConfigError: when no P ≥ 2 exists (fewer than 2 classes, or an odd
      batch_size that no number of classes up to num_classes divides).
  """
  for p in range(min(num_classes, batch_size // 2), 1, -1):
    if batch_size % p == 0:
      return p
  raise ConfigError(f"--sampler=balanced needs a batch of at least 2 classes "
                    f"in equal shares of at least 2 images; none exists for "
                    f"batch_size={batch_size} and {num_classes} classes: set "
                    "--classes_per_batch and a batch_size it divides.")


def labels_of(dataset):
  """float32 [N, C]: the labels of an unbatched (image, label) dataset."""
  return np.concatenate(list(dataset.map(lambda image, label: label).batch(
      4096).as_numpy_iterator()))


def _in_memory(dataset):
  """(images, labels) numpy arrays of an unbatched (image, label) dataset."""
  parts = list(dataset.batch(4096).as_numpy_iterator())
  return (np.concatenate([x for x, _ in parts]),
          np.concatenate([y for _, y in parts]))


def balanced(dataset, *, batch_size, classes_per_batch, seed=None):
  """Class-balanced sampling: each batch is P = classes_per_batch distinct
  classes × M = batch_size / P images of each, in runs of one class.

  Per batch, the P classes are a stateless shuffle of the classes present,
  and each class's M images a stateless shuffle of its images (a class with
  fewer than M repeats them), drawn from a stream that is new every epoch
  and a function of `seed`. An epoch has as many batches as a shuffle over
  the same images, N // batch_size. The images are held in memory and
  gathered by index (single-label datasets are in-memory arrays), so a
  batch costs what a shuffled one does.

  Args:
    dataset: unbatched (image, one-hot label float32 [C]) of known size.
    batch_size: images per batch.
    classes_per_batch: P, dividing batch_size; 0 for
      default_classes_per_batch of the classes present.
    seed: seed of the draws.

  Returns:
    Unbatched tf.data.Dataset of (N // batch_size) × batch_size elements.

  Raises:
    ConfigError: multi-label data, or an impossible P.
  """
  images, labels = _in_memory(dataset)
  class_ids = single_label_ids(labels, "--sampler=balanced")
  present = np.unique(class_ids)
  check_sampler("balanced", classes_per_batch, batch_size=batch_size,
                num_classes=len(present))
  classes_per_batch = classes_per_batch or default_classes_per_batch(
      batch_size, len(present))
  counts = np.array([np.sum(class_ids == c) for c in present])
  # Row i: the positions of the images of class present[i], padded.
  members = np.zeros((len(present), counts.max()), np.int64)
  for row, c in enumerate(present):
    members[row, :counts[row]] = np.flatnonzero(class_ids == c)
  members, counts = tf.constant(members), tf.constant(counts, tf.int64)
  per_class = batch_size // classes_per_batch
  steps = len(class_ids) // batch_size

  def batch_positions(random):
    chosen = tf.argsort(tf.random.stateless_uniform(
        [len(present)], tf.stack([random, tf.constant(1, tf.int64)])))[
            :classes_per_batch]
    sizes = tf.gather(counts, chosen)
    keys = tf.random.stateless_uniform(
        [classes_per_batch, members.shape[1]],
        tf.stack([random, tf.constant(2, tf.int64)]))
    valid = tf.range(members.shape[1], dtype=tf.int64)[None] < sizes[:, None]
    order = tf.argsort(tf.where(valid, keys, 2.0), axis=1)  # Valid first.
    slots = tf.gather(order, tf.range(per_class, dtype=tf.int64)[None] %
                      sizes[:, None], batch_dims=1)
    return tf.reshape(tf.gather(tf.gather(members, chosen), slots,
                                batch_dims=1), [-1])

  images, labels = tf.constant(images), tf.constant(labels)
  return tf.data.Dataset.random(
      seed=seed, rerandomize_each_iteration=True).take(steps).map(
          batch_positions).unbatch().map(
              lambda i: (tf.gather(images, i), tf.gather(labels, i))).apply(
                  tf.data.experimental.assert_cardinality(steps * batch_size))


def batches(dataset, *, batch_size, training, seed=None, augment="none",
            sampler="shuffle", classes_per_batch=0):
  """Batches an unbatched (image, label) dataset.

  Args:
    dataset: tf.data.Dataset of (image uint8 [H, W, C], label float32 [C]).
    batch_size: images per batch.
    training: shuffle every epoch (seeded) and drop the last partial batch,
      so every training batch has the same shape (one XLA compilation, and
      no tiny batches with no pairs to learn from).
    seed: shuffle seed (and of the augmentation's draws).
    augment: "none" or "shift_flip" (training batches only; see
      shift_flip).
    sampler: of training batches: "shuffle" (a seeded shuffle of the
      images every epoch) or "balanced" (classes_per_batch classes per
      batch; see balanced).
    classes_per_batch: P of sampler="balanced" (0: chosen from the
      classes present, default_classes_per_batch).

  Returns:
    tf.data.Dataset of (images float32 [B, H, W, C] in 0..255, labels
    float32 [B, C]).
  """
  check_augment(augment)
  check_sampler(sampler, classes_per_batch, batch_size=batch_size,
                num_classes=dataset.element_spec[1].shape[-1])
  if training and sampler == "balanced":
    dataset = balanced(dataset, batch_size=batch_size,
                       classes_per_batch=classes_per_batch, seed=seed)
  elif training:
    dataset = dataset.shuffle(shuffle_buffer_size(dataset.element_spec),
                              seed=seed, reshuffle_each_iteration=True)
  if training and augment == "shift_flip":
    # A stream of per-image seeds, itself new every epoch, so the draws are
    # a function of --seed alone.
    seeds = tf.data.Dataset.random(
        seed=seed, rerandomize_each_iteration=True).batch(2)
    dataset = tf.data.Dataset.zip(dataset, seeds).map(
        lambda item, s: (shift_flip(item[0], s), item[1]),
        num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.batch(batch_size, drop_remainder=training)
  dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32), y),
                        num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)


VALIDATION_BY = ("images", "classes")


def check_validation_by(validation_by):
  if validation_by not in VALIDATION_BY:
    raise ConfigError(f"Unknown validation_by {validation_by!r}. Available:"
                      f" {', '.join(VALIDATION_BY)}")


def draw_validation(size, fraction, seed, class_ids=None):
  """The positions of a training part held out for validation.

  Args:
    size: the part's number of images.
    fraction: share of the images, or with class_ids of the classes, held
      out.
    seed: seed of the draw.
    class_ids: None to hold out round(size × fraction) images drawn at
      random; else int [size], the class of each image, to hold out every
      image of max(2, round(C × fraction)) of its C classes, so that
      validation retrieves classes never fitted (as protocol "unseen" tests).

  Returns:
    (positions int64 [V] sorted, held-out class ids int64 sorted, or None
    without class_ids).

  Raises:
    ConfigError: with class_ids, fewer than 3 classes (2 to hold out and 1
      to fit).
  """
  rng = np.random.default_rng(seed)
  if class_ids is None:
    held = np.sort(rng.choice(size, int(round(size * fraction)),
                              replace=False))
    return held.astype(np.int64), None
  present = np.unique(class_ids)
  count = max(2, int(round(len(present) * fraction)))
  if count >= len(present):
    raise ConfigError(f"--validation_by=classes holds out {count} of the "
                      f"{len(present)} training classes and leaves none to "
                      "fit; it needs at least 3 classes.")
  classes = np.sort(rng.choice(present, count, replace=False))
  return (np.flatnonzero(np.isin(class_ids, classes)).astype(np.int64),
          classes.astype(np.int64))


def single_label_ids(labels, needed_by):
  """int [N]: the class of each row of one-hot labels [N, C].

  Raises:
    ConfigError: naming `needed_by`, when a row has not exactly one label.
  """
  bad = int(np.sum(np.count_nonzero(labels, axis=1) != 1))
  if bad:
    raise ConfigError(f"{needed_by} needs single-label data; {bad} training "
                      "images do not have exactly one label.")
  return np.argmax(labels, axis=1)


def hold_out(dataset, size, held):
  """Splits a training part into (fit, validation).

  Args:
    dataset: unbatched training part with `size` elements.
    size: its number of elements.
    held: int [V], the positions of the validation elements
      (draw_validation).

  Returns:
    (fit dataset, validation dataset), in the part's order.
  """
  mask = np.zeros(size, bool)
  mask[held] = True
  mask = tf.constant(mask)
  def keep(held_out):
    return lambda i, item: tf.equal(mask[i], held_out)
  def drop_index(i, item):
    return item
  # Filtering hides the size from Keras, which then warns at the end of the
  # first epoch that the data "ran out"; the sizes are known, so state them.
  fit = dataset.enumerate().filter(keep(False)).map(drop_index).apply(
      tf.data.experimental.assert_cardinality(size - len(held)))
  validation = dataset.enumerate().filter(keep(True)).map(drop_index).apply(
      tf.data.experimental.assert_cardinality(len(held)))
  return fit, validation
