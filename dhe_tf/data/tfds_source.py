"""Loads a tensorflow-datasets image classification set into memory.

Offline, a tfds download retries for minutes before it gives up; before
downloading we check that the download host is reachable (dhe_tf.core.downloads)
and fail with one line naming what to pass instead.
"""

import logging

import numpy as np

from dhe_tf.core import downloads
from dhe_tf.core.errors import DataUnavailableError

# Where tfds downloads each dataset from (the host of its download URL).
DOWNLOAD_HOSTS = {
    "cifar10": "www.cs.toronto.edu",
    "mnist": "storage.googleapis.com",
    "fashion_mnist": "storage.googleapis.com",
}


def _prepared_builder(name, data_dir):
  """Returns (tfds builder, whether its data is already prepared)."""
  # tfds warns about every variant folder it probes; the caller reports the
  # one thing that matters (prepared or not), so hush absl meanwhile.
  import tensorflow_datasets as tfds  # Imported here: slow, and rarely needed.
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    return builder, builder.is_prepared()
  finally:
    absl_logger.setLevel(level)


def _split_arrays(builder, split):
  import tensorflow_datasets as tfds
  images, labels = [], []
  # Batches of 10,000 rather than batch_size=-1: the same arrays, without
  # relying on the split sizes recorded in the dataset's metadata.
  data = builder.as_dataset(split=split, as_supervised=True).batch(10_000)
  for batch_images, batch_labels in tfds.as_numpy(data):
    images.append(batch_images)
    labels.append(batch_labels)
  return (np.concatenate(images).astype(np.uint8),
          np.concatenate(labels).astype(np.int64))


def load_all(name, *, data_dir=None):
  """Returns every image of tfds dataset `name`, train then test.

  Args:
    name: a key of DOWNLOAD_HOSTS.
    data_dir: the tensorflow-datasets directory; None means tfds' default
      (~/tensorflow_datasets).

  Returns:
    (images uint8 [N, H, W, C], class ids int64 [N], num_train): the
    official training images are the first `num_train`, the test images
    the rest.

  Raises:
    DataUnavailableError: the data is not prepared in `data_dir` and its
      download host cannot be reached.
  """
  builder, prepared = _prepared_builder(name, data_dir)
  if not prepared:
    host = DOWNLOAD_HOSTS[name]
    if not downloads.host_reachable(host):
      raise DataUnavailableError(
          f"{name} is not prepared in {builder.data_dir} and {host} cannot be "
          f"reached to download it: run `tfds build {name} --data_dir=DIR` on "
          f"a machine with internet, copy DIR here and pass --data_dir=DIR.")
    builder.download_and_prepare()
  train_images, train_labels = _split_arrays(builder, "train")
  test_images, test_labels = _split_arrays(builder, "test")
  return (np.concatenate([train_images, test_images]),
          np.concatenate([train_labels, test_labels]), len(train_images))
