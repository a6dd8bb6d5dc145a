"""tools/benchmark_search.py on a few thousand codes: every row is there."""

import importlib.util
import os
import subprocess
import sys

_TOOLS = os.path.join(os.path.dirname(__file__), "..", "tools")
_TOOL = os.path.join(_TOOLS, "benchmark_search.py")


def test_tiny_benchmark_prints_a_row_per_backend_and_bits():
  backends = ["faiss", "distinct", "numpy"]
  if importlib.util.find_spec("pymilvus") and importlib.util.find_spec(
      "milvus_lite"):
    backends.insert(1, "milvus")
  result = subprocess.run(
      [sys.executable, _TOOL, "--num_codes=4000", "--bits=12,32",
       "--queries=20", "--radius_queries=5", "--k=10",
       f"--backends={','.join(backends)}", "--repeats=1"],
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [[cell.strip() for cell in line.strip("|").split("|")]
          for line in result.stdout.splitlines() if line.startswith("| random")]
  # numpy first (the reference), then faiss (the ratios' base), the others.
  order = ["numpy", "faiss"] + [b for b in backends
                                if b not in ("numpy", "faiss")]
  assert [(r[1], r[4].split(" (")[0]) for r in rows] == [
      (bits, backend) for bits in ("12", "32") for backend in order]
  for cells in rows:
    assert cells[2] == "4,000" and float(cells[10].replace(",", "")) > 0
    assert cells[15] == "yes"  # Same ids and distances as the flat scan.
    if cells[4] == "faiss":
      assert cells[11] == cells[14] == "1.00"
    if cells[4] == "numpy":
      assert cells[12] == cells[13] == cells[14] == "-"  # No radius search.
  by_name = {(r[1], r[4]): r for r in rows}
  # 4,000 random 12-bit codes repeat (4,096 possible): ~2,600 distinct;
  # 32-bit ones do not.
  assert ("12", "distinct (radius: scan)") in by_name or (
      "12", "distinct (radius: multi_hash)") in by_name
  assert ("32", "distinct (flat fallback)") in by_name
  assert "Machine at the start:" in result.stdout


def test_learned_codes_are_draws_with_flips_and_their_growth_is_shown():
  script = """
import numpy as np
import benchmark_search as tool
from dhe_tf.core import codes as codes_lib
rng = np.random.default_rng(0)
real = rng.integers(0, 2, (300, 12), dtype=np.uint8)[
    rng.integers(0, 300, 70000)]
drawn = tool.learned_codes(rng, real, 50000, 0.0)
assert drawn.shape == (50000, 2), drawn.shape
rows = {tuple(row) for row in codes_lib.pack(real)}
assert all(tuple(row) in rows for row in drawn)  # p = 0: copies only.
flipped = codes_lib.unpack(tool.learned_codes(rng, real[:1], 20000, 0.1), 12)
rate = (flipped != real[:1]).mean()
assert 0.09 < rate < 0.11, rate
print(tool.growth_table(real, rng, 0.01, [100000]))
"""
  result = subprocess.run([sys.executable, "-c", script], cwd=_TOOLS,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = [line for line in result.stdout.splitlines()
           if line.startswith("| ") and line[2].isdigit()]
  assert [line.split(" | ")[0] for line in lines] == [
      "| 7,000", "| 14,000", "| 35,000", "| 70,000", "| 100,000"]
  assert lines[-1].split(" | ")[1] == "-"  # No real subset of 100,000.
  assert "(N / 7,000)^" in result.stdout
