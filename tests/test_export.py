"""`python -m dhe_tf.export`: the SavedModel for TF Serving, checked without it.

The export is loaded in a fresh Python process that does not import dhe_tf
(as TF Serving would, knowing nothing of Keras or dhe_tf), called with real
PNG and JPEG bytes, and its bits compared with the Keras model's.
"""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import image_samples

from dhe_tf.saved_model import exporter
from dhe_tf.model import inference
from dhe_tf.core import codes as codes_lib
from dhe_tf.model import network as model_lib
from dhe_tf.data import datasets
from dhe_tf.core.errors import ConfigError

_SERVE = r"""
import json, sys
import numpy as np
import tensorflow as tf
export, files, pixels, out = sys.argv[1:]
loaded = tf.saved_model.load(export)
images = tf.constant([open(f, "rb").read() for f in json.loads(files)])
by_bytes = loaded.signatures["serving_default"](images=images)
by_pixels = loaded.signatures["pixels"](images=tf.constant(np.load(pixels)))
by_uint8 = loaded.signatures["pixels_uint8"](
    images=tf.constant(np.load(pixels).astype(np.uint8)))
np.savez(out, **{f"bytes_{k}": v.numpy() for k, v in by_bytes.items()},
         **{f"pixels_{k}": v.numpy() for k, v in by_pixels.items()},
         **{f"uint8_{k}": v.numpy() for k, v in by_uint8.items()})
assert not [m for m in sys.modules if m.startswith("dhe_tf")]
"""


# serving_default alone, on files of every format one by one and in one
# batch; then on an animated WebP, which TensorFlow's decoder would crash on.
_SERVE_FORMATS = r"""
import json, sys
import numpy as np
import tensorflow as tf
export, files, refused, out = sys.argv[1:]
serve = tf.saved_model.load(export).signatures["serving_default"]
data = [open(f, "rb").read() for f in json.loads(files)]
batch = serve(images=tf.constant(data))["bits"].numpy()
one_by_one = np.concatenate([serve(images=tf.constant([d]))["bits"].numpy()
                             for d in data])
try:
  serve(images=tf.constant([open(refused, "rb").read()]))
  error = ""
except tf.errors.InvalidArgumentError as e:
  error = e.message
np.savez(out, batch=batch, one_by_one=one_by_one, error=error)
assert not [m for m in sys.modules if m.startswith("dhe_tf")]
"""


def _python(*args, **kwargs):
  return subprocess.run([sys.executable, *args], capture_output=True,
                        text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def exported(small_run, tmp_path_factory):
  """(version directory, model) of one export through the command line."""
  model_dir, model = small_run
  export_dir = str(tmp_path_factory.mktemp("export"))
  result = _python("-m", "dhe_tf.export", f"--model_dir={model_dir}",
                   f"--export_dir={export_dir}")
  assert result.returncode == 0, result.stderr[-3000:]
  path = os.path.join(export_dir, "dhe", "1")
  assert f"SavedModel → {path}" in result.stdout
  return path, model


def _image_files(directory):
  """Real PNG and JPEG files: grey 28 × 28 PNGs, a grey JPEG, and colour
  JPEG and PNG photos of other sizes (cropped and resized in the graph)."""
  images, _ = datasets.load_embedded_arrays()
  files = []
  for i in range(6):
    path = os.path.join(directory, f"grey{i}.png")
    tf.io.write_file(path, tf.io.encode_png(images[i * 1501]))
    files.append(path)
  path = os.path.join(directory, "grey.jpg")
  tf.io.write_file(path, tf.io.encode_jpeg(images[77], quality=90))
  files.append(path)
  colour = np.concatenate([images[500], images[3000], images[9000]], axis=-1)
  photo = tf.cast(tf.image.resize(colour, [50, 70]), tf.uint8)
  for name, encode in (("photo.jpg", tf.io.encode_jpeg),
                       ("photo.png", tf.io.encode_png)):
    path = os.path.join(directory, name)
    tf.io.write_file(path, encode(photo))
    files.append(path)
  return files


def _keras_codes(model, pixels):
  """Bits and activations of the Keras model on decoded pixels."""
  activations = model_lib.encoder(model)(pixels.astype(np.float32),
                                         training=False)
  return codes_lib.binarize(activations), np.asarray(activations)


def test_fresh_process_serves_the_keras_models_bits(exported, tmp_path):
  path, model = exported
  files = _image_files(str(tmp_path))
  # The decoded pixels the Keras model is compared on: the PNGs' exact
  # pixels, and for the lossy JPEGs what decoding them gives.
  decoded = np.stack([
      inference.decode_image(tf.io.read_file(f), (28, 28, 1),
                           center_crop=False).numpy() for f in files])
  images, _ = datasets.load_embedded_arrays()
  np.testing.assert_array_equal(decoded[:6], images[::1501][:6])
  pixels = str(tmp_path / "pixels.npy")
  np.save(pixels, decoded.astype(np.float32))
  out = str(tmp_path / "served.npz")
  result = _python("-c", _SERVE, path, json.dumps(files), pixels, out,
                   cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": ""})
  assert result.returncode == 0, result.stderr[-3000:]
  served = np.load(out)
  bits, activations = _keras_codes(model, decoded)
  assert 0 < bits.mean() < 1 and len(np.unique(bits, axis=0)) > 5
  for signature in ("bytes", "pixels", "uint8"):
    np.testing.assert_array_equal(served[f"{signature}_bits"], bits)
    np.testing.assert_array_equal(served[f"{signature}_packed"],
                                  np.packbits(bits, axis=1))
    np.testing.assert_allclose(served[f"{signature}_probabilities"],
                               activations, atol=1e-6)
  assert served["bytes_packed"].shape == (len(files), 2)
  assert served["bytes_bits"].dtype == np.uint8


def test_fresh_process_serves_every_format_as_the_keras_model(exported,
                                                              tmp_path):
  # GIF, BMP and CMYK JPEG failed with TensorFlow's decoders asked for the
  # grey model's 1 channel; WebP, 16-bit, palette, grey + alpha PNGs too.
  path, model = exported
  good = image_samples.good_files(seed=1)
  refused = image_samples.refused_files()
  files = image_samples.write(str(tmp_path), {
      name: good[name] for name in (
          "gif_palette.gif", "gif_animated.gif", "bmp_grey.bmp",
          "bmp_rgb.bmp", "jpeg_cmyk.jpg", "webp_rgb.webp", "webp_rgba.webp",
          "png_grey16.png", "png_palette.png", "png_grey_alpha.png")})
  animated = image_samples.write(str(tmp_path), {
      "animated.webp": refused["animated.webp"]})["animated.webp"]
  decoded = np.stack([
      inference.decode_image(tf.io.read_file(f), (28, 28, 1),
                             center_crop=False).numpy()
      for f in files.values()])
  out = str(tmp_path / "served.npz")
  result = _python("-c", _SERVE_FORMATS, path, json.dumps(list(
      files.values())), animated, out, cwd=str(tmp_path),
                   env={**os.environ, "PYTHONPATH": ""})
  assert result.returncode == 0, result.stderr[-3000:]
  served = np.load(out)
  bits, _ = _keras_codes(model, decoded)
  assert len(np.unique(bits, axis=0)) > 1  # The codes differ.
  np.testing.assert_array_equal(served["batch"], bits)
  np.testing.assert_array_equal(served["one_by_one"], bits)
  assert ("An animated WebP is not decoded by TensorFlow: send JPEG, PNG, "
          "GIF, BMP or WebP") in str(served["error"])


def test_saved_model_cli_lists_the_signatures(exported):
  path, _ = exported
  result = _python("-m", "tensorflow.python.tools.saved_model_cli", "show",
                   "--dir", path, "--all")
  assert result.returncode == 0, result.stderr[-3000:]
  text = result.stdout
  for signature in ("serving_default", "pixels", "pixels_uint8"):
    assert f"signature_def['{signature}']" in text
  string_input = re.search(
      r"signature_def\['serving_default'\].*?inputs\['images'\].*?"
      r"dtype: (\w+).*?shape: (\(-1\))", text, re.S)
  assert string_input and string_input.group(1) == "DT_STRING"
  for output, shape in (("bits", "(-1, 12)"), ("packed", "(-1, 2)"),
                        ("probabilities", "(-1, 12)")):
    assert re.search(rf"outputs\['{output}'\].*?shape: {re.escape(shape)}",
                     text, re.S), output
  with open(os.path.join(path, "assets.extra", "dhe_tf.json")) as f:
    description = json.load(f)
  assert description["bits"] == 12
  assert description["fingerprint"] == inference.model_fingerprint(
      exported[1])


def test_versions_count_up_and_existing_ones_are_refused(small_run,
                                                         tmp_path):
  _, model = small_run
  first = exporter.export_saved_model(model, str(tmp_path), version=3)
  assert first == os.path.join(tmp_path, "dhe", "3")
  with pytest.raises(ConfigError, match=r"dhe/3 already exists"):
    exporter.export_saved_model(model, str(tmp_path), version=3)
  with pytest.raises(ConfigError, match=r"Received: version=0"):
    exporter.export_saved_model(model, str(tmp_path), version=0)
  with pytest.raises(ConfigError, match=r"Received: model_name='a/b'"):
    exporter.export_saved_model(model, str(tmp_path), model_name="a/b")
  with pytest.raises(ConfigError, match=re.escape(
      "Cannot write to export_dir=/etc/hostname/dhe")):
    exporter.export_saved_model(model, "/etc/hostname")
  assert sorted(os.listdir(tmp_path / "dhe")) == ["3"]  # No temporary dirs.


def test_failed_export_leaves_no_version(small_run, tmp_path, monkeypatch):
  _, model = small_run

  def write_half_and_fail(self, path, **kwargs):
    del self, kwargs
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
      f.write(b"half")
    raise OSError("disk full")

  # ExportArchive() makes an instance of a backend-specific class.
  monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out",
                      write_half_and_fail)
  with pytest.raises(OSError, match="disk full"):
    exporter.export_saved_model(model, str(tmp_path / "new" / "exports"))
  assert os.listdir(tmp_path) == []  # Not even the directories it made.
  os.makedirs(tmp_path / "dhe" / "1")
  with pytest.raises(OSError, match="disk full"):
    exporter.export_saved_model(model, str(tmp_path))
  assert os.listdir(tmp_path / "dhe") == ["1"]


def test_bad_run_is_one_line_with_status_2(tmp_path):
  result = _python("-m", "dhe_tf.export", f"--model_dir={tmp_path}/none",
                   f"--export_dir={tmp_path}/out")
  assert result.returncode == 2
  last = result.stderr.strip().splitlines()[-1]
  assert last == (f"dhe_tf.export: error: {tmp_path}/none/flags.json does "
                  "not exist: --model_dir must be a finished dhe_tf.train "
                  "run."), last
  assert "Traceback" not in result.stderr
  assert os.listdir(tmp_path) == []
