"""A trained model applied to images: decode, fit to the model's input, encode.

    encoded image bytes ─ decode, crop, resize ─┐
    pixels uint8 [N, H, W, C] ──────────────────┴→ encoder (the model's own
      preprocessing in the graph) → activations [N, K] → bits (dhe_tf.core.codes)

The same functions serve evaluation (`encode` of a dataset part), search
(`encode_files`) and the exported SavedModel's graph (dhe_tf.saved_model.exporter), so a
local query, a served one and the evaluation give the same bits.

Image bytes (JPEG, PNG, GIF, BMP, WebP, in any mode) are decoded by
dhe_tf.data.images.decode into the model's channels, and fitted to its input
H × W the way the run's database images were: for image-file datasets
(NUS-WIDE) the central window of 224/256 of the shorter side, resized
(dhe_tf.data.images.decode_crop_resize); for in-memory datasets
(Fashion-MNIST, CIFAR-10) and class folders an image of the input size is
taken as it is, and any other is cut to its central square and resized
(dhe_tf.data.images.fit_square).
"""

import hashlib
import os

import keras
import numpy as np
import tensorflow as tf

from dhe_tf.core import codes as codes_lib
from dhe_tf.model import network as model_lib
from dhe_tf.data import folders
from dhe_tf.data import image_checks
from dhe_tf.data import images as images_lib
from dhe_tf.data import pipeline
from dhe_tf.core.errors import ConfigError

def activations(model, dataset, *, batch_size, with_logits=False):
  """Hash activations of every image of an unbatched (image, label) dataset.

  Args:
    model: a model from dhe_tf.model.build_model.
    dataset: unbatched (image, label) pairs.
    batch_size: images per batch.
    with_logits: also return the classifier's logits, from the same pass.

  Returns:
    (u float32 [N, K] in [0, 1], labels float32 [N, C]), in dataset order,
    and logits float32 [N, C] third when with_logits.
  """
  network = model if with_logits else model_lib.encoder(model)
  values, labels, logits = [], [], []
  for images, batch_labels in pipeline.batches(dataset, batch_size=batch_size,
                                               training=False):
    outputs = network(images, training=False)
    if with_logits:
      logits.append(keras.ops.convert_to_numpy(outputs["logits"]))
      outputs = outputs["hash"]
    values.append(keras.ops.convert_to_numpy(outputs).astype(np.float32))
    labels.append(batch_labels.numpy())
  parts = (values, labels, logits) if with_logits else (values, labels)
  return tuple(np.concatenate(part) for part in parts)


def encode(model, dataset, *, batch_size, with_logits=False):
  """As `activations`, with codes uint8 [N, K] of 0/1 (u ≥ ½) in place of
  the activations."""
  u, *rest = activations(model, dataset, batch_size=batch_size,
                         with_logits=with_logits)
  return (codes_lib.binarize(u), *rest)


def input_shape(model):
  """(H, W, C) of the model's image input."""
  return tuple(int(side) for side in model.inputs[0].shape[1:])


def num_bits(model):
  """K, the length of the model's codes (its hash layer's width)."""
  return int(model.get_layer("hash").output.shape[-1])


# TensorFlow 2.21's WebP decoder overruns its buffer on an animated WebP
# without alpha, and the process aborts: a graph that decodes bytes (the
# export's, for TF Serving) fails on one first, in TensorFlow ops. The
# checks in Python (dhe_tf.data.image_checks) refuse it from its header.
_ANIMATED_WEBP = ("An animated WebP is not decoded by TensorFlow: send "
                  f"{image_checks.FORMATS_TEXT}")


def _refuse_animated_webp(contents):
  """`contents`, after an op that fails on an animated WebP: "RIFF", size,
  "WEBP", a "VP8X" chunk whose flags (byte 20) have the animation bit."""
  head = tf.strings.join([tf.strings.substr(contents, 0, 21), "\0" * 21])
  flags = tf.io.decode_raw(tf.strings.substr(head, 20, 1), tf.uint8)[0]
  animated = tf.logical_and(
      tf.logical_and(tf.equal(tf.strings.substr(head, 0, 4), "RIFF"),
                     tf.equal(tf.strings.substr(head, 8, 8), "WEBPVP8X")),
      tf.not_equal(tf.bitwise.bitwise_and(flags, 2), 0))
  with tf.control_dependencies(
      [tf.debugging.Assert(tf.logical_not(animated), [_ANIMATED_WEBP])]):
    return tf.identity(contents)


def decode_image(contents, image_shape, *, center_crop):
  """uint8 [H, W, C] image for the model, from an encoded image file.

  Any format and mode dhe_tf.data.images.decode reads (JPEG, PNG, GIF, BMP,
  WebP), in TensorFlow ops only (the export's graph runs it).

  Args:
    contents: tf.string scalar, the file's bytes.
    image_shape: (H, W, C), the model's input shape.
    center_crop: True for models of image-file datasets: always the central
      224/256 window, resized, as their database images were (H = W).
      False: as dhe_tf.data.images.fit_square, the rule of the in-memory
      and class-folder datasets' images: an image of size H × W is kept as
      it is, any other is cut to its central square and resized.
  """
  height, width, channels = image_shape
  contents = _refuse_animated_webp(contents)
  if center_crop:
    image = images_lib.decode_crop_resize(contents, [0.5, 0.5], height)
    return images_lib.to_channels(image, channels)
  return images_lib.fit_square(images_lib.decode(contents, channels), height,
                               width)


def decode_images(contents, image_shape, *, center_crop):
  """uint8 [N, H, W, C] from tf.string [N] of encoded images."""
  return tf.map_fn(
      lambda one: decode_image(one, image_shape, center_crop=center_crop),
      contents, fn_output_signature=tf.TensorSpec(image_shape, tf.uint8))


def model_fingerprint(model):
  """SHA-256 (hex) of the weights that make a model's codes.

  Hashes every weight of the encoder (backbone, fully-connected and hash
  layers, batch-norm statistics included) with its shape and dtype, in
  layer order. Two models share it only if they encode every image alike;
  saving and reloading a model keeps it (a hash of the .keras file would
  not: the file records when it was saved).
  """
  digest = hashlib.sha256()
  for weight in model_lib.encoder(model).weights:
    value = np.asarray(keras.ops.convert_to_numpy(weight))
    digest.update(f"{value.dtype.str}{value.shape};".encode())
    digest.update(np.ascontiguousarray(value).tobytes())
  return digest.hexdigest()


def image_paths(inputs):
  """The image files named by `inputs`, each checked to decode.

  Args:
    inputs: paths of image files or folders; a folder stands for its files
      with an image extension
      (dhe_tf.data.folders.IMAGE_EXTENSIONS, any case), sorted by name.

  Returns:
    list of str paths, in the order given.

  Raises:
    ConfigError: a path that does not exist, a folder with no images, or a
      file that is not an image this model can read (the first few named).
  """
  paths = []
  for item in inputs:
    if os.path.isdir(item):
      found = sorted(
          os.path.join(item, name) for name in os.listdir(item)
          if name.lower().endswith(folders.IMAGE_EXTENSIONS) and
          os.path.isfile(os.path.join(item, name)))
      if not found:
        raise ConfigError(f"Folder {item} holds no image files "
                          f"({', '.join(folders.IMAGE_EXTENSIONS)}).")
      paths.extend(found)
    elif os.path.exists(item):
      paths.append(item)
    else:
      raise ConfigError(f"Image path not found: {item}")
  if not paths:
    raise ConfigError("No images given.")
  problems = image_checks.check_images(paths)
  if problems:
    shown = [problems[path] for path in paths if path in problems][:3]
    more = len(problems) - len(shown)
    raise ConfigError("Not an image the model can read: " + "; ".join(shown) +
                      (f"; and {more} more" if more > 0 else ""))
  return paths


def encode_files(model, paths, *, center_crop, batch_size=256):
  """Hash codes uint8 [N, K] of image files, as the exported model gives.

  Args:
    model: a model from dhe_tf.model.build_model.
    paths: image file paths, checked by `image_paths`.
    center_crop: see decode_image.
    batch_size: images per batch.
  """
  encoder = model_lib.encoder(model)
  image_shape = input_shape(model)
  dataset = tf.data.Dataset.from_tensor_slices(list(paths)).map(
      lambda path: decode_image(tf.io.read_file(path), image_shape,
                                center_crop=center_crop),
      num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
  codes = [codes_lib.binarize(encoder(tf.cast(batch, tf.float32),
                                      training=False))
           for batch in dataset]
  return (np.concatenate(codes) if codes else
          np.zeros((0, num_bits(model)), np.uint8))
