"""The serving graph of a trained model, and its export as a SavedModel.

    encoded image bytes [N] ─ decode, crop, resize ─┐
    pixels [N, H, W, C] (float32 or uint8) ─────────┴→ model (its own
      preprocessing in the graph) → hash activations [N, K]
      → bits uint8 [N, K], packed uint8 [N, ceil(K / 8)], probabilities [N, K]

Everything from bytes to bits is TensorFlow ops, so the exported SavedModel
needs neither dhe_tf nor Keras to run: TF Serving loads it as it is. The
same functions encode image files in-process (`encode_files`, used by
dhe_tf.search), so a local query and a served one give the same bits.

Images are fitted to the model's input H × W the way the run's database
images were: for image-file datasets (NUS-WIDE) the central window of 224/256
of the shorter side, resized (dhe_tf.data.images.decode_crop_resize); for
in-memory datasets (Fashion-MNIST, CIFAR-10) an image of the input size is
taken as it is, and any other is cut to its central square and resized.

`packed` holds the bits as `np.packbits(bits, axis=1)` (and
dhe_tf.metrics.pack_codes) would: the first bit is the most significant bit
of the first byte, and a code whose K is not a multiple of 8 is padded with
zero bits at the end, the same for every code, so the padding never adds to a
Hamming distance.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from dhe_tf import model as model_lib
from dhe_tf import run_dir
from dhe_tf.data import datasets
from dhe_tf.data import image_list
from dhe_tf.data import images as images_lib
from dhe_tf.errors import ConfigError

# Signature names of the export, and their inputs.
BYTES_SIGNATURE = "serving_default"  # images: tf.string [N]
PIXELS_SIGNATURE = "pixels"  # images: float32 [N, H, W, C] in 0..255
UINT8_PIXELS_SIGNATURE = "pixels_uint8"  # images: uint8 [N, H, W, C]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def input_shape(model):
  """(H, W, C) of the model's image input."""
  return tuple(int(side) for side in model.inputs[0].shape[1:])


def decode_image(contents, image_shape, *, center_crop):
  """uint8 [H, W, C] image for the model, from an encoded JPEG/PNG/GIF/BMP.

  Args:
    contents: tf.string scalar, the file's bytes.
    image_shape: (H, W, C), the model's input shape.
    center_crop: True for models of image-file datasets: always the central
      224/256 window, resized, as their database images were (H = W, C = 3
      there). False: an image of size H × W is kept as it is, any other is
      cut to its central square and resized bilinearly.
  """
  height, width, channels = image_shape
  if center_crop:
    image = images_lib.decode_crop_resize(contents, [0.5, 0.5], height)
    return image if channels == 3 else tf.image.rgb_to_grayscale(image)
  image = tf.io.decode_image(contents, channels=channels,
                             expand_animations=False)
  image.set_shape([None, None, channels])
  shape = tf.shape(image)

  def crop_resize():
    side = tf.minimum(shape[0], shape[1])
    top = (shape[0] - side) // 2
    left = (shape[1] - side) // 2
    square = image[top:top + side, left:left + side]
    resized = tf.cond(
        side > 2 * tf.maximum(height, width),
        lambda: tf.image.resize(square, [height, width], antialias=True),
        lambda: tf.image.resize(square, [height, width]))
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

  same_size = tf.logical_and(tf.equal(shape[0], height),
                             tf.equal(shape[1], width))
  image = tf.cond(same_size, lambda: image, crop_resize)
  image.set_shape(image_shape)
  return image


def decode_images(contents, image_shape, *, center_crop):
  """uint8 [N, H, W, C] from tf.string [N] of encoded images."""
  return tf.map_fn(
      lambda one: decode_image(one, image_shape, center_crop=center_crop),
      contents, fn_output_signature=tf.TensorSpec(image_shape, tf.uint8))


def pack_bits(bits):
  """uint8 [N, ceil(K / 8)] from 0/1 uint8 [N, K], as np.packbits(axis=1)."""
  num_bits = bits.shape[-1]
  padded = tf.pad(tf.cast(bits, tf.int32), [[0, 0], [0, -num_bits % 8]])
  groups = tf.reshape(padded, [-1, (num_bits + 7) // 8, 8])
  weights = tf.constant([128, 64, 32, 16, 8, 4, 2, 1], tf.int32)
  return tf.cast(tf.reduce_sum(groups * weights, axis=-1), tf.uint8)


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


def code_outputs(probabilities):
  """The signature outputs from hash activations float32 [N, K]."""
  bits = tf.cast(probabilities >= 0.5, tf.uint8)
  return {"bits": bits, "packed": pack_bits(bits),
          "probabilities": probabilities}


def add_signatures(archive, model, *, center_crop):
  """Adds the three serving signatures of `model` to a keras ExportArchive."""
  encoder = model_lib.encoder(model)
  archive.track(encoder)
  image_shape = input_shape(model)

  def from_pixels(images):
    return code_outputs(encoder(tf.cast(images, tf.float32), training=False))

  def from_bytes(images):
    return from_pixels(decode_images(images, image_shape,
                                     center_crop=center_crop))

  archive.add_endpoint(
      BYTES_SIGNATURE, from_bytes,
      input_signature=[tf.TensorSpec([None], tf.string, name="images")])
  archive.add_endpoint(
      PIXELS_SIGNATURE, from_pixels,
      input_signature=[tf.TensorSpec((None, *image_shape), tf.float32,
                                     name="images")])
  archive.add_endpoint(
      UINT8_PIXELS_SIGNATURE, from_pixels,
      input_signature=[tf.TensorSpec((None, *image_shape), tf.uint8,
                                     name="images")])


def center_crops(config):
  """Whether a run's model takes images cut like image-file datasets'."""
  datasets.check_name(config.dataset)
  return datasets.DATASETS[config.dataset].image_files


def _write_description(saved_model_dir, model):
  """Writes assets.extra/dhe_tf.json: bits, signatures and the model
  fingerprint that indexes of its codes store too (dhe_tf.index), so an
  export can be matched with its index. TF Serving ignores assets.extra."""
  extra = os.path.join(saved_model_dir, "assets.extra")
  os.makedirs(extra, exist_ok=True)
  with open(os.path.join(extra, "dhe_tf.json"), "w", encoding="utf-8") as f:
    json.dump({"bits": int(model.get_layer("hash").output.shape[-1]),
               "fingerprint": model_fingerprint(model),
               "signatures": [BYTES_SIGNATURE, PIXELS_SIGNATURE,
                              UINT8_PIXELS_SIGNATURE]}, f, indent=2)
    f.write("\n")


def _chmod_like_makedirs(path):
  # mkdtemp makes 0700 directories; give the version the usual permissions
  # so that a server running as another user can read it.
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(path, 0o777 & ~umask)


def _versions(base):
  if not os.path.isdir(base):
    return []
  return sorted(int(name) for name in os.listdir(base) if name.isdigit())


def check_model_name(model_name):
  if not _MODEL_NAME.fullmatch(model_name or ""):
    raise ConfigError(
        "model_name must be letters, digits, '_', '.' or '-', starting with a "
        f"letter or digit. Received: model_name={model_name!r}")


def export_saved_model(model, export_dir, *, model_name="dhe", version=None,
                       center_crop=False):
  """Writes `model`'s serving SavedModel to export_dir/model_name/version/.

  That is the layout TF Serving watches: it serves the highest numeric
  version under export_dir/model_name. The SavedModel is written into a
  hidden temporary directory next to the version (TF Serving ignores
  non-numeric names) and renamed at the end, so a failed export never leaves
  a partial version where TF Serving would load it.

  Args:
    model: a model from dhe_tf.model.build_model.
    export_dir: the model base directory's parent.
    model_name: the name TF Serving serves the model under.
    version: a positive integer; None for one more than the highest version
      already there (1 for the first).
    center_crop: see decode_image.

  Returns:
    The path of the new version directory.

  Raises:
    ConfigError: a bad model_name or version, or a version already there.
  """
  check_model_name(model_name)
  base = os.path.join(export_dir, model_name)
  if version is None:
    version = (_versions(base) or [0])[-1] + 1
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise ConfigError(
        f"version must be a positive integer. Received: version={version!r}")
  final = os.path.join(base, str(version))
  if os.path.exists(final):
    raise ConfigError(f"{final} already exists: pass another --version, or "
                      "leave it out for the next free one.")
  try:
    created = run_dir.create(base)
  except ConfigError as e:
    raise ConfigError(str(e).replace("model_dir=", "export_dir=", 1)) from e
  tmp = tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=base)
  try:
    _chmod_like_makedirs(tmp)
    archive = keras.export.ExportArchive()
    add_signatures(archive, model, center_crop=center_crop)
    archive.write_out(tmp, verbose=False)
    _write_description(tmp, model)
    os.rename(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    run_dir.remove_created(created)
    raise
  return final


def image_paths(inputs):
  """The image files named by `inputs`, each checked to decode.

  Args:
    inputs: paths of image files or folders; a folder stands for its files
      with an image extension (IMAGE_EXTENSIONS, any case), sorted by name.

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
          if name.lower().endswith(IMAGE_EXTENSIONS) and
          os.path.isfile(os.path.join(item, name)))
      if not found:
        raise ConfigError(f"Folder {item} holds no image files "
                          f"({', '.join(IMAGE_EXTENSIONS)}).")
      paths.extend(found)
    elif os.path.exists(item):
      paths.append(item)
    else:
      raise ConfigError(f"Image path not found: {item}")
  if not paths:
    raise ConfigError("No images given.")
  problems = image_list.check_images(paths)
  if problems:
    shown = [_tidy(problems[path]) for path in paths if path in problems][:3]
    more = len(problems) - len(shown)
    raise ConfigError("Not an image the model can read: " + "; ".join(shown) +
                      (f"; and {more} more" if more > 0 else ""))
  return paths


def _tidy(problem):
  # TensorFlow's op errors carry "{{function_node ...}}" and "[Op:...]".
  return re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:.*$", "", problem)


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
  codes = [model_lib.binarize(encoder(tf.cast(batch, tf.float32),
                                      training=False))
           for batch in dataset]
  bits = model.get_layer("hash").output.shape[-1]
  return np.concatenate(codes) if codes else np.zeros((0, bits), np.uint8)
