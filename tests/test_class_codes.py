"""tools/class_codes.py: majority codes, shares and collisions by hand."""

import class_codes
import numpy as np
import pytest


def test_majority_codes_shares_and_distances():
  # Class 0: three images on 110, one on 111; class 2: two on 110 (a
  # collision with class 0), one on 001.
  u = np.array([[.9, .9, .1], [.9, .8, .2], [.7, .9, .3], [.9, .9, .9],
                [.99, .99, .01], [.6, .6, .4], [.1, .2, .9]], np.float32)
  class_ids = np.array([0, 0, 0, 0, 2, 2, 2])
  numbers = class_codes.class_codes(u, class_ids)
  (c0, code0, share0, distinct0), (c2, code2, share2, distinct2) = (
      numbers["classes"])
  assert (c0, list(code0), share0, distinct0) == (0, [1, 1, 0], 0.75, 2)
  assert (c2, list(code2), distinct2) == (2, [1, 1, 0], 2)
  assert share2 == pytest.approx(2 / 3)
  np.testing.assert_array_equal(numbers["distances"], [[0, 0], [0, 0]])
  # min(u, 1 − u) < 0.05: the two entries 0.99 and the 0.01.
  assert numbers["saturated"] == pytest.approx(3 / 21)
  text = class_codes.report(numbers, ["tee", "x", "bag"])
  assert "| tee | 110 | 0.75 | 2 | 0 | 0 |" in text
  assert "| bits to tee | bits to bag |" in text
