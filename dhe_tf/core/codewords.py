"""Class codewords: one K-bit target code per class, far apart in Hamming space.

Methods that pull each image towards a code for its class read their targets
here: CSQ's hash centres and OrthoHash's codewords (`hash_centers`, the
authors' construction), the classifier codes of Sablayrolles et al., and
DHE's class codewords (`max_distance_codewords`). Codewords are ±1 float32
[C, K]; bit k of class c is 1 where the entry is +1.

Why the distance between codewords matters at short codes: an image whose
code is within ⌊(d_min − 1)/2⌋ flipped bits of its class codeword is still
nearer to it than to any other, so d_min, the smallest distance between two
codewords, is how many bit errors the classes survive. With C = 10 classes
in K = 12 bits the largest possible d_min is 6 (a code of length 12 with
minimum distance 7 has at most 4 words), and the rows of a 12 × 12 Hadamard
matrix reach it; random balanced codewords typically leave two classes 2–4
bits apart.
"""

import numpy as np


def hadamard(order):
  """The Sylvester Hadamard matrix [order, order] of ±1 (order a power of 2)."""
  if order < 1 or order & (order - 1):
    raise ValueError(f"A Sylvester Hadamard matrix needs a power of 2. "
                     f"Received: order={order}")
  h = np.ones((1, 1), np.float32)
  while h.shape[0] < order:
    h = np.block([[h, h], [h, -h]])
  return h


def _is_prime(n):
  return n > 1 and all(n % p for p in range(2, int(n ** 0.5) + 1))


def _paley(q):
  # Paley's construction I: a Hadamard matrix of order q + 1 for a prime
  # q ≡ 3 (mod 4), H = I + [[0, 1ᵀ], [−1, Q]] with the Jacobsthal matrix
  # Q_ij = χ(j − i), χ the quadratic character mod q.
  residues = {(x * x) % q for x in range(1, q)}
  chi = np.array([0] + [1 if a in residues else -1 for a in range(1, q)])
  jacobsthal = chi[(np.arange(q)[None, :] - np.arange(q)[:, None]) % q]
  s = np.zeros((q + 1, q + 1))
  s[0, 1:], s[1:, 0], s[1:, 1:] = 1, -1, jacobsthal
  return (np.eye(q + 1) + s).astype(np.float32)


def hadamard_matrix(order):
  """A Hadamard matrix [order, order] of ±1 (H Hᵀ = order · I), or None.

  Orders 2^a · (q + 1) for a prime q ≡ 3 (mod 4), and 1 and 2^a: Sylvester
  doubling of Paley's construction I: up to 128, the orders 1, 2, 4, 8,
  12, 16, 20, 24, 32, 40, 44, 48, 60, 64, 68, 72, 80, 84, 88, 96, 104, 108,
  120 and 128 (not 28, 36, 52, 56, 76, 92, 100, 112, 116, 124, which need
  other constructions). Rows and columns are normalised so the first of each is all +1.
  """
  doublings = 0
  while order > 1 and order % 2 == 0 and not (
      order % 4 == 0 and _is_prime(order - 1) and (order - 1) % 4 == 3):
    order //= 2
    doublings += 1
  if order == 1:
    h = np.ones((1, 1), np.float32)
  elif order % 4 == 0 and _is_prime(order - 1) and (order - 1) % 4 == 3:
    h = _paley(order - 1)
  else:
    return None
  for _ in range(doublings):
    h = np.block([[h, h], [h, -h]])
  h = h * h[:, :1]  # Rows start with +1 ...
  return (h * h[:1, :]).astype(np.float32)  # ... and so does the first row.


def minimum_distance(codewords):
  """d_min: the smallest Hamming distance between two rows of ±1 [C, K]."""
  codewords = np.asarray(codewords, np.float32)
  bits = codewords.shape[1]
  distance = (bits - codewords @ codewords.T) / 2
  np.fill_diagonal(distance, bits + 1)
  return int(round(distance.min()))


def _imbalance(column_sums):
  return float(np.sum(np.asarray(column_sums, np.float64) ** 4))


def max_distance_codewords(num_classes, bits, seed=0, tries=200):
  """±1 [C, K]: class codewords with the largest minimum distance we can build.

  When a K × K Hadamard matrix exists (`hadamard_matrix`) and C ≤ 2(K − 1):
  C of the rows 2..K of H and their negations, every one with K/2 bits +1,
  no two complementary, so any two are exactly K/2 bits apart: the optimum
  for C > K/2 + 1 (Plotkin), e.g. d_min = 6 for 10 classes in 12 bits. Of
  `tries` seeded choices of rows, the one whose bits are most balanced
  over the classes (each row's sign flipped while that improves the
  balance). Otherwise, the best of `tries` seeded balanced random
  draws (as `hash_centers`). Imbalance is Σ_k (Σ_c w_ck)⁴, small when every
  bit splits the classes evenly (a bit equal for all classes carries
  nothing; the sum of squares would not do: it is C·K for any orthogonal
  rows).
  """
  h = hadamard_matrix(bits)
  if h is None or num_classes > bits - 1 or bits < 4:
    return hash_centers(num_classes, bits, seed, tries=tries)
  rng = np.random.default_rng(seed)
  best, best_imbalance = None, None
  for _ in range(tries):
    candidate = h[1 + rng.permutation(bits - 1)[:num_classes]]
    candidate *= rng.choice([-1.0, 1.0], size=(num_classes, 1))
    improved = True
    while improved:  # Flip a row's sign while that balances the bits more.
      improved = False
      for row in range(num_classes):
        flipped = candidate.sum(axis=0) - 2 * candidate[row]
        if _imbalance(flipped) < _imbalance(candidate.sum(axis=0)):
          candidate[row] *= -1
          improved = True
    imbalance = _imbalance(candidate.sum(axis=0))
    if best is None or imbalance < best_imbalance:
      best, best_imbalance = candidate, imbalance
  return best.astype(np.float32)


def hash_centers(num_classes, bits, seed=0, tries=20):
  """CSQ's hash centres [C, K] of ±1, one per class, far apart in Hamming space.

  Rows of [H; −H] for the K×K Hadamard matrix H when K is a power of 2 and
  C ≤ 2K: any two are K/2 (or K) bits apart. Otherwise (as in the CSQ code)
  random centres with half their bits +1: of `tries` seeded draws, the one
  whose closest two centres are farthest apart.
  """
  if bits & (bits - 1) == 0 and num_classes <= 2 * bits:
    h = hadamard(bits)
    return np.concatenate([h, -h])[:num_classes]
  rng = np.random.default_rng(seed)
  best, best_distance = None, -1
  for _ in range(tries):
    centers = np.ones((num_classes, bits), np.float32)
    for row in centers:
      row[rng.permutation(bits)[:bits // 2]] = -1.0
    distance = (bits - centers @ centers.T) / 2
    np.fill_diagonal(distance, bits)
    if distance.min() > best_distance:
      best, best_distance = centers, distance.min()
  return best


def tie_center(bits, seed=0):
  """±1 [K]: the fixed random code that breaks ties of summed centres."""
  tie = np.random.default_rng(seed + 1).integers(0, 2, bits) * 2 - 1
  return tie.astype(np.float32)
