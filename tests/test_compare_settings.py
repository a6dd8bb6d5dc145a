"""tools/compare_settings.py: paired variants, the table, resume, refusals."""

import csv
import os
import subprocess
import sys

_TOOL = os.path.join(os.path.dirname(__file__), "..", "tools",
                     "compare_settings.py")
_COMMON = ("--dataset=embedded --protocol=tiny --backbone=small_cnn "
           "--fc_units=8 --epochs=1 --jit_compile=false "
           "--validation_fraction=0.2 --validation_every=1 --method=dhe")


def _tool(*args):
  # The checkout's dhe_tf, whatever else is installed.
  env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  return subprocess.run([sys.executable, _TOOL, *args], capture_output=True,
                        text=True, timeout=300, env=env)


def test_two_variants_write_paired_rows_and_resume(tmp_path):
  args = [f"--out_dir={tmp_path}", f"--common={_COMMON}",
          "--variant=today:",
          "--variant=codewords: --method_params=codeword_weight=1",
          "--bits=6", "--seeds=4"]
  done = _tool(*args)
  assert done.returncode == 0, done.stderr[-2000:]
  with open(tmp_path / "results.csv", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [(r["variant"], r["bits"], r["seed"]) for r in rows] == [
      ("today", "6", "4"), ("codewords", "6", "4")]
  for row in rows:
    assert 0 < float(row["validation_mAP"]) <= 1
    assert row["mAP"] == ""  # The queries are not scored without --test.
    assert 1 <= float(row["distinct_codes"]) <= 2**6
    assert 0 <= float(row["class_code_min_distance"]) <= 6
  # The variant's flags reached its run (flags.json records them).
  flags_json = (tmp_path / "runs" / "codewords_6bits_s4" / "flags.json"
                ).read_text(encoding="utf-8")
  assert "codeword_weight=1.0" in flags_json
  table = (tmp_path / "results.md").read_text(encoding="utf-8")
  (line,) = [l for l in table.splitlines() if l.startswith("| codewords |")]
  delta = float(rows[1]["validation_mAP"]) - float(rows[0]["validation_mAP"])
  assert f"{delta:+.4f}".replace("+-", "-") in line.replace("+-", "-")

  # Again: nothing runs; a known label with other flags is refused.
  assert "run(s) left" not in _tool(*args).stdout
  changed = [a.replace("codeword_weight=1", "codeword_weight=2")
             for a in args]
  refused = _tool(*changed)
  assert refused.returncode != 0
  assert "codewords was run with other flags" in refused.stderr
  assert "Traceback" not in refused.stderr


def test_a_variant_without_a_label_is_one_line(tmp_path):
  done = _tool(f"--out_dir={tmp_path}", "--variant=--bits=12")
  assert done.returncode != 0
  assert "--variant is 'LABEL: flags'" in done.stderr
  assert "Traceback" not in done.stderr
