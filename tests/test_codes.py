"""dhe_tf.core.codes: the one home of bits, checked by hand and against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.core import codes as codes_lib
from dhe_tf.core.errors import ConfigError


def test_pack_by_hand():
  # 9 bits: 10110000 -> 176, then 1 followed by seven zero padding bits -> 128.
  packed = codes_lib.pack([[1, 0, 1, 1, 0, 0, 0, 0, 1]])
  np.testing.assert_array_equal(packed, [[176, 128]])
  assert packed.dtype == np.uint8


def test_pack_accepts_bool_and_float():
  codes = np.array([[1, 0, 1], [0, 1, 1]])
  expected = codes_lib.pack(codes)
  np.testing.assert_array_equal(codes_lib.pack(codes.astype(bool)),
                                expected)
  np.testing.assert_array_equal(codes_lib.pack(codes.astype(np.float32)),
                                expected)


@pytest.mark.parametrize("bad", [2, -1, 0.5, np.nan])
def test_pack_rejects_non_binary(bad):
  with pytest.raises(ValueError, match=f"containing {bad!r}"):
    codes_lib.pack(np.array([[0, 1, bad]]))


def test_pack_rejects_wrong_shape():
  with pytest.raises(ValueError, match=r"shape \(3,\)"):
    codes_lib.pack([0, 1, 1])


def test_binarize_puts_one_exactly_at_and_above_one_half():
  np.testing.assert_array_equal(
      codes_lib.binarize([[0.0, 0.4999, 0.5, 0.9]]), [[0, 0, 1, 1]])
  assert codes_lib.binarize([[0.7]]).dtype == np.uint8


@pytest.mark.parametrize("bits", [1, 7, 8, 12, 32, 48, 65])
def test_pack_tensor_unpack_and_strings_agree_with_numpy(bits):
  codes = np.random.default_rng(bits).integers(0, 2, (5, bits), np.uint8)
  packed = codes_lib.pack(codes)
  np.testing.assert_array_equal(packed, np.packbits(codes, axis=1))
  np.testing.assert_array_equal(
      codes_lib.pack_tensor(tf.constant(codes)).numpy(), packed)
  np.testing.assert_array_equal(codes_lib.unpack(packed, bits), codes)
  texts = codes_lib.to_strings(packed, bits)
  assert texts[0] == "".join(map(str, codes[0]))
  np.testing.assert_array_equal(codes_lib.from_strings(texts, bits), packed)


@pytest.mark.parametrize("text, message", [
    ("01a", "string of 0 and 1. Received: code='01a'"),
    ("", "string of 0 and 1"),
    ("0101", "has 4 bits; 3-bit codes"),
])
def test_codes_from_strings_name_the_bad_one(text, message):
  with pytest.raises(ConfigError, match=message):
    codes_lib.from_strings([text], 3)
