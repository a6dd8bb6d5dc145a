"""Baseline deep hashing losses, on the same sigmoid hash layer as DHE.

Every loss takes `y_true` = labels (one-hot / multi-hot [N, C], or class ids
[N] / [N, 1] where the method allows) and `y_pred` = u ∈ (0, 1)^{N×K}, the
hash layer's sigmoid activations, and returns one scalar per batch. Methods
defined on codes in (−1, 1) use v = 2u − 1 (= tanh(z/2) for the layer's
pre-activation z), so the bit of image i is still [u_ik ≥ 0.5] = [v_ik ≥ 0].

Pairwise losses are computed over the ordered pairs i ≠ j of the batch they
are given (under tf.distribute: of each replica's batch); the original DPSH
and HashNet code pair a batch with stored codes of the whole training set,
an optimisation of the same objective that we leave out for one training
loop shared by all methods. s_ij = 1 when images i and j share a label.

DLBHC (Lin et al., CVPRW 2015) and the classifier codes of Sablayrolles et
al. (ICASSP 2017) have no hash loss: they train by classification alone (see
dhe_tf.training.methods), so they are not in this module.
"""

import keras
import numpy as np
from keras import ops

from dhe_tf.core.codewords import hash_centers
from dhe_tf.core.codewords import tie_center
from dhe_tf.losses.pairs import masked_mean
from dhe_tf.losses.pairs import multi_hot
from dhe_tf.losses.pairs import pair_masks
from dhe_tf.losses.pairs import squared_distance

_EPSILON = 1e-6


def _signed(u):
  # v = 2u − 1 ∈ (−1, 1): the code of methods defined on tanh outputs.
  return 2.0 * ops.convert_to_tensor(u) - 1.0


def _pair_likelihood_loss(theta, s):
  # −log p(s | θ) with p(s=1) = σ(θ): log(1 + e^θ) − s·θ, stably.
  return ops.softplus(theta) - s * theta


class _BatchLoss(keras.losses.Loss):
  # A loss of a whole batch (pairs, centres), not a mean of per-image terms.

  def call(self, y_true, y_pred):
    return self.batch_loss(y_true, ops.cast(y_pred, "float32"))

  def get_config(self):
    config = super().get_config()
    config.update(self.params())
    return config


@keras.saving.register_keras_serializable(package="dhe_tf")
class DPSHLoss(_BatchLoss):
  """DPSH: pairwise likelihood plus quantization (Li et al., IJCAI 2016).

  With v = 2u − 1 and θ_ij = ½ v_i·v_j,

      L = mean_{i≠j} [log(1 + e^{θ_ij}) − s_ij θ_ij]
        + η · mean_{i,k} (v_ik − sign(v_ik))²

  The first term is the negative log-likelihood of the pair labels when
  p(s_ij = 1) = σ(θ_ij); the second pulls the relaxed codes to ±1. Reference:
  W.-J. Li, S. Wang, W.-C. Kang, "Feature Learning Based Deep Supervised
  Hashing with Pairwise Labels", IJCAI 2016 (η = 0.1 in the authors' code).
  Multi-label data: s_ij = 1 when i and j share a label, as in the paper.

  Args:
    quantization_weight: η. Default 0.1.
  """

  def __init__(self, quantization_weight=0.1, name="dpsh_loss", **kwargs):
    super().__init__(name=name, **kwargs)
    self.quantization_weight = quantization_weight

  def params(self):
    return dict(quantization_weight=self.quantization_weight)

  def batch_loss(self, labels, u):
    v = _signed(u)
    n = ops.shape(v)[0]
    s, dissimilar = pair_masks(labels, n, v.dtype)
    theta = 0.5 * ops.matmul(v, ops.transpose(v))
    likelihood = masked_mean(_pair_likelihood_loss(theta, s), s + dissimilar)
    quantization = ops.mean(ops.square(v - ops.sign(v)))
    return likelihood + self.quantization_weight * quantization


@keras.saving.register_keras_serializable(package="dhe_tf")
class DSHLoss(_BatchLoss):
  """DSH: contrastive loss with a margin, plus a ±1 regulariser.

  With v = 2u − 1, D_ij = ‖v_i − v_j‖² and margin m = margin · K,

      L = mean_{i≠j} [½ s_ij D_ij + ½ (1 − s_ij) max(0, m − D_ij)]
        + α · mean_i Σ_k | |v_ik| − 1 |

  Similar pairs are pulled together, dissimilar ones pushed beyond m; the
  regulariser drives each output to ±1. Reference: H. Liu, R. Wang, S. Shan,
  X. Chen, "Deep Supervised Hashing for Fast Image Retrieval", CVPR 2016:
  m = 2K and α = 0.01. On codes in (−1, 1), D ≤ 4K, so m = 2K asks dissimilar
  pairs to differ in half their bits. The paper uses single-label pairs;
  with multi-hot labels s_ij = 1 when i and j share a label.

  Args:
    margin: m / K. Default 2.0.
    regularizer_weight: α. Default 0.01.
  """

  def __init__(self, margin=2.0, regularizer_weight=0.01, name="dsh_loss",
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.margin = margin
    self.regularizer_weight = regularizer_weight

  def params(self):
    return dict(margin=self.margin, regularizer_weight=self.regularizer_weight)

  def batch_loss(self, labels, u):
    v = _signed(u)
    n = ops.shape(v)[0]
    bits = ops.cast(ops.shape(v)[1], v.dtype)
    s, dissimilar = pair_masks(labels, n, v.dtype)
    d = squared_distance(v)
    pairs = 0.5 * s * d + 0.5 * dissimilar * ops.relu(self.margin * bits - d)
    contrastive = masked_mean(pairs, s + dissimilar)
    regularizer = ops.mean(ops.sum(ops.abs(ops.abs(v) - 1.0), axis=1))
    return contrastive + self.regularizer_weight * regularizer


@keras.saving.register_keras_serializable(package="dhe_tf")
class HashNetLoss(_BatchLoss):
  """HashNet: weighted pairwise cross-entropy on codes sharpened by continuation.

  The codes are h = tanh(β z / 2), z the hash layer's pre-activation
  (h = 2u − 1 at β = 1), and β grows with the training step t as
  β_t = (1 + γ t)^p, so h tends to sign(z) as training goes on. With
  θ_ij = a · h_i·h_j, a = scale / K,

      ℓ_ij = log(1 + e^{θ_ij}) − s_ij θ_ij
      L    = mean_{(i,j)∈S} ℓ_ij + mean_{(i,j)∈D} ℓ_ij

  Averaging S and D separately is HashNet's weighting w_ij = |S∪D|/|S| for
  similar and |S∪D|/|D| for dissimilar pairs, which counters the imbalance
  of similar pairs. Reference: Z. Cao, M. Long, J. Wang, P. S. Yu, "HashNet:
  Deep Learning to Hash by Continuation", ICCV 2017; the authors' code uses
  a = 10 / K, γ = 0.005, p = 0.5. β is a non-trainable variable that
  dhe_tf.training.callbacks.HashNetContinuation updates before each training step.
  Multi-label data: s_ij = 1 when i and j share a label, as in the paper.

  Args:
    scale: a · K. Default 10.
    gamma, power: the continuation schedule. Defaults 0.005 and 0.5.
  """

  def __init__(self, scale=10.0, gamma=0.005, power=0.5, name="hashnet_loss",
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.scale = scale
    self.gamma = gamma
    self.power = power
    self.beta = keras.Variable(1.0, trainable=False, dtype="float32",
                               name="hashnet_beta")

  def params(self):
    return dict(scale=self.scale, gamma=self.gamma, power=self.power)

  def beta_at(self, step):
    """β_t = (1 + γ t)^p, the continuation at training step t."""
    return (1.0 + self.gamma * step) ** self.power

  def batch_loss(self, labels, u):
    v = ops.clip(_signed(u), -1.0 + _EPSILON, 1.0 - _EPSILON)
    h = ops.tanh(ops.convert_to_tensor(self.beta) * ops.arctanh(v))
    n = ops.shape(h)[0]
    bits = ops.cast(ops.shape(h)[1], h.dtype)
    s, dissimilar = pair_masks(labels, n, h.dtype)
    theta = (self.scale / bits) * ops.matmul(h, ops.transpose(h))
    loss = _pair_likelihood_loss(theta, s)
    return masked_mean(loss, s) + masked_mean(loss, dissimilar)


@keras.saving.register_keras_serializable(package="dhe_tf")
class CSQLoss(_BatchLoss):
  """CSQ: central similarity to per-class hash centres, plus quantization.

  Each image's target is a hash centre c_i ∈ {−1, 1}^K
  (dhe_tf.core.codewords.hash_centers): the centre of its class, or for multi-hot labels sign(Σ_l y_il c_l), ties taken
  from a fixed random centre. With v = 2u − 1,

      L = mean_{i,k} BCE(u_ik, (c_ik + 1)/2) + λ · mean_{i,k} (|v_ik| − 1)²

  BCE(p, t) = −t log p − (1 − t) log(1 − p): the codes' Hamming distance to
  their centre is minimised, so similar images meet at one centre and
  dissimilar ones sit as far apart as the centres. Reference: L. Yuan et
  al., "Central Similarity Quantization for Efficient Image and Video
  Retrieval", CVPR 2020 (λ = 1e-4 in the authors' code). Needs one-hot or
  multi-hot labels [N, C] (or class ids [N]), C = num_classes.

  Args:
    num_classes: C.
    bits: K.
    quantization_weight: λ. Default 1e-4.
    seed: seed of random centres. Default 0.
  """

  def __init__(self, num_classes, bits, quantization_weight=1e-4, seed=0,
               name="csq_loss", **kwargs):
    super().__init__(name=name, **kwargs)
    self.num_classes = num_classes
    self.bits = bits
    self.quantization_weight = quantization_weight
    self.seed = seed
    self.centers = hash_centers(num_classes, bits, seed)
    self.tie_center = tie_center(bits, seed)

  def params(self):
    return dict(num_classes=self.num_classes, bits=self.bits,
                quantization_weight=self.quantization_weight, seed=self.seed)

  def targets(self, labels):
    """The centre of each image in {0, 1}: [N, K] from labels [N, C] or [N]."""
    total = ops.matmul(multi_hot(labels, self.num_classes), self.centers)
    total = ops.where(ops.equal(total, 0.0), self.tie_center[None, :], total)
    return (ops.sign(total) + 1.0) / 2.0

  def batch_loss(self, labels, u):
    t = self.targets(labels)
    p = ops.clip(u, _EPSILON, 1.0 - _EPSILON)
    center = -ops.mean(t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p))
    quantization = ops.mean(ops.square(ops.abs(_signed(u)) - 1.0))
    return center + self.quantization_weight * quantization


@keras.saving.register_keras_serializable(package="dhe_tf")
class OrthoHashLoss(_BatchLoss):
  """OrthoHash: cross-entropy of scaled cosine similarities to fixed codewords.

  z is the hash layer's pre-activation (batch-normalised: the method's model
  has the "batchnorm_sigmoid" head), recovered from u = σ(z) as
  z = log u − log(1 − u), u clipped to [1e-6, 1 − 1e-6]. With c_c ∈ {±1}^K
  the codeword of class c (dhe_tf.core.codewords.hash_centers),

      ℓ_ic = s · (cos(z_i, c_c) − m · y_ic)
      L    = −mean_i Σ_c (y_ic / Σ_c' y_ic') log softmax_c(ℓ_i)
           + λ · mean_i (1 − cos(z_i, sign z_i))

  For one-hot labels this is the softmax cross-entropy with an additive
  cosine margin m on the true class; for multi-hot labels the margin is on
  every label and the target spreads evenly over them (the authors' default
  multi-label loss, "label_smoothing"). Reference: J. T. Hoe et al., "One
  Loss for All: Deep Hashing with a Single Cosine Similarity based Learning
  Objective", NeurIPS 2021; the authors' code (kamwoh/orthohash) uses s = 8,
  m = 0.2, λ = 0 and Bernoulli(½) codewords (Hadamard rows here, when they
  fit, are exactly orthogonal). Labels: one-hot, multi-hot or class ids.

  Args:
    num_classes: C.
    bits: K.
    scale: s. Default 8.
    margin: m. Default 0.2.
    quantization_weight: λ. Default 0.
    seed: seed of random codewords. Default 0.
  """

  def __init__(self, num_classes, bits, scale=8.0, margin=0.2,
               quantization_weight=0.0, seed=0, name="orthohash_loss",
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.num_classes = num_classes
    self.bits = bits
    self.scale = scale
    self.margin = margin
    self.quantization_weight = quantization_weight
    self.seed = seed
    # Unit-norm codewords: ±1 rows have norm √K.
    self.codewords = (hash_centers(num_classes, bits, seed) /
                      np.sqrt(bits)).astype(np.float32)

  def params(self):
    return dict(num_classes=self.num_classes, bits=self.bits,
                scale=self.scale, margin=self.margin,
                quantization_weight=self.quantization_weight, seed=self.seed)

  def batch_loss(self, labels, u):
    y = multi_hot(labels, self.num_classes)
    p = ops.clip(u, _EPSILON, 1.0 - _EPSILON)
    z = ops.log(p) - ops.log(1.0 - p)
    norm = ops.sqrt(ops.sum(ops.square(z), axis=1, keepdims=True) + 1e-12)
    cosine = ops.matmul(z / norm, self.codewords.T)
    logits = self.scale * (cosine - self.margin * y)
    targets = y / ops.maximum(ops.sum(y, axis=1, keepdims=True), 1.0)
    cross_entropy = -ops.mean(ops.sum(
        targets * ops.log_softmax(logits, axis=1), axis=1))
    # cos(z, sign z) = Σ|z| / (‖z‖ √K).
    code_cosine = ops.sum(ops.abs(z), axis=1) / (
        ops.squeeze(norm, 1) * float(self.bits) ** 0.5)
    quantization = ops.mean(1.0 - code_cosine)
    return cross_entropy + self.quantization_weight * quantization
