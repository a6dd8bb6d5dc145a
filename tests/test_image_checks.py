"""dhe_tf.data.image_checks: every good format passes; each bad file is one
line naming it; a huge image is refused from its header, never decoded."""

import os
import struct

import numpy as np
import pytest
import tensorflow as tf

import image_samples
from dhe_tf.data import image_checks


def _jpeg_header(width, height):
  """A real JPEG whose frame header (SOF0) is made to claim width × height."""
  data = bytearray(tf.io.encode_jpeg(np.zeros((16, 16, 3), np.uint8)).numpy())
  sof = data.index(b"\xff\xc0")
  data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
  return bytes(data)


def _huge_headers(width, height):
  """{name: bytes} of files of each format whose header claims width ×
  height, followed by a little data."""
  tail = bytes(200)
  vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (
      (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))
  return {
      "huge.png": image_samples.png_header(width, height),
      "huge.jpg": _jpeg_header(width, height),
      "huge.gif": b"GIF89a" + struct.pack("<HH", width, height) + bytes(3) +
                  b"\x2c" + bytes(8) + b"\x00\x02\x01\x00\x00\x3b",
      "huge.bmp": b"BM" + bytes(12) + struct.pack("<IiiHHI", 40, width, height,
                                                  1, 24, 0) + tail,
      "huge.webp": b"RIFF" + struct.pack("<I", 4 + len(vp8x) + len(tail)) +
                   b"WEBP" + vp8x + tail,
  }


def test_every_good_format_and_mode_passes(tmp_path):
  paths = image_samples.write(str(tmp_path), image_samples.good_files())
  assert image_checks.check_images(paths.values()) == {}


def test_a_huge_image_is_refused_from_its_header(tmp_path, monkeypatch):
  def never(*args, **kwargs):
    raise AssertionError("decoded")
  monkeypatch.setattr(image_checks.images_lib, "decode", never)
  paths = image_samples.write(
      str(tmp_path), {name: (data,) for name, data in
                      _huge_headers(30_000, 30_000).items()})
  for name, path in paths.items():
    assert image_checks.image_problem(path) == (
        f"cannot use image {path}: 30,000 × 30,000 = 900,000,000 pixels, "
        "over the limit of 50,000,000"), name
  # Every frame of a GIF is decoded (only the first is used): all count.
  (animated,) = image_samples.write(str(tmp_path), {
      "animated.gif": image_samples.good_files()["gif_animated.gif"]
  }).values()
  assert image_checks.image_problem(animated, max_pixels=1500) == (
      f"cannot use image {animated}: 28 × 28 × 2 frames = 1,568 pixels, "
      "over the limit of 1,500")
  # Within the limit, the same headers are read and the size checked.
  for name, data in _huge_headers(40, 30).items():
    header = image_checks.read_header(data)
    assert (header.width, header.height) == (40, 30), name


def test_each_bad_file_is_one_line_naming_it(tmp_path):
  good = image_samples.good_files()
  jpeg, png = good["jpeg_rgb.jpg"][0], good["png_rgb.png"][0]
  files = {
      "tiny.png": (tf.io.encode_png(np.zeros((1, 1, 1), np.uint8)).numpy(),
                   "cannot use image {}: 1 × 1 pixels, under 8 on a side: "
                   "too small to hash"),
      "thin.gif": (image_samples.good_files()["gif_palette.gif"][0][:6] +
                   struct.pack("<HH", 100, 5) + bytes(3) + b"\x3b",
                   "cannot use image {}: 100 × 5 pixels, under 8 on a side"),
      "notes.jpg": (b"not an image at all",
                    "cannot decode image {}: Unknown image file format. One "
                    "of JPEG, PNG, GIF, BMP or WebP required"),
      "empty.png": (b"", "image file is empty: {}"),
      "cut.jpg": (jpeg[:len(jpeg) // 2], "cannot decode image {}: "),
      "cut.png": (png[:len(png) // 2], "cannot decode image {}: "),
      "header.jpg": (jpeg[:40], "cannot decode image {}: corrupt JPEG "
                     "header"),
      "header.webp": (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(30),
                      "cannot decode image {}: corrupt WebP header"),
  }
  for name, (data, problem) in image_samples.refused_files().items():
    files[name] = (data, f"cannot use image {{}}: {problem}")
  paths = image_samples.write(str(tmp_path), files)
  os.mkdir(tmp_path / "folder.jpg")
  os.mkfifo(tmp_path / "fifo.jpg")  # Opening it would wait for a writer.
  os.symlink(tmp_path / "gone.jpg", tmp_path / "link.jpg")
  cases = {path: files[name][1].format(path) for name, path in paths.items()}
  cases.update({
      f"{tmp_path}/folder.jpg": f"image path is a directory: "
                                f"{tmp_path}/folder.jpg",
      f"{tmp_path}/fifo.jpg": f"image path is a FIFO: {tmp_path}/fifo.jpg",
      f"{tmp_path}/link.jpg": f"image path is a broken symbolic link (to "
                              f"{tmp_path}/gone.jpg): {tmp_path}/link.jpg",
      f"{tmp_path}/missing.jpg": f"image not found: {tmp_path}/missing.jpg",
      # A file's path used as a folder: unreadable, even for root.
      f"{paths['notes.jpg']}/x.jpg": f"cannot read image "
                                     f"{paths['notes.jpg']}/x.jpg: Not a "
                                     "directory",
  })
  problems = image_checks.check_images(cases)
  assert set(problems) == set(cases)
  for path, problem in problems.items():
    assert problem.startswith(cases[path]), problem
    assert path in problem and "\n" not in problem
  assert "TIFF is not decoded by TensorFlow: convert it to JPEG, PNG, GIF, " \
         "BMP or WebP" in problems[paths["photo.tiff"]]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_file_without_read_permission_is_named(tmp_path):
  path = tmp_path / "locked.png"
  path.write_bytes(image_samples.good_files()["png_grey.png"][0])
  os.chmod(path, 0)
  assert image_checks.image_problem(str(path)) == (
      f"cannot read image {path}: Permission denied")
