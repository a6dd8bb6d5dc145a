"""Batching of HashingDataset parts into input pipelines for Keras."""

import tensorflow as tf

_SHUFFLE_BUFFER = 10_000


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
    dataset = dataset.shuffle(_SHUFFLE_BUFFER, seed=seed,
                              reshuffle_each_iteration=True)
  dataset = dataset.batch(batch_size, drop_remainder=training)
  dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32), y),
                        num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)
