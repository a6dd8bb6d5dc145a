"""Images in and out of the search service: upload checks and thumbnails.

An upload is checked before anything decodes it, by the check of training's
image files (dhe_tf.data.image_checks.read_header): its size in bytes, its
format (JPEG, PNG, GIF, BMP or WebP, read from the header; an image in
another format is named and refused with 415, never called corrupt) and its
pixel count (width × height from the header, so a decompression bomb, a
small file that claims a huge image, is refused without being decoded). The
decoding itself (dhe_tf.model.inference.decode_image) then catches truncated
and corrupt files.

A thumbnail is looked up by the id of an indexed code: its source, as the
index recorded it, is an image file (a path) or "<dataset>[<i>]", the i-th
image of an in-memory dataset, read from that dataset's arrays.
"""

import io
import os
import re
import threading

import numpy as np
from PIL import Image

from dhe_tf.data import datasets
from dhe_tf.data import image_checks
from dhe_tf.data import idx_files
from dhe_tf.data import tfds_source
from dhe_tf.core.errors import ConfigError

THUMBNAIL_SIDE = 160
_DATASET_SOURCE = re.compile(r"([A-Za-z0-9_]+)\[(\d+)\]")


class RequestError(ConfigError):
  """A request that cannot be answered; `status` is its HTTP status."""

  def __init__(self, message, status=400):
    super().__init__(message)
    self.status = status


# The HTTP status of each kind of image_checks.ImageError.
_STATUS = {"not_an_image": 415, "unsupported_format": 415, "too_large": 413,
           "too_small": 400, "corrupt": 400}


def _pillow_format(data):
  """The format Pillow names `data` (PPM, ICO, ...), or None."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      return image.format
  except Exception:  # pylint: disable=broad-except
    # PIL raises UnidentifiedImageError, OSError, SyntaxError, ValueError...
    return None


def _message(error, data):
  send = f"send {image_checks.FORMATS_TEXT}"
  if error.kind == "not_an_image":
    other = _pillow_format(data)
    if other:
      return f"{other} is not decoded by TensorFlow: {send}."
    return (f"Not an image: the upload is not a {image_checks.FORMATS_TEXT} "
            "file.")
  if error.kind == "unsupported_format":
    return f"{error}: {send}."
  if error.kind == "too_large":
    return f"The image is {error} (--max_pixels)."
  if error.kind == "too_small":
    return f"The image is {error}."
  return f"Not an image the model can read (truncated or corrupt): {error}."


def check_upload(data, *, max_bytes, max_pixels):
  """Raises RequestError unless `data` is an image file within the limits.

  Args:
    data: the uploaded bytes.
    max_bytes: the largest upload accepted.
    max_pixels: the most pixels (width × height, × frames of a GIF)
      accepted.

  Returns:
    (format, width, height) read from the header.
  """
  if not data:
    raise RequestError("The image is empty (0 bytes).")
  if len(data) > max_bytes:
    raise RequestError(f"The image is {len(data):,} bytes, over the limit of "
                       f"{max_bytes:,} (--max_upload_bytes).", 413)
  try:
    header = image_checks.read_header(data, max_pixels=max_pixels)
  except image_checks.ImageError as e:
    raise RequestError(_message(e, data), _STATUS[e.kind]) from e
  return header.format, header.width, header.height


def _png(pixels):
  """PNG bytes of uint8 [H, W, C] pixels, C = 1 or 3."""
  pixels = np.asarray(pixels, np.uint8)
  image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
  out = io.BytesIO()
  image.save(out, format="PNG")
  return out.getvalue()


class Thumbnails:
  """PNG thumbnails of indexed images, found from their sources.

  Args:
    data_dir: where the datasets named by "<dataset>[<i>]" sources are
      (as dhe_tf.train's --data_dir; the embedded one needs none).
    image_root: the folder that relative image paths are under (image-list
      datasets); otherwise they are taken from the working directory.
    max_pixels: the largest image file read.
  """

  def __init__(self, *, data_dir=None, image_root=None, max_pixels):
    self.data_dir = data_dir
    self.image_root = image_root
    self.max_pixels = max_pixels
    self._arrays = {}
    self._lock = threading.Lock()

  def _dataset_images(self, name):
    """uint8 [N, H, W, C], the images that "<name>[i]" sources index."""
    with self._lock:
      if name not in self._arrays:
        if name == "embedded":
          images, _ = datasets.load_embedded_arrays()
        elif name in ("mnist", "fashion_mnist") and self.data_dir and (
            idx_files.has_idx_files(self.data_dir)):
          images, _ = idx_files.load_idx_directory(self.data_dir)
        elif name in datasets.DATASETS:
          images = tfds_source.load_all(name, data_dir=self.data_dir)[0]
        else:
          raise RequestError(f"No images of dataset {name!r} to show.", 404)
        self._arrays[name] = images
      return self._arrays[name]

  def _file(self, path):
    if not os.path.isabs(path) and self.image_root:
      path = os.path.join(self.image_root, path)
    try:
      with open(path, "rb") as f:
        data = f.read()
    except OSError as e:
      raise RequestError(f"The indexed image {path} cannot be read: "
                         f"{e.strerror}", 404) from e
    check_upload(data, max_bytes=len(data), max_pixels=self.max_pixels)
    with Image.open(io.BytesIO(data)) as image:
      image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
      if image.mode.startswith("I;16"):
        # Pillow's conversion to "L" clips 16-bit levels at 255; keep their
        # high byte, as TensorFlow's decoder does.
        image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
      grey = image.mode in ("1", "L", "LA")
      image = image.convert("L" if grey else "RGB")
      out = io.BytesIO()
      image.save(out, format="PNG")
      return out.getvalue()

  def png(self, source):
    """PNG bytes of the image at `source`, at most THUMBNAIL_SIDE a side
    (dataset images are small and shown as they are)."""
    match = _DATASET_SOURCE.fullmatch(source)
    if match:
      images = self._dataset_images(match.group(1))
      item = int(match.group(2))
      if item >= len(images):
        raise RequestError(f"{source} is not in the dataset "
                           f"({len(images)} images).", 404)
      return _png(images[item])
    return self._file(source)
