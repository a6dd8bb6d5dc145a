"""tools/scenario_table.py: the seen / new / unknown table and the rules'
rank agreement, on hand-made results files."""

import os

import pytest

import results_table
import tool_modules

_TABLE = tool_modules.load("scenario_table")  # Defines no flags.


def _benchmark_row(protocol, method, seed, test, validation):
  return dict(protocol=protocol, method=method, bits=12, seed=seed,
              mAP=test, validation_mAP=validation)


def _files(tmp_path):
  benchmark = tmp_path / "benchmark.csv"
  rows = []
  # Seen test: a 0.80, b 0.70, c 0.60; new test: a 0.50, b 0.62, c 0.58.
  for method, seen, new in (("a", 0.80, 0.50), ("b", 0.70, 0.62),
                            ("c", 0.60, 0.58)):
    for seed in (0, 1):
      step = 0.01 * (1 if seed else -1)
      rows.append(_benchmark_row("1k5k", method, seed, seen + step,
                                 seen + 0.05))
      rows.append(_benchmark_row("unseen_splits", method, seed, new + step,
                                 1.0 - new))
  # One more 1k5k run of "a" only: its cell is not full and is marked.
  rows.append(_benchmark_row("unseen", "a", 0, 0.9, 0.9))
  results_table.write_rows(str(benchmark), rows)
  rule = tmp_path / "rule.csv"
  results_table.write_rows(str(rule), [
      _benchmark_row("unseen_splits", m, s, None, v)
      for m, v in (("a", 0.6), ("b", 0.9), ("c", 0.7)) for s in (0, 1)])
  screen = tmp_path / "screen"
  for part, test, validation in (("1k5k", 0.79, 0.85),
                                 ("unseen_classes", None, 0.8),
                                 ("unseen", 0.61, 0.3)):
    os.makedirs(screen / part)
    results_table.write_rows(str(screen / part / "results.csv"), [
        dict(variant="aux", bits=12, seed=seed, validation_mAP=validation,
             mAP=test) for seed in (0, 1)])
  return str(benchmark), str(rule), [str(screen)]


def test_ranks_and_spearman_match_hand_values():
  assert _TABLE.ranks([0.3, 0.9, 0.3, 0.1]) == [2.5, 1.0, 2.5, 4.0]
  assert _TABLE.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
  assert _TABLE.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
  # Ranks (3, 2, 1) against (2, 3, 1): ρ = 1 − 6·2 / (3·8) = 0.5.
  assert _TABLE.spearman([1, 2, 3], [2, 1, 3]) == pytest.approx(0.5)
  assert _TABLE.spearman([1, 2], [1, 2]) is None


def test_the_table_gives_gaps_to_the_best_and_the_rules_agreement(tmp_path):
  text = _TABLE.report(*_files(tmp_path), ["12"])
  lines = {line.split(" | ")[0].lstrip("| "): line
           for line in text.splitlines() if line.startswith("| ")}
  # a: best seen (0.80), new 0.50 against b's 0.62.
  assert lines["a"].endswith(
      "| 0.6000 ± 0.0000 | 0.5000 ± 0.0141 | +0.0000 | -0.1200 | -0.1200 |")
  assert lines["b"].endswith("| -0.1000 | +0.0000 | -0.1000 |")
  assert lines["screen/aux"] == (
      "| screen/aux | 0.8500 ± 0.0000 | 0.7900 ± 0.0000 | 0.8000 ± 0.0000 | "
      "0.6100 ± 0.0000 | -0.0100 | -0.0100 | -0.0100 |")
  # Seen rule: a, b, c and aux rank as their tests: ρ = 1. New rule ranks
  # b, aux, c, a and the test b, aux, c, a: ρ = 1. Images rank a, c, b, aux
  # (1 − new): rank differences −3, 2, −1, 2, ρ = 1 − 6·18 / (4·15) = −0.8.
  assert "seen rule (1k5k held-out images) vs 1k5k test: +1.00 over 4" in text
  assert "unseen_splits test: +1.00 over 4 rows" in text
  assert "unseen_splits runs vs their test: -0.80 over 4 rows" in text


def test_a_column_with_missing_runs_is_marked_and_left_out(tmp_path):
  benchmark, rule, screen = _files(tmp_path)
  rows = results_table.read_rows(benchmark, _TABLE._kind)
  rows = [r for r in rows if not (r["method"] == "c" and r["seed"] == 1 and
                                  r["protocol"] == "unseen_splits")]
  results_table.write_rows(benchmark, rows)
  text = _TABLE.report(benchmark, rule, [], ["12"])
  line = next(l for l in text.splitlines() if l.startswith("| c |"))
  assert "0.5700 (1 runs)" in line and line.endswith("| – | – |")
