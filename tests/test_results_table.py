"""The tools' results.csv: typed round trip, atomic writes, mean ± sd,
paired differences."""

import json
import math
import os

import pytest
import results_table


def test_rows_come_back_typed(tmp_path):
  path = os.path.join(tmp_path, "results.csv")
  assert results_table.read_rows(path, {}.get) == []
  rows = [dict(method="dhe", seed=1, mAP=0.8125, curve={"3": 0.5}),
          dict(method="dsh", seed=2, mAP=None, curve=None)]
  results_table.write_rows(path, rows)
  kinds = dict(seed=int, mAP=float, curve=json.loads).get
  assert results_table.read_rows(path, kinds) == rows
  assert os.listdir(tmp_path) == ["results.csv"]  # No .tmp left behind.


def test_mean_sd_cells():
  assert results_table.mean_sd([0.81, 0.83]) == "0.8200 ± 0.0141"
  assert results_table.mean_sd([0.5, None], digits=2) == "0.50"
  assert results_table.mean_sd([None]) == ""
  assert results_table.mean_sd([0.01, 0.03], signed=True) == "+0.0200 ± 0.0141"
  assert results_table.mean_sd([-0.01], signed=True) == "-0.0100"


def test_paired_differences_by_hand():
  # Seed 3 has no reference, seed 4 a None score: neither is paired.
  paired = results_table.paired_differences(
      {0: 0.50, 1: 0.40, 2: 0.70, 3: 0.9, 4: None},
      minus={2: 0.60, 0: 0.45, 1: 0.43, 4: 0.5, 5: 0.8})
  assert paired.seeds == (0, 1, 2)
  assert paired.differences == pytest.approx((0.05, -0.03, 0.10))
  assert paired.mean == pytest.approx(0.04)
  # Sample sd (n − 1): squares 0.0001 + 0.0049 + 0.0036 = 0.0086, / 2.
  assert paired.sd == pytest.approx(math.sqrt(0.0043))
  assert paired.text() == "+0.0400 ± 0.0656"
  assert paired.text(per_seed_digits=3) == (
      "+0.0400 ± 0.0656 (+0.050, -0.030, +0.100)")


def test_one_pair_has_no_sd_and_none_an_empty_cell():
  one = results_table.paired_differences({7: 0.3}, minus={7: 0.5, 8: 0.1})
  assert (one.seeds, one.mean, one.sd) == ((7,), pytest.approx(-0.2), None)
  assert one.text(per_seed_digits=3) == "-0.2000 (-0.200)"
  none = results_table.paired_differences({1: 0.3}, minus={2: 0.5})
  assert (none.seeds, none.mean, none.sd, none.text()) == ((), None, None, "")
  assert none.text(per_seed_digits=3) == ""
