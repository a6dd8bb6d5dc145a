"""Pairwise quantities of a batch that the pairwise losses share.

Labels are class ids [N] / [N, 1] or one-hot / multi-hot [N, C]; two images
are similar when they share at least one label. u is the hash layer's sigmoid
activations, float [N, K] in [0, 1].
"""

from keras import ops


def pairwise_similarity(labels):
  """Returns s [N, N]: s_ij = 1 when images i and j share at least one label.

  Args:
    labels: class ids [N] or [N, 1], or one-hot / multi-hot [N, C] (C > 1).
  """
  labels = ops.convert_to_tensor(labels)
  if len(labels.shape) == 1 or labels.shape[-1] == 1:
    ids = ops.reshape(labels, (-1,))
    return ops.cast(ops.equal(ids[:, None], ids[None, :]), "float32")
  labels = ops.cast(labels, "float32")
  shared = ops.matmul(labels, ops.transpose(labels))
  return ops.cast(shared > 0.5, "float32")


def multi_hot(labels, num_classes):
  """float32 [N, C] from one-hot / multi-hot [N, C] or class ids [N] / [N, 1]."""
  labels = ops.convert_to_tensor(labels)
  if len(labels.shape) == 1 or labels.shape[-1] == 1:
    labels = ops.one_hot(ops.cast(ops.reshape(labels, (-1,)), "int32"),
                         num_classes)
  return ops.cast(labels, "float32")


def codeword_distance(u, codewords):
  """Returns d [N, C], the relaxed Hamming distance of each u_i to each codeword.

  Args:
    u: float [N, K], activations in [0, 1].
    codewords: float [C, K] of 0/1.

  d_ic = Σ_k [u_ik (1 − w_ck) + (1 − u_ik) w_ck] = Σ_k |u_ik − w_ck|: the
  expected number of bits in which a code drawn from u_i differs from w_c.
  Unlike the distance between two relaxed codes it is 0 when u_i = w_c.
  """
  u = ops.convert_to_tensor(u)
  w = ops.convert_to_tensor(codewords, u.dtype)
  d = (ops.sum(u, axis=-1)[:, None] + ops.sum(w, axis=-1)[None, :] -
       2.0 * ops.matmul(u, ops.transpose(w)))
  return ops.maximum(d, 0.0)


def relaxed_hamming_distance(u):
  """Returns d [N, N], the relaxed Hamming distance between all rows of u.

  Args:
    u: float [N, K], activations in [0, 1].

  d_ij = Σ_k u_ik + Σ_k u_jk − 2 u_i·u_j, clipped at 0 against float error:
  `codeword_distance` with the rows of u as the codewords.
  """
  return codeword_distance(u, u)


def squared_distance(u):
  """Returns d [N, N] = ‖u_i − u_j‖², another relaxation of the Hamming distance.

  Args:
    u: float [N, K], activations in [0, 1].

  It too equals the Hamming distance on binary codes, and unlike the
  expected distance it is 0 between identical codes (d(u, u) = 0 for every
  u; the expected distance of two codes at 0.5 is K/2).
  """
  norms = ops.sum(ops.square(u), axis=-1)
  d = norms[:, None] + norms[None, :] - 2.0 * ops.matmul(u, ops.transpose(u))
  return ops.maximum(d, 0.0)


def pair_masks(labels, n, dtype):
  """Returns (similar, dissimilar) masks [N, N] over the ordered pairs i ≠ j.

  similar_ij = 1 when images i and j share a label, dissimilar_ij = 1 when
  they share none; both are 0 on the diagonal (an image is not its own pair).
  """
  off_diagonal = 1.0 - ops.eye(n, dtype=dtype)
  s = ops.cast(pairwise_similarity(labels), dtype) * off_diagonal
  return s, (1.0 - s) * off_diagonal


def masked_mean(values, mask):
  """Mean of `values` where mask is 1; 0 when the mask is empty.

  A batch without a single similar pair gives 0, so the loss stays finite.
  """
  return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)
