"""Binary codes: from activations to bits, bits to bytes, strings to bits.

The one home of every convention about bits, shared by evaluation, the
exported SavedModel, the index and search:

- A bit is 1 where the hash layer's sigmoid activation is ≥ 0.5 (`binarize`).
- K bits are packed into ceil(K / 8) bytes as `np.packbits(bits, axis=1)`
  packs them: the first bit is the most significant bit of the first byte,
  and a K that is not a multiple of 8 is padded with zero bits at the end,
  the same for every code, so the padding never adds to a Hamming distance.
  `pack` does it in NumPy, `pack_tensor` in the TensorFlow graph of the
  SavedModel; the two agree bit for bit.
- A code written as text is a string of K characters "0" or "1", first bit
  first (`from_strings`, `to_strings`).
"""

import numpy as np
import tensorflow as tf

from dhe_tf.core import checks
from dhe_tf.core.errors import ConfigError

THRESHOLD = 0.5


def binarize(activations):
  """Codes uint8 [N, K] of 0/1 from activations [N, K]: 1 where u ≥ 0.5."""
  return (np.asarray(activations) >= THRESHOLD).astype(np.uint8)


def num_bytes(bits):
  """Bytes of one packed K-bit code: ceil(K / 8)."""
  return (bits + 7) // 8


def check_bits(codes, name="codes"):
  """Returns `codes` as uint8 [N, K] after checking they are non-empty 2-D 0/1.

  Raises:
    ValueError: a codes array that is empty, not 2-D, or holds values other
      than 0 and 1 (codes of ±1 are refused, not guessed at: pass codes > 0).
  """
  codes = np.asarray(codes)
  if codes.ndim != 2 or 0 in codes.shape:
    raise ValueError(
        f"{name} must be a non-empty 2-D array [num_items, bits]. "
        f"Received: {name} with shape {codes.shape}")
  is_binary = (codes == 0) | (codes == 1)
  if not np.all(is_binary):
    bad = codes[~is_binary][0].item()
    raise ValueError(
        f"{name} must contain only 0 and 1 (for codes in {{-1, 1}} pass "
        f"`codes > 0`). Received: {name} containing {bad!r}")
  return codes.astype(np.uint8)


def pack(codes):
  """Packed uint8 [N, ceil(K / 8)] from 0/1 codes [N, K] (module docstring)."""
  return np.packbits(check_bits(codes), axis=1)


def unpack(packed, bits):
  """0/1 codes uint8 [N, K] from packed uint8 [N, ceil(K / 8)] (checked by
  dhe_tf.core.checks.packed_codes)."""
  packed = checks.packed_codes(packed, bits)
  return np.unpackbits(packed, axis=1, count=bits)


def pack_tensor(bits):
  """`pack` in the TensorFlow graph: uint8 [N, ceil(K/8)] from 0/1 [N, K]."""
  num_bits = bits.shape[-1]
  padded = tf.pad(tf.cast(bits, tf.int32), [[0, 0], [0, -num_bits % 8]])
  groups = tf.reshape(padded, [-1, num_bytes(num_bits), 8])
  weights = tf.constant([128, 64, 32, 16, 8, 4, 2, 1], tf.int32)
  return tf.cast(tf.reduce_sum(groups * weights, axis=-1), tf.uint8)


def from_strings(texts, bits):
  """Packed uint8 [Q, ceil(K/8)] from strings of K characters 0 or 1.

  Raises:
    ConfigError: a string that is not K binary digits, naming it.
  """
  rows = []
  for text in texts:
    if not text or set(text) - {"0", "1"}:
      raise ConfigError(f"A code must be a string of 0 and 1. "
                        f"Received: code={text!r}")
    if len(text) != bits:
      raise ConfigError(f"Code {text!r} has {len(text)} bits; {bits}-bit "
                        "codes are expected.")
    rows.append([int(c) for c in text])
  return pack(np.array(rows, np.uint8).reshape(len(rows), bits))


def to_strings(packed, bits):
  """Strings of K characters 0 or 1, one per packed code [N, ceil(K/8)]."""
  return ["".join(map(str, row)) for row in unpack(packed, bits)]
