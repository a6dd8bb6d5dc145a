"""Batching of HashingDataset parts into input pipelines for Keras."""

import numpy as np
import tensorflow as tf

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


def batches(dataset, *, batch_size, training, seed=None):
  """Batches an unbatched (image, label) dataset.

  Args:
    dataset: tf.data.Dataset of (image uint8 [H, W, C], label float32 [C]).
    batch_size: images per batch.
    training: shuffle every epoch (seeded) and drop the last partial batch,
      so every training batch has the same shape (one XLA compilation, and
      no tiny batches with no pairs to learn from).
    seed: shuffle seed.

  Returns:
    tf.data.Dataset of (images float32 [B, H, W, C] in 0..255, labels
    float32 [B, C]).
  """
  if training:
    dataset = dataset.shuffle(shuffle_buffer_size(dataset.element_spec),
                              seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.batch(batch_size, drop_remainder=training)
  dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32), y),
                        num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)
