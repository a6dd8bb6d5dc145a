"""Image files as tf.data parts: decode, crop, resize, in parallel.

The recipe of the deep hashing literature (e.g. DeepHash-pytorch): resize
the shorter side to 256 px, then a random 224 px crop and a random
horizontal flip for training, the central 224 px crop for queries and
database. Here 224 is `image_size` and 256 is image_size · 256/224, so other
sizes keep the same margin. Images stay uint8; the model converts them
(backbone preprocessing happens in its graph, see dhe_tf.model).

Resizing a whole photo costs several times its decoding, so the crop is
taken first, in the file's own pixels (a square of 224/256 of the shorter
side, which is what a 224 crop of the 256-resized image covers), JPEGs
decoding only that window (`tf.io.decode_and_crop_jpeg`), and just the crop
is resized (antialiased when it shrinks more than twice, like PIL's resize
would). With a cache, training images are
instead resized whole and cached, and cropped afterwards, so that crops
still vary every epoch.

Files are checked before any pipeline is built (dhe_tf.data.image_list). A
file that fails to decode anyway (changed on disk since) is dropped with a
warning instead of stopping the run mid-epoch.
"""

import hashlib
import os

import numpy as np
import tensorflow as tf

# The literature's resize side over its crop side, 256 / 224.
RESIZE_RATIO = 256 / 224
DEFAULT_IMAGE_SIZE = 224


def resize_side(image_size):
  """The shorter side images are resized to before a crop of `image_size`."""
  return int(round(image_size * RESIZE_RATIO))


def decode(contents, channels=3):
  """uint8 [H, W, channels] from the bytes of any image file TF reads.

  JPEG (grey, RGB or CMYK), PNG (8 or 16 bits; grey, grey + alpha, RGB,
  RGBA, palette), GIF (its first frame), BMP and WebP, in any mode, become
  the model's `channels` (1 or 3) one way everywhere — training, evaluation,
  the export's graph, the service, the search CLI, the Beam encoder: the
  file is decoded in its own channels and then converted (alpha dropped, as
  Keras' image_dataset_from_directory and PIL's convert("RGB") drop it;
  grey → RGB repeats the grey; RGB → grey is tf.image.rgb_to_grayscale), so
  a grey file read as grey keeps its exact pixels. (TensorFlow's GIF and BMP
  decoders refuse channels=1 and its JPEG decoder refuses it for CMYK files:
  asking for the model's channels directly is what failed.)
  """
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3. Received: channels={channels}")
  return to_channels(decode_native(contents), channels)


def decode_native(contents):
  """uint8 [H, W, 1 | 2 | 3 | 4]: an image file in its own channels (a
  GIF's first frame); what `decode` converts."""
  image = tf.io.decode_image(contents, channels=0, expand_animations=False)
  image.set_shape([None, None, None])
  return image


def to_channels(image, channels):
  """uint8 [H, W, channels] (1 or 3) from uint8 [H, W, 1 | 2 | 3 | 4]."""
  native = tf.shape(image)[-1]
  color = native >= 3
  if channels == 1:
    out = tf.cond(color,
                  lambda: tf.image.rgb_to_grayscale(image[..., :3]),
                  lambda: image[..., :1])
  else:
    out = tf.cond(color, lambda: image[..., :3],
                  lambda: tf.tile(image[..., :1], [1, 1, 3]))
  out.set_shape([None, None, channels])
  return out


def _to_uint8(image):
  return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def fit_square(image, height, width):
  """uint8 [height, width, C]: an image of that size as it is; any other cut
  to its central square and resized (bilinear, antialiased when it shrinks
  more than twice). The rule for images fed to models of in-memory and
  image-folder datasets, in training and at every later use."""
  shape = tf.shape(image)
  channels = image.shape[-1]

  def crop_resize():
    side = tf.minimum(shape[0], shape[1])
    top = (shape[0] - side) // 2
    left = (shape[1] - side) // 2
    square = image[top:top + side, left:left + side]
    return _to_uint8(tf.cond(
        side > 2 * max(height, width),
        lambda: tf.image.resize(square, [height, width], antialias=True),
        lambda: tf.image.resize(square, [height, width])))

  same_size = tf.logical_and(tf.equal(shape[0], height),
                             tf.equal(shape[1], width))
  fitted = tf.cond(same_size, lambda: image, crop_resize)
  fitted.set_shape([height, width, channels])
  return fitted


def resize_shorter_side(image, side):
  """Resizes uint8 [H, W, 3] so that min(H, W) = side, keeping the aspect.

  Bilinear, antialiased when it shrinks more than twice (as in
  decode_crop_resize).
  """
  shape = tf.shape(image)
  height = tf.cast(shape[0], tf.float32)
  width = tf.cast(shape[1], tf.float32)
  shorter = tf.minimum(height, width)
  new_size = tf.maximum(side, tf.cast(
      tf.round(tf.stack([height, width]) * side / shorter), tf.int32))
  return _to_uint8(tf.cond(
      shorter > 2 * side,
      lambda: tf.image.resize(image, new_size, antialias=True),
      lambda: tf.image.resize(image, new_size)))


def center_crop(image, size):
  """The central size × size window of an image at least that large."""
  shape = tf.shape(image)
  top = (shape[0] - size) // 2
  left = (shape[1] - size) // 2
  crop = image[top:top + size, left:left + size]
  crop.set_shape([size, size, image.shape[-1]])
  return crop


def _seeds(seed):
  return tf.unstack(tf.random.experimental.stateless_split(seed, num=2))


def random_crop_flip(image, size, seed):
  """A random size × size window, flipped left-right half the time.

  Args:
    image: uint8 [H, W, 3], H and W ≥ size.
    size: side of the crop.
    seed: int64 [2]; the same seed gives the same crop and flip.
  """
  crop_seed, flip_seed = _seeds(seed)
  image = tf.image.stateless_random_crop(image, [size, size, 3],
                                         seed=crop_seed)
  return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def crop_window(shape, position):
  """The window a crop of the resized image covers, in source pixels.

  Args:
    shape: int [≥2], (height, width, …) of the source image.
    position: float [2] in [0, 1]: where the window lies between the top
      (left) edge, 0, and the bottom (right) edge, 1; 0.5 is the center.

  Returns:
    int32 [4]: top, left, height, width of a square of 224/256 of the
    shorter side.
  """
  size = tf.cast(shape[:2], tf.float32)
  side = tf.maximum(1.0, tf.round(tf.reduce_min(size) / RESIZE_RATIO))
  offset = tf.round((size - side) * position)
  return tf.cast(tf.concat([offset, [side, side]], 0), tf.int32)


def decode_crop_resize(contents, position, size):
  """Decodes the crop window at `position` and resizes it to size × size.

  JPEGs decode only the window; other formats decode whole, then crop. The
  window is resized bilinearly, antialiased only when it is over twice
  `size`: below that, bilinear interpolation barely aliases, and the
  antialiasing filter would cost more than the decoding (6.1 against 2.5 ms
  of CPU per 375 × 500 JPEG, crop to 224, on a Xeon core).
  Returns uint8 [size, size, 3].
  """
  def jpeg():
    window = crop_window(tf.image.extract_jpeg_shape(contents), position)
    return tf.io.decode_and_crop_jpeg(contents, window, channels=3)

  def other():
    image = decode(contents)
    window = crop_window(tf.shape(image), position)
    return image[window[0]:window[0] + window[2],
                 window[1]:window[1] + window[3]]

  crop = tf.cond(tf.io.is_jpeg(contents), jpeg, other)
  crop.set_shape([None, None, 3])
  image = tf.cond(
      tf.shape(crop)[0] > 2 * size,
      lambda: tf.image.resize(crop, [size, size], antialias=True),
      lambda: tf.image.resize(crop, [size, size]))
  image = _to_uint8(image)
  image.set_shape([size, size, 3])
  return image


def random_crop_resize_flip(contents, size, seed):
  """A random crop window, resized to size × size, flipped half the time."""
  crop_seed, flip_seed = _seeds(seed)
  position = tf.random.stateless_uniform([2], seed=crop_seed)
  image = decode_crop_resize(contents, position, size)
  return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def _cached(dataset, cache, key):
  """Applies the optional cache: None, "memory" or a directory."""
  if not cache:
    return dataset
  if cache == "memory":
    return dataset.cache()
  os.makedirs(cache, exist_ok=True)
  return dataset.cache(os.path.join(cache, key))


def _cache_key(name, part, paths, image_size):
  digest = hashlib.sha1("\n".join(paths).encode("utf-8")).hexdigest()[:12]
  return f"{name}_{part}_{image_size}px_{digest}"


def file_parts(name, files, labels, *, image_size=DEFAULT_IMAGE_SIZE, seed=0,
               cache=None):
  """Builds the unbatched parts of a HashingDataset from image files.

  Training: a random crop window (224/256 of the shorter side), resized to
  image_size, flipped half the time. Queries and database: the central
  window, resized. All maps run with num_parallel_calls=AUTOTUNE;
  dhe_tf.data.pipeline shuffles, batches and prefetches.

  Every part yields its images in the order of `files` (the i-th element is
  files[part][i], as consumers that select positions rely on); pass the
  training files in a shuffled order, since the batching pipeline's shuffle
  buffer only mixes nearby elements. Crops and flips change every epoch.

  Args:
    name: dataset name, part of the cache file names.
    files: part name ("train", "query", "database") -> str [N] image paths.
    labels: part name -> float32 [N, C].
    image_size: side of the square images the parts yield.
    seed: seed of the crops and flips.
    cache: None (decode every epoch); "memory" (training images and
      queries; not the database, read once or twice per run); or a
      directory where tf.data writes cache files of every part, reused by
      later runs (named by dataset, part, size and a digest of the file
      list, so a changed list gets a new cache). Training images are cached
      resized to a shorter side of image_size · 256/224 and cropped after
      the cache; queries and database are cached as they are yielded.

  Returns:
    part name -> tf.data.Dataset of (uint8 [image_size, image_size, 3],
    float32 [C]).
  """
  side = resize_side(image_size)
  center = tf.constant([0.5, 0.5])

  def load_resized(path, label):
    return resize_shorter_side(decode(tf.io.read_file(path)), side), label

  def load_center(path, label):
    return decode_crop_resize(tf.io.read_file(path), center,
                              image_size), label

  def load_random(example, seed_pair):
    path, label = example
    return random_crop_resize_flip(tf.io.read_file(path), image_size,
                                   seed_pair), label

  def crop_cached(example, seed_pair):
    image, label = example
    return random_crop_flip(image, image_size, seed_pair), label

  parts = {}
  for part, paths in files.items():
    paths = np.asarray(paths, dtype=str)
    dataset = tf.data.Dataset.from_tensor_slices(
        (paths, np.asarray(labels[part], np.float32)))
    key = _cache_key(name, part, paths, image_size)
    if part != "train":
      dataset = dataset.map(load_center, num_parallel_calls=tf.data.AUTOTUNE)
      # The database is read once or twice per run: worth a cache that
      # outlives the run (a directory), not one that holds it in memory.
      in_memory_database = cache == "memory" and part == "database"
      parts[part] = _cached(dataset.ignore_errors(log_warning=True),
                            None if in_memory_database else cache, key)
      continue
    seeds = tf.data.Dataset.random(
        seed=seed, rerandomize_each_iteration=True).batch(2)
    if cache:
      dataset = dataset.map(load_resized, num_parallel_calls=tf.data.AUTOTUNE)
      dataset = _cached(dataset.ignore_errors(log_warning=True), cache, key)
      dataset = tf.data.Dataset.zip((dataset, seeds)).map(
          crop_cached, num_parallel_calls=tf.data.AUTOTUNE)
    else:
      dataset = tf.data.Dataset.zip((dataset, seeds)).map(
          load_random, num_parallel_calls=tf.data.AUTOTUNE)
      dataset = dataset.ignore_errors(log_warning=True)
    parts[part] = dataset
  return parts


def fitted_parts(name, files, labels, *, image_size, channels, cache=None):
  """The parts of a class-folder or list-file dataset: every image decoded
  into `channels` (decode) and fitted to image_size × image_size
  (fit_square), the rule the export and the service apply too, so a model
  sees its images the same way in training and in use. Training images
  vary by --augment (dhe_tf.data.pipeline), not here.

  Args:
    name: dataset name, part of the cache file names.
    files: part name -> str [N] image paths.
    labels: part name -> float32 [N, C].
    image_size: side of the square images the parts yield.
    channels: 1 (grey) or 3 (RGB).
    cache: None, "memory" (not the database) or a directory, as in
      file_parts; images are cached as they are yielded.

  Returns:
    part name -> tf.data.Dataset of (uint8 [image_size, image_size,
    channels], float32 [C]), in the order of `files`.
  """
  def load(path, label):
    image = decode(tf.io.read_file(path), channels)
    return fit_square(image, image_size, image_size), label

  parts = {}
  for part, paths in files.items():
    paths = np.asarray(paths, dtype=str)
    dataset = tf.data.Dataset.from_tensor_slices(
        (paths, np.asarray(labels[part], np.float32)))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    key = _cache_key(name, part, paths, f"{image_size}x{channels}")
    # The database is read once or twice per run: not worth memory.
    in_memory_database = cache == "memory" and part == "database"
    parts[part] = _cached(dataset.ignore_errors(log_warning=True),
                          None if in_memory_database else cache, key)
  return parts
