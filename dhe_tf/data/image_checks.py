"""Whether an image file can be used, found before training starts.

Checking an image is cheap, so that every image of a list is checked before
training. First its header, never decoding: the format from the first bytes,
the width and height from the header (`read_header`; for a JPEG libjpeg
reads it, tf.image.extract_jpeg_shape, elsewhere a few bytes at known
offsets), so that a format TensorFlow does not decode is named, and an image
too large to decode (a decompression bomb: a small file whose header claims
a huge image) or too small to hash is refused without decoding it. Then a
JPEG must end with the end-of-image marker; other files, and JPEGs that do
not (truncated, or trailing bytes after the end marker), are decoded in full
by the decoder every reader uses (dhe_tf.data.images.decode_native). No more is
read, so large photos are checked as fast as small ones: on 2 cores, about
4,000 JPEGs a second (decoding every image instead: 700 a second of
375 × 500 JPEGs, 14 of 3000 × 4000).

The service checks uploads with the same `read_header`
(dhe_tf.service.uploads), and the Beam encoder the images it reads
(dhe_tf.encoding.inputs).
"""

import concurrent.futures
import dataclasses
import os
import stat

import tensorflow as tf

from dhe_tf.core import checks
from dhe_tf.data import images as images_lib

# What TensorFlow decodes and dhe_tf reads (dhe_tf.data.images.decode).
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WebP")
FORMATS_TEXT = f"{', '.join(FORMATS[:-1])} or {FORMATS[-1]}"
# The most pixels (width × height, × frames for a GIF) decoded: a 50
# megapixel photo is 150 MB of RGB pixels. The service's --max_pixels.
MAX_PIXELS = 50_000_000
# The shortest side accepted: an image smaller than 8 px on a side (a 1 × 1
# tracking pixel, an icon) has nothing to hash; resized to the model's input
# it is a blur of a few values, and its code would say nothing of it.
MIN_SIDE = 8

_CHECK_THREADS = 32
# A JPEG starts with the start-of-image marker and the next marker's 0xFF,
# and ends with the end-of-image marker. Its header (the markers up to the
# frame header) sits in the first bytes unless metadata precedes it, which
# takes up to 64 KiB in an EXIF block.
_JPEG_START = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
_HEAD_BYTES = 64 * 1024
_PNG_START = b"\x89PNG\r\n\x1a\n"
# Image formats TensorFlow does not decode, by their first bytes (HEIC and
# AVIF: an ISO box "ftyp" at byte 4, then the brand), named in the problem.
_OTHER_FORMATS = ((b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
                  (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
                  (b"\xffO\xffQ", "JPEG 2000"), (b"8BPS", "PSD"))
_ISO_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF",
               b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


@dataclasses.dataclass(frozen=True)
class Header:
  """What an image file's header says: format (one of FORMATS), width and
  height in pixels, and frames (a GIF's; TensorFlow decodes every frame,
  though only the first is used)."""
  format: str
  width: int
  height: int
  frames: int = 1

  @property
  def pixels(self):
    return self.width * self.height * self.frames


class ImageError(ValueError):
  """Image bytes that cannot be used, and why.

  `kind` sorts the problems for the service's HTTP status and the Beam
  encoder's counters: "not_an_image", "unsupported_format" (an image
  TensorFlow does not decode), "too_large", "too_small", "corrupt".
  """

  def __init__(self, message, kind):
    super().__init__(message)
    self.kind = kind

  def line(self, path):
    """The problem as one line naming the file."""
    if self.kind in ("not_an_image", "corrupt"):
      return f"cannot decode image {path}: {self}"
    advice = (f": convert it to {FORMATS_TEXT}"
              if self.kind == "unsupported_format" else "")
    return f"cannot use image {path}: {self}{advice}"


def _uint(data, offset, size, byteorder="little", signed=False):
  if len(data) < offset + size:
    raise ImageError("truncated header", "corrupt")
  return int.from_bytes(data[offset:offset + size], byteorder, signed=signed)


def _jpeg_size(data):
  try:
    height, width, _ = tf.image.extract_jpeg_shape(data).numpy()
  except tf.errors.InvalidArgumentError as e:
    raise ImageError(f"corrupt JPEG header ({checks.op_error_text(e)})",
                     "corrupt") from e
  return int(width), int(height)


def _png_size(data):
  if data[12:16] != b"IHDR":
    raise ImageError("corrupt PNG header (no IHDR chunk first)", "corrupt")
  return _uint(data, 16, 4, "big"), _uint(data, 20, 4, "big")


def _gif_frames(data):
  """The image descriptors of a GIF: its blocks walked, their data skipped.
  A walk that breaks off counts what it found; the decoder judges the rest."""
  flags = _uint(data, 10, 1)
  pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
  frames = 0
  while pos < len(data) and data[pos] != 0x3B:  # 0x3B: the trailer.
    if data[pos] == 0x21:  # An extension: label, then data sub-blocks.
      pos += 2
    elif data[pos] == 0x2C and pos + 10 < len(data):  # An image.
      frames += 1
      local = data[pos + 9]
      pos += 11 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
    else:
      break
    while pos < len(data) and data[pos]:  # Sub-blocks, up to a 0 length.
      pos += data[pos] + 1
    pos += 1
  return max(frames, 1)


def _bmp_size(data):
  """Width and height of a BMP TensorFlow decodes right: 8-bit grey, 24-
  or 32-bit colour, uncompressed (it reads any other 8-bit palette as grey
  levels, and fails on 1-, 4- and 16-bit, compressed and OS/2 BMPs)."""
  header_size = _uint(data, 14, 4)
  if header_size == 12:
    raise ImageError("An OS/2 BMP is not decoded by TensorFlow",
                     "unsupported_format")
  width, height = _uint(data, 18, 4), abs(_uint(data, 22, 4, signed=True))
  bits, compression = _uint(data, 28, 2), _uint(data, 30, 4)
  if bits not in (8, 24, 32):
    raise ImageError(f"A {bits}-bit BMP is not decoded by TensorFlow",
                     "unsupported_format")
  if compression not in (0, 3):  # BI_RGB, BI_BITFIELDS.
    raise ImageError("A compressed BMP is not decoded by TensorFlow",
                     "unsupported_format")
  if bits == 8:
    colors = _uint(data, 46, 4) if header_size >= 40 else 0
    start = 14 + header_size
    end = min(start + 4 * (colors or 256), _uint(data, 10, 4))
    if any(data[k:k + 3] != bytes([(k - start) // 4] * 3)
           for k in range(start, end - 2, 4)):
      raise ImageError("A BMP with a colour palette is read as grey levels "
                       "by TensorFlow", "unsupported_format")
  return width, height


def _webp_size(data):
  chunk = data[12:16]
  if chunk == b"VP8X":
    if _uint(data, 20, 1) & 0x02:
      # TensorFlow 2.21 overruns its buffer on animated WebPs without alpha
      # (the process aborts): never hand it one.
      raise ImageError("An animated WebP is not decoded by TensorFlow",
                       "unsupported_format")
    return _uint(data, 24, 3) + 1, _uint(data, 27, 3) + 1
  if chunk == b"VP8L" and data[20:21] == b"\x2f":
    bits = _uint(data, 21, 4)
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
  if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
    return _uint(data, 26, 2) & 0x3FFF, _uint(data, 28, 2) & 0x3FFF
  raise ImageError("corrupt WebP header", "corrupt")


def _other_format(data):
  for start, name in _OTHER_FORMATS:
    if data.startswith(start):
      return name
  if data[4:8] == b"ftyp":
    return _ISO_BRANDS.get(data[8:12])
  return None


def read_header(data, *, max_pixels=MAX_PIXELS):
  """The Header of image bytes, checked, without decoding them.

  Args:
    data: the file's first bytes: 64 KiB hold a JPEG's header unless
      metadata precedes it; a GIF's frames are counted in the bytes given.
    max_pixels: the most pixels (width × height × GIF frames) accepted.

  Raises:
    ImageError: not an image, a format TensorFlow does not decode (named),
      more than max_pixels, a side under MIN_SIDE, or a corrupt header.
  """
  if data.startswith(_JPEG_START):
    kind, (width, height), frames = "JPEG", _jpeg_size(data), 1
  elif data.startswith(_PNG_START):
    kind, (width, height), frames = "PNG", _png_size(data), 1
  elif data[:6] in (b"GIF87a", b"GIF89a"):
    kind, (width, height) = "GIF", (_uint(data, 6, 2), _uint(data, 8, 2))
    frames = _gif_frames(data)
  elif data.startswith(b"BM"):
    kind, (width, height), frames = "BMP", _bmp_size(data), 1
  elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
    kind, (width, height), frames = "WebP", _webp_size(data), 1
  else:
    other = _other_format(data)
    if other:
      raise ImageError(f"{other} is not decoded by TensorFlow",
                       "unsupported_format")
    raise ImageError(f"Unknown image file format. One of {FORMATS_TEXT} "
                     "required", "not_an_image")
  header = Header(kind, width, height, frames)
  size = f"{width:,} × {height:,}" + (f" × {frames} frames" if frames > 1
                                      else "")
  if header.pixels > max_pixels:
    raise ImageError(f"{size} = {header.pixels:,} pixels, over the limit of "
                     f"{max_pixels:,}", "too_large")
  if min(width, height) < MIN_SIDE:
    raise ImageError(f"{size} pixels, under {MIN_SIDE} on a side: too small "
                     "to hash", "too_small")
  return header


def _stat_problem(path):
  """Why `path` is not a regular file that can be opened, or None."""
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError:
    if os.path.islink(path):
      return (f"image path is a broken symbolic link (to "
              f"{os.readlink(path)}): {path}")
    return f"image not found: {path}"
  except OSError as e:
    return f"cannot read image {path}: {e.strerror}"
  if stat.S_ISDIR(mode):
    return f"image path is a directory: {path}"
  if not stat.S_ISREG(mode):
    # Reading a FIFO would wait for a writer: never open one.
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
    return f"image path is {kind}: {path}"
  return None


def _read(path, whole=False):
  """(bytes, whether they are the whole file, whether a JPEG ends with the
  end marker): a JPEG's first 64 KiB, any other file whole (it is decoded
  whole anyway)."""
  with open(path, "rb") as f:
    data = f.read() if whole else f.read(_HEAD_BYTES)
    if not whole and data.startswith(_JPEG_START):
      f.seek(-len(_JPEG_END), os.SEEK_END)
      ends = f.read() == _JPEG_END
      return data, f.tell() <= len(data), ends
    data += f.read()
    return data, True, data.endswith(_JPEG_END)


def image_problem(path, *, max_pixels=MAX_PIXELS):
  """Why the image file at `path` cannot be used (one line naming it), or
  None when it can."""
  problem = _stat_problem(path)
  if problem:
    return problem
  try:
    data, whole, jpeg_ends = _read(path)
    if not data:
      return f"image file is empty: {path}"
    try:
      header = read_header(data, max_pixels=max_pixels)
    except ImageError as e:
      if whole or e.kind != "corrupt":
        raise
      # A JPEG header may go on past the first 64 KiB (large metadata).
      data, whole, jpeg_ends = _read(path, whole=True)
      header = read_header(data, max_pixels=max_pixels)
    if header.format == "JPEG" and jpeg_ends:
      return None
    # No end marker: truncated, or bytes after the end marker (harmless).
    if not whole:
      data, _, _ = _read(path, whole=True)
  except ImageError as e:
    return e.line(path)
  except OSError as e:
    return f"cannot read image {path}: {e.strerror}"
  try:
    # The decoder every reader uses, without its channel conversion (which
    # cannot fail on a decoded image and, eager, costs ~1 ms an image).
    images_lib.decode_native(data)
  except tf.errors.OpError as e:
    return f"cannot decode image {path}: {checks.op_error_text(e)}"
  return None


def check_images(paths, *, max_pixels=MAX_PIXELS):
  """Returns {path: problem} for the unusable files among `paths`."""
  paths = sorted(set(paths))
  with concurrent.futures.ThreadPoolExecutor(_CHECK_THREADS) as pool:
    problems = pool.map(
        lambda path: image_problem(path, max_pixels=max_pixels), paths)
    return {path: problem for path, problem in zip(paths, problems) if problem}
