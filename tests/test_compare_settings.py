"""tools/compare_settings.py: paired variants, the table, resume, refusals."""

import csv

import pytest

from dhe_tf.core.errors import ConfigError
import tool_modules

_COMPARE = tool_modules.load("compare_settings")  # Defines no flags.
_COMMON = ("--dataset=embedded --protocol=tiny --backbone=small_cnn "
           "--fc_units=8 --epochs=1 --jit_compile=false "
           "--validation_fraction=0.2 --validation_every=1 --method=dhe")


def test_two_variants_write_paired_rows_and_resume(tmp_path, capsys):
  variants = ["today:", "codewords: --method_params=codeword_weight=1"]
  kwargs = dict(common=_COMMON, bits=["6"], seeds=["4"])
  table = _COMPARE.compare(str(tmp_path), variants, **kwargs)
  assert capsys.readouterr().out.count(" run(s) left") == 2
  with open(tmp_path / "results.csv", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [(r["variant"], r["bits"], r["seed"]) for r in rows] == [
      ("today", "6", "4"), ("codewords", "6", "4")]
  for row in rows:
    assert 0 < float(row["validation_mAP"]) <= 1
    assert row["mAP"] == ""  # The queries are not scored without test.
    assert 1 <= float(row["distinct_codes"]) <= 2**6
    assert 0 <= float(row["class_code_min_distance"]) <= 6
  # The variant's flags reached its run (flags.json records them).
  flags_json = (tmp_path / "runs" / "codewords_6bits_s4" / "flags.json"
                ).read_text(encoding="utf-8")
  assert "codeword_weight=1.0" in flags_json
  assert table == (tmp_path / "results.md").read_text(encoding="utf-8")
  (line,) = [l for l in table.splitlines() if l.startswith("| codewords |")]
  delta = float(rows[1]["validation_mAP"]) - float(rows[0]["validation_mAP"])
  assert f"{delta:+.4f}".replace("+-", "-") in line.replace("+-", "-")

  # Again: nothing runs, the same table; a known label with other flags is
  # refused before anything runs.
  assert _COMPARE.compare(str(tmp_path), variants, **kwargs) == table
  assert " run(s) left" not in capsys.readouterr().out
  changed = [v.replace("codeword_weight=1", "codeword_weight=2")
             for v in variants]
  with pytest.raises(ConfigError, match="codewords was run with other flags"):
    _COMPARE.compare(str(tmp_path), changed, **kwargs)
  assert (tmp_path / "results.md").read_text(encoding="utf-8") == table

  # Scoring the validation again (by the definition training used) runs
  # nothing and finds the same numbers.
  assert _COMPARE.compare(str(tmp_path), variants, rescore_validation=True,
                          **kwargs) == table
  assert " run(s) left" not in capsys.readouterr().out


@pytest.mark.parametrize("variant, message", [
    ("--bits=12", "--variant is 'LABEL: flags'"),
    ("wide: --no_such_flag=1", "no_such_flag"),
])
def test_a_bad_variant_is_refused_before_any_run(tmp_path, variant, message):
  with pytest.raises(ConfigError, match=message):
    _COMPARE.compare(str(tmp_path / "out"), [variant], common=_COMMON)
  assert not (tmp_path / "out").exists()


def test_seed_placeholder_follows_each_run_seed():
  # "{seed}" lets a screen draw another class split per seed.
  args = _COMPARE.parse_variant("split: --split_seed={seed}")[1]
  for seed in (0, 3):
    config = _COMPARE.make_config(_COMMON.split() + args, 6, seed, False)
    assert (config.split_seed, config.seed) == (seed, seed)


def test_report_pairs_validation_and_test_by_seed():
  diagnostics = {key: 1.0 for key in _COMPARE.DIAGNOSTICS}
  rows = [dict(variant=v, bits=12, seed=s, validation_mAP=val, mAP=test,
               **diagnostics)
          for v, s, val, test in [("a", 0, 0.50, 0.60), ("a", 1, 0.40, 0.70),
                                  ("b", 0, 0.55, 0.58), ("b", 1, 0.43, 0.71)]]
  (line,) = [l for l in _COMPARE.report(rows, ["a", "b"]).splitlines()
             if l.startswith("| b |")]
  cells = [c.strip() for c in line.split("|")[1:-1]]
  # Validation: +0.05, +0.03; test: −0.02, +0.01.
  assert cells[3] == "+0.0400 ± 0.0141"
  assert cells[5] == "-0.0050 ± 0.0212"


def test_a_run_is_added_to_the_rows_another_process_wrote_meanwhile(
    tmp_path):
  path = str(tmp_path / "results.csv")
  row = dict(variant="a", bits=12, seed=0, validation_mAP=0.5, mAP=None,
             args="--seed_free")
  mine = _COMPARE.read_rows(path)  # This process starts: nothing yet.
  _COMPARE.append_row(path, dict(row, seed=1))  # The other one's run ends.
  assert mine == []
  rows = _COMPARE.append_row(path, dict(row, seed=0))  # Then this one's.
  assert [r["seed"] for r in rows] == [1, 0]
  assert [r["seed"] for r in _COMPARE.read_rows(path)] == [1, 0]
  assert _COMPARE.read_rows(path)[1]["validation_mAP"] == 0.5
  # The table lists the seeds in order, whichever process finished first.
  diagnostics = {key: 1.0 for key in _COMPARE.DIAGNOSTICS}
  table = _COMPARE.report([dict(r, **diagnostics) for r in rows], ["a"])
  assert "| a | 0,1 |" in table
