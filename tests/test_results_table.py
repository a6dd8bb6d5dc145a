"""The tools' results.csv: typed round trip, atomic writes, mean ± sd."""

import json
import os

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
