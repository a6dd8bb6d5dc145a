"""Export of a trained run as a SavedModel for TF Serving.

    encoded image bytes [N] ─ decode, crop, resize ─┐
    pixels [N, H, W, C] (float32 or uint8) ─────────┴→ encoder
      → bits uint8 [N, K], packed uint8 [N, ceil(K / 8)], probabilities [N, K]

Everything from bytes to bits is TensorFlow ops (dhe_tf.model.inference for the
decoding of JPEG, PNG, GIF, BMP and WebP files in any mode, dhe_tf.core.codes
for the packing), so the SavedModel needs neither dhe_tf nor Keras to run: TF
Serving loads it as it is. `packed` holds the bits as dhe_tf.core.codes.pack
does (np.packbits layout).

`python -m dhe_tf.export` is the command line of `export_run`.
"""

import json
import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from dhe_tf.core import checks
from dhe_tf.core import codes as codes_lib
from dhe_tf.model import inference
from dhe_tf.model import network as model_lib
from dhe_tf.runs import run_dir
from dhe_tf.core.errors import ConfigError

# Signature names of the export, and their inputs.
BYTES_SIGNATURE = "serving_default"  # images: tf.string [N]
PIXELS_SIGNATURE = "pixels"  # images: float32 [N, H, W, C] in 0..255
UINT8_PIXELS_SIGNATURE = "pixels_uint8"  # images: uint8 [N, H, W, C]
SIGNATURES = (BYTES_SIGNATURE, PIXELS_SIGNATURE, UINT8_PIXELS_SIGNATURE)
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def code_outputs(probabilities):
  """The signature outputs from hash activations float32 [N, K]."""
  bits = tf.cast(probabilities >= codes_lib.THRESHOLD, tf.uint8)
  return {"bits": bits, "packed": codes_lib.pack_tensor(bits),
          "probabilities": probabilities}


def add_signatures(archive, model, *, center_crop):
  """Adds the three serving signatures of `model` to a keras ExportArchive."""
  encoder = model_lib.encoder(model)
  archive.track(encoder)
  image_shape = inference.input_shape(model)

  def from_pixels(images):
    return code_outputs(encoder(tf.cast(images, tf.float32), training=False))

  def from_bytes(images):
    return from_pixels(inference.decode_images(images, image_shape,
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


def _write_description(saved_model_dir, model, center_crop, fingerprint):
  """Writes assets.extra/dhe_tf.json: bits, signatures, how images are cut
  (center_crop, see dhe_tf.model.inference.decode_image) and the model
  fingerprint that indexes of its codes store too (dhe_tf.index), so an
  export can be matched with its index (dhe_tf.serve --export_dir reads
  it). TF Serving ignores assets.extra."""
  extra = os.path.join(saved_model_dir, "assets.extra")
  os.makedirs(extra, exist_ok=True)
  with open(os.path.join(extra, "dhe_tf.json"), "w", encoding="utf-8") as f:
    json.dump({"bits": inference.num_bits(model), "fingerprint": fingerprint,
               "signatures": list(SIGNATURES),
               "center_crop": bool(center_crop)}, f, indent=2)
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
                       center_crop=False, fingerprint=None):
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
    center_crop: see dhe_tf.model.inference.decode_image.
    fingerprint: the model's dhe_tf.model.inference.model_fingerprint when
      it is known (dhe_tf.runs.run_dir.Run.fingerprint); None computes it.

  Returns:
    The path of the new version directory.

  Raises:
    ConfigError: a bad model_name or version, or a version already there.
  """
  check_model_name(model_name)
  base = os.path.join(export_dir, model_name)
  if version is None:
    version = (_versions(base) or [0])[-1] + 1
  checks.positive_int("version", version)
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
    _write_description(tmp, model, center_crop,
                       fingerprint or inference.model_fingerprint(model))
    os.rename(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    run_dir.remove_created(created)
    raise
  return final


def export_run(model_dir, export_dir, *, model_name="dhe", version=None):
  """Exports the run in `model_dir` (its directory, or the
  dhe_tf.runs.run_dir.Run read from it; see export_saved_model).

  Returns:
    The path of the new version directory.
  """
  check_model_name(model_name)
  run = run_dir.load_run(model_dir)
  return export_saved_model(run.model, export_dir, model_name=model_name,
                            version=version, center_crop=run.center_crop,
                            fingerprint=run.fingerprint)
