"""tools/benchmark_methods.py: its --quick path writes the table it promises."""

import csv
import json
import os
import subprocess
import sys

_TOOL = os.path.join(os.path.dirname(__file__), "..", "tools",
                     "benchmark_methods.py")


def _tool(*args, cwd):
  env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__),
                                                 ".."))
  return subprocess.run([sys.executable, _TOOL, *args], capture_output=True,
                        text=True, cwd=cwd, env=env, timeout=600)


def test_quick_benchmark_writes_csv_markdown_and_chart(tmp_path):
  out = tmp_path / "out"
  (tmp_path / "flags").mkdir()
  args = ["--quick", "--protocol=tiny", "--methods=dlbhc,hashnet", "--bits=6",
          "--seeds=4,5", "--epochs=1", "--jit_compile=false",
          f"--flags_dir={tmp_path / 'flags'}", f"--out_dir={out}"]
  result = _tool(*args, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.count(" in ") == 2  # One line per run.

  with open(out / "results.csv", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [(r["method"], r["bits"], r["seed"]) for r in rows] == [
      ("dlbhc", "6", "4"), ("hashnet", "6", "4")]  # --quick: first seed only.
  for row in rows:
    assert 0 < float(row["mAP"]) <= 1 and 0 <= float(row["p_h2"]) <= 1

  table = (out / "results.md").read_text(encoding="utf-8")
  assert "| method | mAP 6 bits | P@H≤2 6 |" in table
  for method in ("dlbhc", "hashnet"):
    (line,) = [l for l in table.splitlines() if l.startswith(f"| {method} |")]
    assert f"{float(rows[0 if method == 'dlbhc' else 1]['mAP']):.4f}" in line

  assert (out / "map_vs_bits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

  # Each method ran its own objective: DLBHC classification alone, HashNet
  # its pairwise loss alone.
  def run_flags(name):
    with open(out / "runs" / name / "flags.json", encoding="utf-8") as f:
      return json.load(f)
  dlbhc, hashnet = run_flags("dlbhc_6bits_seed4"), run_flags(
      "hashnet_6bits_seed4")
  assert (dlbhc["hash_loss_weight"], dlbhc["classification_weight"]) == (0, 1)
  assert (hashnet["hash_loss_weight"],
          hashnet["classification_weight"]) == (1, 0)

  # Run again: every run is in results.csv already, so none is repeated.
  before = (out / "results.csv").read_text(encoding="utf-8")
  again = _tool(*args, cwd=tmp_path)
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.count(" in ") == 0
  assert (out / "results.csv").read_text(encoding="utf-8") == before
  assert (out / "results.md").read_text(encoding="utf-8") == table


def test_unknown_method_is_one_line(tmp_path):
  result = _tool("--methods=dhe,lsh", f"--out_dir={tmp_path / 'out'}",
                 cwd=tmp_path)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "benchmark_methods: error: Unknown method 'lsh'. Available: dhe, "
      "dlbhc, dpsh, dsh, hashnet, csq")
  assert not os.path.exists(tmp_path / "out")
