"""tools/benchmark_search.py on a few thousand codes: every row is there."""

import importlib.util
import os
import subprocess
import sys

_TOOL = os.path.join(os.path.dirname(__file__), "..", "tools",
                     "benchmark_search.py")


def test_tiny_benchmark_prints_a_row_per_backend_and_bits():
  backends = ["faiss", "numpy"]
  if importlib.util.find_spec("pymilvus") and importlib.util.find_spec(
      "milvus_lite"):
    backends.insert(1, "milvus")
  result = subprocess.run(
      [sys.executable, _TOOL, "--num_codes=2000", "--bits=12,32",
       "--queries=20", "--k=10", f"--backends={','.join(backends)}",
       "--repeats=1"], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [line.strip("|").split("|") for line in result.stdout.splitlines()
          if line.startswith("| random")]
  assert [(r[1].strip(), r[2].strip()) for r in rows] == [
      (bits, backend) for bits in ("12", "32")
      for backend in ["numpy"] + [b for b in backends if b != "numpy"]]
  for row in rows:
    cells = [cell.strip() for cell in row]
    assert cells[3] == "2,000" and float(cells[6].replace(",", "")) > 0
    assert cells[8] == "yes"  # Same top-k ids and distances as NumPy.
    if cells[2] == "faiss":
      assert cells[7] == "1.00"
