"""Image files of every format and mode dhe_tf reads, made with Pillow, and of
formats it refuses; shared by the tests of the decoder, the checks, the
export, the service, the search CLI and the Beam encoder.

Pictures are embedded Fashion-MNIST images (grey, 28 × 28) so that a small
run's codes differ between them; colour ones stack three of them as R, G, B.
"""

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

from dhe_tf.data import datasets


def _save(image, image_format, **kwargs):
  out = io.BytesIO()
  image.save(out, format=image_format, **kwargs)
  return out.getvalue()


def pictures(seed=0):
  """(grey uint8 [28, 28], colour uint8 [28, 36, 3]) embedded images; the
  colour one is wider than the model's input, so it is cropped and
  resized."""
  images, _ = datasets.load_embedded_arrays()
  rng = np.random.default_rng(seed)
  picks = rng.choice(len(images), 4, replace=False)
  grey = images[picks[0], ..., 0]
  colour = np.concatenate([images[i] for i in picks[1:]], axis=-1)
  colour = np.concatenate([colour, colour[:, :8]], axis=1)
  return grey, colour


def good_files(seed=0):
  """{file name: (bytes, grey pixels uint8 [H, W] the file holds exactly
  when it is a lossless grey file, else None, colour pixels uint8 [H, W, 3]
  it holds exactly when it is a lossless colour file, else None)}."""
  grey, colour = pictures(seed)
  grey_image, colour_image = Image.fromarray(grey), Image.fromarray(colour)
  alpha = Image.fromarray(255 - grey)
  palette = colour_image.convert("P")
  second = Image.fromarray(255 - grey)
  rgba = Image.merge("RGBA", (*Image.fromarray(colour[:, :28]).split(),
                              alpha))
  as_rgb = lambda image: np.asarray(image.convert("RGB"))
  return {
      "jpeg_grey.jpg": (_save(grey_image, "JPEG", quality=95), None, None),
      "jpeg_rgb.jpg": (_save(colour_image, "JPEG", quality=95), None, None),
      "jpeg_cmyk.jpg": (_save(colour_image.convert("CMYK"), "JPEG",
                              quality=95), None, None),
      "png_grey.png": (_save(grey_image, "PNG"), grey, None),
      "png_rgb.png": (_save(colour_image, "PNG"), None, colour),
      "png_rgba.png": (_save(rgba, "PNG"), None, colour[:, :28]),
      "png_palette.png": (_save(palette, "PNG"), None, as_rgb(palette)),
      "png_grey_alpha.png": (_save(Image.merge("LA", (grey_image, alpha)),
                                   "PNG"), grey, None),
      "png_grey16.png": (_save(Image.fromarray(
          grey.astype(np.uint16) * 257), "PNG"), grey, None),
      "gif_palette.gif": (_save(palette, "GIF"), None, as_rgb(palette)),
      "gif_animated.gif": (_save(grey_image, "GIF", save_all=True,
                                 append_images=[second]), grey, None),
      "bmp_grey.bmp": (_save(grey_image, "BMP"), grey, None),
      "bmp_rgb.bmp": (_save(colour_image, "BMP"), None, colour),
      "webp_rgb.webp": (_save(colour_image, "WEBP", lossless=True), None,
                        colour),
      "webp_rgba.webp": (_save(rgba, "WEBP", lossless=True, exact=True),
                         None, colour[:, :28]),
  }


def refused_files(seed=0):
  """{file name: (bytes, what the refusal names)}: images TensorFlow does
  not decode (or, for the animated WebP, crashes on)."""
  grey, colour = pictures(seed)
  colour_image = Image.fromarray(colour)
  return {
      "photo.tiff": (_save(colour_image, "TIFF"), "TIFF is not decoded"),
      "animated.webp": (_save(colour_image, "WEBP", save_all=True,
                              append_images=[Image.fromarray(255 - colour)]),
                        "An animated WebP is not decoded"),
      "palette.bmp": (_save(colour_image.convert("P"), "BMP"),
                      "A BMP with a colour palette"),
      "bilevel.bmp": (_save(Image.fromarray(grey).convert("1"), "BMP"),
                      "A 1-bit BMP is not decoded"),
  }


def write(directory, files):
  """Writes {name: (bytes, ...)} into `directory`; returns {name: path}."""
  paths = {}
  for name, (data, *_) in files.items():
    paths[name] = os.path.join(directory, name)
    with open(paths[name], "wb") as f:
      f.write(data)
  return paths


def png_header(width, height):
  """A small PNG whose header claims width × height grey pixels (its data is
  a few zero rows: only a header check, never a decode, sees the size)."""
  def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body +
            struct.pack(">I", zlib.crc32(kind + body)))
  return (b"\x89PNG\r\n\x1a\n" +
          chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0,
                                     0)) +
          chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
