"""The layers on top of the hash layer's input that are ours: how features
become codes and codes become class scores (dhe_tf.model.build_model).

- `ClassCodewords`: the code of an image is the codeword of its predicted
  class (the classifier-codes baseline).
- `HammingClassifier`: class scores from the relaxed Hamming distance of the
  code to a learned code per class, so that the classifier ranks classes the
  way Hamming retrieval ranks images.
- `StraightThrough`: the binary code b = [u ≥ ½] in the forward pass with
  the gradient of u, so a classifier can read the codes retrieval uses.
"""

import keras

from dhe_tf.core import codewords as codewords_lib


@keras.saving.register_keras_serializable(package="dhe_tf")
class ClassCodewords(keras.layers.Layer):
  """The K-bit codeword of the predicted class: classifier logits → code.

  The trivial baseline of Sablayrolles et al.: an image's code is the
  codeword of its predicted class argmax(logits). The codewords are CSQ's
  hash centres (dhe_tf.core.codewords.hash_centers: Hadamard rows, or balanced
  random codes) taken from ±1 to 0/1. With multi_label, the predicted
  classes are those with logit ≥ 0 (sigmoid ≥ 0.5), or the top one when
  none is, and the code is the sign of their summed centres, ties from a
  fixed random code: CSQ's target of multi-hot labels (CSQLoss.targets).
  The codewords are non-trainable weights, so a saved model keeps them.

  Args:
    num_classes: C.
    bits: K.
    seed: seed of random codewords. Default 0.
    multi_label: whether several classes may be predicted. Default False.
    **kwargs: forwarded to keras.layers.Layer.

  Input: logits float [B, C]. Output: float32 [B, K] of 0/1.

  Example:
    >>> ClassCodewords(10, 16)(np.eye(10, dtype="float32"))  # the 10 codes

  Reference: A. Sablayrolles, M. Douze, N. Usunier, H. Jégou, "How should
  we evaluate supervised hashing?", ICASSP 2017.
  """

  def __init__(self, num_classes, bits, seed=0, multi_label=False, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes
    self.bits = bits
    self.seed = seed
    self.multi_label = multi_label
    self.codewords = self.add_weight(
        shape=(num_classes, bits), trainable=False, name="codewords",
        initializer=keras.initializers.Constant(
            codewords_lib.hash_centers(num_classes, bits, seed)))
    self.tie_codeword = self.add_weight(
        shape=(bits,), trainable=False, name="tie_codeword",
        initializer=keras.initializers.Constant(
            codewords_lib.tie_center(bits, seed)))

  def call(self, logits):
    logits = keras.ops.cast(logits, "float32")
    predicted = keras.ops.one_hot(keras.ops.argmax(logits, axis=-1),
                                  self.num_classes)
    if self.multi_label:
      predicted = keras.ops.maximum(
          predicted, keras.ops.cast(logits >= 0.0, "float32"))
    total = keras.ops.matmul(predicted, self.codewords)
    total = keras.ops.where(keras.ops.equal(total, 0.0),
                            self.tie_codeword[None, :], total)
    return (keras.ops.sign(total) + 1.0) / 2.0

  def get_config(self):
    config = super().get_config()
    config.update(num_classes=self.num_classes, bits=self.bits,
                  seed=self.seed, multi_label=self.multi_label)
    return config


@keras.saving.register_keras_serializable(package="dhe_tf")
class HammingClassifier(keras.layers.Layer):
  """Class scores from the Hamming distance to a learned code per class.

      m_c = σ(v_c) ∈ (0, 1)^K        (v: trainable [C, K])
      d̂(u, m_c) = Σ_k u_k (1 − m_ck) + m_ck (1 − u_k)
      logits_c = b_c − β · d̂(u, m_c)

  d̂ is the expected Hamming distance between codes drawn bit by bit with
  probabilities u and m_c; for binary u and m_c it is their Hamming distance.
  A dense classifier (logits = W u + b, the paper's) may weigh bits
  unequally, so its confidence need not follow Hamming distance; here every
  bit of a saturated class code moves a logit by exactly β, so the softmax
  p(c | u) ∝ exp(b_c − β d̂(u, m_c)) orders classes by Hamming distance to
  their codes, and cross-entropy places an image the network is unsure of
  between the codes of the classes it hesitates between rather than on one
  of them. The class codes are learned (initial v ~ N(0, 1)), so classes
  that look alike may get near codes. The bias b (initially 0) is a class
  prior under softmax, the decision threshold under sigmoid (multi-label).

  Args:
    num_classes: C.
    scale: β > 0, logits per bit of distance (the softmax's inverse
      temperature).
    **kwargs: forwarded to keras.layers.Layer.

  Input: u float [B, K] in [0, 1]. Output: logits float32 [B, C].
  """

  def __init__(self, num_classes, scale, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes
    self.scale = float(scale)

  def build(self, input_shape):
    self.class_logits = self.add_weight(
        shape=(self.num_classes, input_shape[-1]), name="class_logits",
        initializer=keras.initializers.RandomNormal(stddev=1.0))
    self.bias = self.add_weight(shape=(self.num_classes,), name="bias",
                                initializer="zeros")

  def class_codes(self):
    """m: float [C, K], each class's code in (0, 1)^K."""
    return keras.ops.sigmoid(self.class_logits)

  def call(self, u):
    u = keras.ops.cast(u, "float32")
    m = self.class_codes()
    # Σ_k u_k + m_ck − 2 u_k m_ck, for every image and class.
    distance = (keras.ops.sum(u, axis=-1, keepdims=True) +
                keras.ops.sum(m, axis=-1)[None, :] -
                2.0 * keras.ops.matmul(u, keras.ops.transpose(m)))
    return self.bias[None, :] - self.scale * distance

  def get_config(self):
    config = super().get_config()
    config.update(num_classes=self.num_classes, scale=self.scale)
    return config


@keras.saving.register_keras_serializable(package="dhe_tf")
class StraightThrough(keras.layers.Layer):
  """b = [u ≥ ½] forward, ∂b/∂u = 1 backward (a straight-through estimator).

  A classifier on u can be sure of an image whose u is near ½ on a few
  bits, and binarising then moves the image to a code it was never scored
  on. A classifier on b sees the codes retrieval sees, so to hedge between
  two classes the network must flip bits — its uncertainty stays in the
  Hamming distance. The gradient passes to u unchanged, as in GreedyHash
  (Su et al., NeurIPS 2018).

  Input: u float [B, K] in [0, 1]. Output: float32 [B, K] of 0/1.
  """

  def call(self, u):
    u = keras.ops.cast(u, "float32")
    binary = keras.ops.cast(u >= 0.5, "float32")
    return u + keras.ops.stop_gradient(binary - u)
