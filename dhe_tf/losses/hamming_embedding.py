"""The Hamming embedding loss of DHE, and the pairwise quantities it is made of.

With sigmoid activations u ∈ (0, 1)^K of the hash layer, the relaxed Hamming
distance

    d(u_i, u_j) = Σ_k [u_ik (1 − u_jk) + (1 − u_ik) u_jk]
                = Σ_k u_ik + Σ_k u_jk − 2 u_i·u_j

is the expected number of differing bits when bit k of image i is drawn as 1
with probability u_ik, and equals the true Hamming distance when u is binary.
Training on d therefore optimises the very distance used for retrieval.
"""

import keras
import numpy as np
from keras import ops

from dhe_tf.core import codewords as codewords_lib
from dhe_tf.losses.pairs import codeword_distance
from dhe_tf.losses.pairs import masked_mean
from dhe_tf.losses.pairs import multi_hot
from dhe_tf.losses.pairs import pair_masks
from dhe_tf.losses.pairs import relaxed_hamming_distance
from dhe_tf.losses.pairs import squared_distance


DISTANCES = {"expected": relaxed_hamming_distance, "squared": squared_distance}
CODEWORD_LOSSES = ("hinge", "softmax")


def hamming_embedding_loss(labels, u, *, margin=0.6, similar_weight=0.25,
                           dissimilar_weight=1.0, quantization_weight=0.1,
                           distance="expected", codewords=None,
                           codeword_weight=0.0, codeword_radius=0.0,
                           codeword_loss="hinge", codeword_scale=16.0,
                           codeword_margin=0.1):
  """The DHE loss of one batch; see HammingEmbeddingLoss for the formula.

  Args:
    labels: class ids [N] / [N, 1], or one-hot / multi-hot [N, C].
    u: float [N, K], sigmoid activations of the hash layer.
    margin, similar_weight, dissimilar_weight, quantization_weight,
      distance, codeword_weight, codeword_radius, codeword_loss,
      codeword_scale, codeword_margin: as in HammingEmbeddingLoss.
    codewords: float [C, K] of 0/1, the class codewords; needed when
      codeword_weight > 0.

  Returns:
    float scalar.
  """
  u = ops.convert_to_tensor(u)
  n = ops.shape(u)[0]
  bits = ops.cast(ops.shape(u)[1], u.dtype)
  s, dissimilar = pair_masks(labels, n, u.dtype)
  distance = DISTANCES[distance](u) / bits
  pull = masked_mean(distance, s)
  push = masked_mean(ops.relu(margin - distance), dissimilar)
  quantization = ops.mean(4.0 * u * (1.0 - u))
  loss = (similar_weight * pull + dissimilar_weight * push +
          quantization_weight * quantization)
  if codeword_weight:
    w = np.asarray(codewords, np.float32)
    separation = codewords_lib.minimum_distance(2 * w - 1) / w.shape[1]
    y = ops.cast(multi_hot(labels, w.shape[0]), u.dtype)
    share = y / ops.maximum(ops.sum(y, axis=1, keepdims=True), 1.0)
    to_codeword = codeword_distance(u, w) / bits
    if codeword_loss == "softmax":
      logits = -codeword_scale * (to_codeword + codeword_margin * y)
      term = -ops.mean(ops.sum(share * ops.log_softmax(logits, axis=1),
                               axis=1))
    else:
      own = ops.sum(share * ops.relu(to_codeword - codeword_radius), axis=1)
      term = ops.mean(own) + masked_mean(ops.relu(separation - to_codeword),
                                         1.0 - y)
    loss += codeword_weight * term
  return loss


@keras.saving.register_keras_serializable(package="dhe_tf")
class HammingEmbeddingLoss(keras.losses.Loss):
  """Hamming embedding loss: label similarity preserved in Hamming space.

  For a batch of N images with hash-layer activations u ∈ (0, 1)^{N×K}, let
  d_ij be the relaxed Hamming distance (module docstring), d̂_ij = d_ij / K its
  fraction of the code length, S the ordered pairs i ≠ j that share at least
  one label and D the other pairs i ≠ j. Then

      L = α · mean_{(i,j)∈S} d̂_ij
        + β · mean_{(i,j)∈D} max(0, m − d̂_ij)
        + λ · mean_{i,k} 4 u_ik (1 − u_ik)
        + γ · [mean_i Σ_{c∈Y_i} max(0, ê_ic − r) / |Y_i|
               + mean_{i, c∉Y_i} max(0, δ − ê_ic)]            (hinge)
    or  + γ · mean_i Σ_{c∈Y_i} −log softmax_c(−s (ê_i + μ y_i)) / |Y_i|
                                                              (softmax)

  The first term pulls similar pairs together, the second pushes dissimilar
  pairs at least m·K bits apart, the third drives activations to 0 or 1 so
  thresholding at 0.5 loses little (it is 1 at u = 0.5 and 0 at u ∈ {0, 1}).
  S and D are averaged separately, so their balance is set by α and β, not
  by the share of similar pairs in a batch.

  The fourth term (off by default, γ = 0) is a Hamming embedding of the
  classes themselves: each class c has a fixed codeword w_c ∈ {0, 1}^K
  (dhe_tf.core.codewords.max_distance_codewords: for 10 classes in 12 bits, any
  two are 6 bits apart, the most any code allows), ê_ic =
  codeword_distance(u_i, w_c) / K, Y_i the labels of image i, and δ = d_min /
  K the codewords' own separation. It pulls each image to within r·K bits
  of its class's codeword, where d(u, w) is 0 at u = w (unlike d(u_i, u_j),
  which is 2Σu(1 − u) for u_i = u_j), and keeps it at least as far from the
  other codewords as they are from each other. The softmax form asks
  instead that the own codeword be nearer than every other by μ·K bits,
  with a cross-entropy whose gradient does not vanish once the hinge is
  met (CosFace's additive margin, on distances in bits).

  The margin is a fraction of K so
  that one value serves every code length. The loss is computed over all
  pairs of the batch it is given. Under tf.distribute that is one replica's
  share of the global batch (global batch / replicas images; no pair spans
  two replicas), and the gradient applied is the mean over replicas of the
  gradients of their losses.

  Why these defaults: at initialisation every u is near 0.5, where the
  relaxed distance of any pair is K/2. A margin of 0.5 would leave the push
  idle at the start while the pull already saturates codes together, and
  sigmoids that saturate early stop learning with several classes merged
  into one code. A margin above 0.5 and a pull weaker than the push avoid
  that (measured on a validation split of the embedded Fashion-MNIST data;
  docs/training.md, "Methods").

  Args:
    margin: m, the fraction of bits that dissimilar pairs should differ in.
      Default 0.6.
    similar_weight: α, weight of the pull on similar pairs. Default 0.25.
    dissimilar_weight: β, weight of the push on dissimilar pairs. Default 1.0.
    quantization_weight: λ, weight of the quantization term. Default 0.1.
    distance: the relaxed distance d: "expected" (module docstring) or
      "squared" (‖u_i − u_j‖², `squared_distance`). Default "expected".
    codeword_weight: γ, weight of the class-codeword term. Default 0 (off).
    codeword_radius: r, the fraction of the bits an image may differ from
      its class's codeword in before it is pulled. Default 0.
    codeword_loss: "hinge" or "softmax", the form of that term. Default
      "hinge".
    codeword_scale: s of the softmax form. Default 16.
    codeword_margin: μ of the softmax form, a fraction of the bits.
      Default 0.1.
    num_classes, bits: C and K, set by the run (dhe_tf.training.methods); needed
      when codeword_weight > 0.
    seed: seed of the codewords' choice. Default 0.
    name: name of the loss. Default "hamming_embedding_loss".
    **kwargs: forwarded to keras.losses.Loss (reduction, dtype).

  `y_true` holds labels: class ids [N] / [N, 1] or one-hot / multi-hot
  [N, C]; `y_pred` the activations [N, K]. The result is one scalar per batch.

  Example:

  >>> loss = HammingEmbeddingLoss()
  >>> labels = [[1., 0.], [1., 0.], [0., 1.]]
  >>> codes = [[1., 1.], [1., 1.], [0., 0.]]
  >>> float(loss(labels, codes))  # similar pairs equal, dissimilar 2 of 2 bits apart
  0.0

  Reference: "Deep Hamming Embedding Based Hashing for Image Retrieval",
  Pattern Recognition and Artificial Intelligence (模式识别与人工智能);
  it extends DLBHC (Lin et al., "Deep learning of binary hash codes for fast
  image retrieval", CVPRW 2015) with a loss defined in Hamming space.
  """

  def __init__(self, margin=0.6, similar_weight=0.25, dissimilar_weight=1.0,
               quantization_weight=0.1, distance="expected",
               codeword_weight=0.0, codeword_radius=0.0,
               codeword_loss="hinge", codeword_scale=16.0, codeword_margin=0.1,
               num_classes=None, bits=None, seed=0,
               name="hamming_embedding_loss", **kwargs):
    super().__init__(name=name, **kwargs)
    if distance not in DISTANCES:
      raise ValueError(f"Unknown distance {distance!r}. Available: "
                       f"{', '.join(DISTANCES)}")
    if not 0 < margin <= 1:
      raise ValueError("margin is a fraction of the bits, in (0, 1]. "
                       f"Received: margin={margin}")
    if codeword_weight and not (num_classes and bits):
      raise ValueError("codeword_weight > 0 needs num_classes and bits. "
                       f"Received: num_classes={num_classes}, bits={bits}")
    if not 0 <= codeword_radius < 1:
      raise ValueError("codeword_radius is a fraction of the bits, in "
                       f"[0, 1). Received: codeword_radius={codeword_radius}")
    if codeword_loss not in CODEWORD_LOSSES:
      raise ValueError(f"Unknown codeword_loss {codeword_loss!r}. Available: "
                       f"{', '.join(CODEWORD_LOSSES)}")
    self.codeword_loss = codeword_loss
    self.codeword_scale = codeword_scale
    self.codeword_margin = codeword_margin
    self.distance = distance
    self.margin = margin
    self.codeword_weight = codeword_weight
    self.codeword_radius = codeword_radius
    self.num_classes = num_classes
    self.bits = bits
    self.seed = seed
    self.codewords = None
    if codeword_weight:
      self.codewords = (codewords_lib.max_distance_codewords(
          num_classes, bits, seed) + 1.0) / 2.0
    self.similar_weight = similar_weight
    self.dissimilar_weight = dissimilar_weight
    self.quantization_weight = quantization_weight

  def call(self, y_true, y_pred):
    return hamming_embedding_loss(
        y_true, y_pred, margin=self.margin, similar_weight=self.similar_weight,
        dissimilar_weight=self.dissimilar_weight,
        quantization_weight=self.quantization_weight, distance=self.distance,
        codewords=self.codewords, codeword_weight=self.codeword_weight,
        codeword_radius=self.codeword_radius,
        codeword_loss=self.codeword_loss, codeword_scale=self.codeword_scale,
        codeword_margin=self.codeword_margin)

  def get_config(self):
    config = super().get_config()
    config.update(margin=self.margin, similar_weight=self.similar_weight,
                  dissimilar_weight=self.dissimilar_weight,
                  quantization_weight=self.quantization_weight,
                  distance=self.distance, codeword_weight=self.codeword_weight,
                  codeword_radius=self.codeword_radius,
                  codeword_loss=self.codeword_loss,
                  codeword_scale=self.codeword_scale,
                  codeword_margin=self.codeword_margin,
                  num_classes=self.num_classes, bits=self.bits,
                  seed=self.seed)
    return config


@keras.saving.register_keras_serializable(package="dhe_tf")
class WarmedUpLoss(keras.losses.Loss):
  """A loss whose weight grows from 0 to 1 over the first steps of training.

      L_t = min(1, t / T) · L(y_true, y_pred)

  for training step t and warm-up length T steps (set before each step by
dhe_tf.training.callbacks.LossWarmup).
  Used for DHE's Hamming embedding loss: while the codes are still random,
  pulling similar images together saturates their sigmoids early, merging
  classes before the features separate them; during the warm-up the
  classification loss shapes the features first.

  Args:
    loss: the wrapped keras.losses.Loss.
  """

  def __init__(self, loss, name=None, **kwargs):
    if isinstance(loss, dict):
      loss = keras.losses.deserialize(loss)
    super().__init__(name=name or loss.name, **kwargs)
    self.loss = loss
    self.scale = keras.Variable(0.0, trainable=False, dtype="float32",
                                name="warmup_scale")

  def call(self, y_true, y_pred):
    return ops.convert_to_tensor(self.scale) * self.loss.call(y_true, y_pred)

  def get_config(self):
    config = super().get_config()
    config.update(loss=keras.losses.serialize(self.loss))
    return config
