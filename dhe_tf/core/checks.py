"""The one home of each input check that more than one module makes.

    positive_int, non_negative_int  "k must be a positive integer.
                                    Received: k=0"
    packed_codes   uint8 [N, ceil(K / 8)], the padding bits zero
                   (dhe_tf.core.codes packs them so)
    same_model     a model's bits and fingerprint against those recorded with
                   codes (an index, code shards): "rebuild" when they differ
    op_error_text  a TensorFlow op error's cause in one line

Each raises ConfigError (a ValueError) with a message that names the input
and echoes the bad value, so every caller reports a bad value alike.
"""

import numbers
import re

import numpy as np

from dhe_tf.core.errors import ConfigError

# Lines of an op error's message that are not its cause: the frame of an
# error raised in a traced function or a SavedModel, and its indented stack.
_NOT_THE_CAUSE = ("Graph execution error", "Detected at node",
                  "<stack traces", " ", "\t")
# "{{function_node ...}}" and the trailing "[Op:...]" (and what follows it).
_OP_NAMES = re.compile(r"\{\{[^}]*\}\}\s*|\s*\[Op:.*$")


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _integer(name, value, minimum, kind, allow_none):
  if value is None and allow_none:
    return None
  if not _is_int(value) or value < minimum:
    raise ConfigError(f"{name} must be a {kind} integer"
                      f"{' or None' if allow_none else ''}. "
                      f"Received: {name}={value!r}")
  return int(value)


def positive_int(name, value, *, allow_none=False):
  """Returns `value` as an int ≥ 1 (or None when allowed).

  Raises:
    ConfigError: a bool, a non-integer or a value below 1, e.g.
      "k must be a positive integer. Received: k=0".
  """
  return _integer(name, value, 1, "positive", allow_none)


def non_negative_int(name, value, *, allow_none=False):
  """Returns `value` as an int ≥ 0 (or None when allowed); as positive_int."""
  return _integer(name, value, 0, "non-negative", allow_none)


def packed_codes(packed, bits, what="codes"):
  """Returns `packed` as contiguous uint8 [N, ceil(K / 8)], K = `bits`.

  The codes are packed as dhe_tf.core.codes.pack packs them: a K that is not
  a multiple of 8 leaves 8·ceil(K/8) − K padding bits at the end of each
  code, and they must be zero, or they would add to Hamming distances.
  With `bits` None, K is not known: any width of at least one byte is taken
  and the padding is not checked (dhe_tf.evaluation.metrics compares two
  such arrays with each other).

  Raises:
    ConfigError: another dtype, rank or width, or a padding bit set; the
      message names `what`.
  """
  packed = np.asarray(packed)
  if bits is None:
    if packed.ndim != 2 or packed.dtype != np.uint8 or not packed.shape[1]:
      raise ConfigError(
          f"{what} must be packed codes, uint8 [N, bytes]. Received: dtype "
          f"{packed.dtype}, shape {packed.shape}")
    return np.ascontiguousarray(packed)
  positive_int("bits", bits)
  width = (bits + 7) // 8  # ceil(K / 8): dhe_tf.core.codes.num_bytes.
  if packed.ndim != 2 or packed.dtype != np.uint8 or packed.shape[1] != width:
    raise ConfigError(
        f"{what} must be packed {bits}-bit codes, uint8 [N, {width}]. "
        f"Received: dtype {packed.dtype}, shape {packed.shape}")
  padding = 8 * width - bits
  if padding and len(packed):
    set_bits = packed[:, -1] & np.uint8((1 << padding) - 1)
    if set_bits.any():
      row = int(np.flatnonzero(set_bits)[0])
      raise ConfigError(
          f"{what} must be packed {bits}-bit codes, the last {padding} bits "
          f"of each code zero (as dhe_tf.core.codes.pack leaves them). "
          f"Received: {what} with padding bits set in row {row}")
  return np.ascontiguousarray(packed)


def same_model(*, made, bits, fingerprint, model, model_bits,
               model_fingerprint, remedy="rebuild the index with it"):
  """Raises ConfigError unless `model` made the codes that `made` names.

  Codes record the bits and fingerprint of the model that made them
  (dhe_tf.model.inference.model_fingerprint): an index in index.json, code
  shards in manifest.json. Codes of another model would be searched without
  an error and give meaningless neighbors.

  Args:
    made: the codes, as the subject of the message: "the index at PATH was
      built", "the codes at PATH were made".
    bits, fingerprint: those recorded with the codes.
    model: the model, as the message names it: "the model of RUN".
    model_bits, model_fingerprint: the model's.
    remedy: what to do, the end of the message.

  Raises:
    ConfigError: "The model of RUN makes 16-bit codes; the index at INDEX
      was built with 12 bits: rebuild the index with it.", or "The index
      at INDEX was built by another model (fingerprint 0123456789ab…), not by the
      model of RUN (fingerprint …): rebuild the index with it."
  """
  if bits != model_bits:
    raise ConfigError(f"{model[:1].upper()}{model[1:]} makes {model_bits}-bit "
                      f"codes; {made} with {bits} bits: {remedy}.")
  if fingerprint != model_fingerprint:
    raise ConfigError(
        f"{made[:1].upper()}{made[1:]} by another model (fingerprint "
        f"{fingerprint[:12]}…), not by {model} (fingerprint "
        f"{model_fingerprint[:12]}…): {remedy}.")


def op_error_text(error):
  """The cause of a tf.errors.OpError in one line, e.g. "Unknown image file
  format. One of JPEG, ... required.".

  Drops the names of functions and ops ("{{function_node ...}}",
  "[Op:...]"), and for an error raised in a traced function or a
  SavedModel ("Graph execution error: Detected at node ...", a stack) the
  lines that are not its cause.
  """
  message = error.message
  lines = [line for line in message.splitlines()
           if line.strip() and not line.startswith(_NOT_THE_CAUSE)]
  return _OP_NAMES.sub("", (lines or [message])[0]).strip()
