"""dhe_tf.core.checks: each check once, with the message every caller gives."""

import re

import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.core import checks
from dhe_tf.core import codes as codes_lib
from dhe_tf.core.errors import ConfigError


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_positive_int_returns_the_value_as_an_int(value):
  assert checks.positive_int("k", value) == value
  assert type(checks.positive_int("k", value)) is int


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "4", None])
def test_positive_int_names_the_bad_value(value):
  with pytest.raises(ConfigError, match=re.escape(
      f"k must be a positive integer. Received: k={value!r}")):
    checks.positive_int("k", value)


def test_positive_int_may_allow_none_and_says_so():
  assert checks.positive_int("topk", None, allow_none=True) is None
  with pytest.raises(ConfigError, match=re.escape(
      "topk must be a positive integer or None. Received: topk=0")):
    checks.positive_int("topk", 0, allow_none=True)
  # A ValueError too, as the metrics document it.
  with pytest.raises(ValueError):
    checks.positive_int("topk", 0)


def test_non_negative_int_takes_zero_and_names_the_bad_value():
  assert checks.non_negative_int("radius", 0) == 0
  for value in (-1, 1.0, False):
    with pytest.raises(ConfigError, match=re.escape(
        "radius must be a non-negative integer. Received: "
        f"radius={value!r}")):
      checks.non_negative_int("radius", value)


@pytest.mark.parametrize("bits", [1, 7, 8, 12, 64])
def test_packed_codes_take_what_pack_gives(bits):
  codes = np.random.default_rng(bits).integers(0, 2, (5, bits))
  packed = codes_lib.pack(codes)
  checked = checks.packed_codes(packed[:, ::-1][:, ::-1], bits)
  assert checked.flags.c_contiguous
  np.testing.assert_array_equal(checked, packed)
  assert checks.packed_codes(np.zeros((0, 2), np.uint8), 12).shape == (0, 2)


@pytest.mark.parametrize("packed, message", [
    (np.zeros((1, 3), np.uint8), "queries must be packed 12-bit codes, uint8 "
     "[N, 2]. Received: dtype uint8, shape (1, 3)"),
    (np.zeros((1, 2), np.int64), "queries must be packed 12-bit codes, uint8 "
     "[N, 2]. Received: dtype int64, shape (1, 2)"),
    (np.zeros(2, np.uint8), "queries must be packed 12-bit codes, uint8 "
     "[N, 2]. Received: dtype uint8, shape (2,)"),
    # 12 bits in 2 bytes: the last 4 bits of each code are padding.
    (np.array([[0, 0], [255, 0xF0], [0, 0x01]], np.uint8),
     "queries must be packed 12-bit codes, the last 4 bits of each code zero "
     "(as dhe_tf.core.codes.pack leaves them). Received: queries with "
     "padding bits set in row 2"),
])
def test_packed_codes_name_what_is_wrong(packed, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    checks.packed_codes(packed, 12, "queries")


def test_packed_codes_of_unknown_length_check_the_array_only():
  packed = np.array([[0xFF, 0x0F]], np.uint8)
  np.testing.assert_array_equal(checks.packed_codes(packed, None), packed)
  with pytest.raises(ConfigError, match=re.escape(
      "query_packed must be packed codes, uint8 [N, bytes]. Received: dtype "
      "uint8, shape (3, 0)")):
    checks.packed_codes(np.zeros((3, 0), np.uint8), None, "query_packed")
  with pytest.raises(ConfigError, match="Received: bits=0"):
    checks.packed_codes(packed, 0)


def test_unpack_checks_the_packed_codes():
  with pytest.raises(ConfigError, match="padding bits set in row 0"):
    codes_lib.unpack(np.array([[0, 1]], np.uint8), 12)


_SAME = dict(made="the index at INDEX was built", bits=12,
             fingerprint="a" * 64, model="the model of RUN")


def test_same_model_passes_the_model_that_made_the_codes():
  checks.same_model(**_SAME, model_bits=12, model_fingerprint="a" * 64)


def test_same_model_refuses_another_code_length_first():
  with pytest.raises(ConfigError, match=re.escape(
      "The model of RUN makes 16-bit codes; the index at INDEX was built "
      "with 12 bits: rebuild the index with it.")):
    checks.same_model(**_SAME, model_bits=16, model_fingerprint="b" * 64)


def test_same_model_refuses_another_fingerprint_with_the_remedy():
  with pytest.raises(ConfigError, match=re.escape(
      "The index at INDEX was built by another model (fingerprint "
      "aaaaaaaaaaaa…), not by the model of RUN (fingerprint bbbbbbbbbbbb…): "
      "rebuild the index with it.")):
    checks.same_model(**_SAME, model_bits=12, model_fingerprint="b" * 64)
  with pytest.raises(ConfigError, match=re.escape(
      "The codes at CODES were made by another model (fingerprint "
      "aaaaaaaaaaaa…), not by the model of RUN (fingerprint bbbbbbbbbbbb…): "
      "encode them again with its export.")):
    checks.same_model(made="the codes at CODES were made", bits=12,
                      fingerprint="a" * 64, model="the model of RUN",
                      model_bits=12, model_fingerprint="b" * 64,
                      remedy="encode them again with its export")


def _op_error(function, *args):
  with pytest.raises(tf.errors.OpError) as raised:
    function(*args)
  return raised.value


_UNKNOWN_FORMAT = ("Unknown image file format. One of JPEG, JPEG XL, PNG, "
                   "GIF, BMP, WebP required.")


def test_op_error_text_of_garbage_bytes_is_the_cause_alone():
  error = _op_error(tf.io.decode_image, b"garbage bytes")
  assert "{{function_node" in error.message and "[Op:" in error.message
  assert checks.op_error_text(error) == _UNKNOWN_FORMAT


def test_op_error_text_inside_a_traced_function_drops_the_node_lines():
  decode = tf.function(lambda contents: tf.io.decode_image(contents),
                       input_signature=[tf.TensorSpec([], tf.string)])
  error = _op_error(decode, tf.constant(b"garbage bytes"))
  assert len(error.message.splitlines()) > 1  # The cause, then "[[{{node".
  assert checks.op_error_text(error) == _UNKNOWN_FORMAT


def test_op_error_text_of_a_saved_model_error_is_its_cause():
  # How a SavedModel's signature reports a bad image (dhe_tf.encode).
  message = ("Graph execution error:\n\nDetected at node "
             "DecodeImage defined at (most recent call last):\n"
             "<stack traces unavailable>\n"
             "Invalid PNG. Failed to initialize decoder.\n"
             "\t [[{{node DecodeImage}}]] [Op:__inference_signature_123]")
  error = tf.errors.InvalidArgumentError(None, None, message)
  assert checks.op_error_text(error) == (
      "Invalid PNG. Failed to initialize decoder.")
