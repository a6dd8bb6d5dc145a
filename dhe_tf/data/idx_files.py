"""Images and labels from IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a big-endian header (two zero bytes, a type code, the number of
dimensions, then one uint32 per dimension) followed by the raw array. Files may
be gzip-compressed (`*.gz`), as Debian's `dataset-fashion-mnist` package ships
them (docs/data.md).
"""

import gzip
import os

import numpy as np

_UBYTE = 0x08


def read_idx(path):
  """Returns the array stored in the IDX file at `path` (gzip or plain).

  Only unsigned-byte data (type code 0x08) is supported: it is what every
  image and label file of MNIST and Fashion-MNIST holds.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: the file is not a valid unsigned-byte IDX file.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"IDX file not found: {path}")
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError) as e:
    raise ValueError(f"Cannot read IDX file {path}: {e}") from e
  if len(data) < 4 or data[0] != 0 or data[1] != 0:
    raise ValueError(f"{path} is not an IDX file (bad magic number).")
  if data[2] != _UBYTE:
    raise ValueError(
        f"{path} holds IDX type 0x{data[2]:02x}; only unsigned bytes (0x08) "
        "are supported.")
  ndim = data[3]
  header_size = 4 + 4 * ndim
  shape = tuple(
      int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  expected = header_size + int(np.prod(shape))
  if len(data) != expected:
    raise ValueError(
        f"{path} is truncated or padded: header says shape {shape} "
        f"({expected} bytes in all) but the file has {len(data)} bytes.")
  return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def _find(directory, stem):
  for name in (f"{stem}-ubyte.gz", f"{stem}-ubyte", f"{stem}.gz", stem):
    path = os.path.join(directory, name)
    if os.path.exists(path):
      return path
  raise FileNotFoundError(
      f"No {stem}-ubyte[.gz] in {directory}: pass --data_dir pointing to the "
      "directory holding the MNIST/Fashion-MNIST IDX files.")


def load_idx_directory(directory):
  """Loads the train and test parts of an MNIST-style directory, concatenated.

  Args:
    directory: holds `train-images-idx3-ubyte[.gz]`,
      `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]` and
      `t10k-labels-idx1-ubyte[.gz]`.

  Returns:
    `(images, labels)`: uint8 [N, 28, 28, 1] and int64 [N], the 60,000
    training images followed by the 10,000 test images.
  """
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"Data directory not found: {directory}")
  images, labels = [], []
  for part in ("train", "t10k"):
    part_images = read_idx(_find(directory, f"{part}-images-idx3"))
    part_labels = read_idx(_find(directory, f"{part}-labels-idx1"))
    if part_images.ndim != 3 or part_labels.ndim != 1:
      raise ValueError(
          f"{directory}: {part} images must be [N, H, W] and labels [N]; got "
          f"{part_images.shape} and {part_labels.shape}.")
    if len(part_images) != len(part_labels):
      raise ValueError(
          f"{directory}: {len(part_images)} {part} images but "
          f"{len(part_labels)} labels.")
    images.append(part_images)
    labels.append(part_labels)
  return (np.concatenate(images)[..., None],
          np.concatenate(labels).astype(np.int64))


def has_idx_files(directory):
  """Whether `directory` holds the training images of an MNIST-style set."""
  try:
    _find(directory, "train-images-idx3")
  except FileNotFoundError:
    return False
  return True
