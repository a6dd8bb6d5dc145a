"""tools/benchmark_search.py on a few thousand codes: every row is there, the
recall of the approximate reference, the pieces that make 10^8 codes fit."""

import importlib.util
import subprocess
import sys

import numpy as np

from dhe_tf.core import codes as codes_lib
import tool_modules

_TOOL = tool_modules.path("benchmark_search")
benchmark_search = tool_modules.load("benchmark_search")  # Defines no flags.

_EXACT = ("numpy", "faiss", "distinct", "milvus")


def _rows(text):
  """The rows of the Markdown table in `text`, as {column: cell}."""
  lines = text[text.index("| codes |"):].splitlines()
  header, *rows = [[cell.strip() for cell in line.strip("|").split("|")]
                   for line in lines if line.startswith("| ")]
  return [dict(zip(header, row)) for row in rows]


def _name(row):
  return row["backend"].split(" (")[0]


def _number(cell):
  return float(cell.replace(",", ""))


def test_tiny_benchmark_prints_a_row_per_backend_and_bits():
  backends = ["faiss", "distinct", "hnsw", "numpy"]
  if importlib.util.find_spec("pymilvus") and importlib.util.find_spec(
      "milvus_lite"):
    backends.insert(1, "milvus")
  result = subprocess.run(
      [sys.executable, _TOOL, "--num_codes=4000", "--bits=12,32",
       "--queries=20", "--radius_queries=5", "--k=10",
       f"--backends={','.join(backends)}", "--repeats=1",
       "--max_reference_queries=10", "--hnsw_ef_search=32", "--drop_caches"],
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = _rows(result.stdout)
  # numpy first (the reference), then faiss (the ratios' base), the others.
  order = ["numpy", "faiss"] + [b for b in backends
                                if b not in ("numpy", "faiss")]
  assert [(r["bits"], _name(r)) for r in rows] == [
      (bits, backend) for bits in ("12", "32") for backend in order]
  for row in rows:
    assert row["N"] == "4,000" and _number(row["k=10 q/s"]) > 0
    assert _number(row["RSS B/code"]) == _number(row["RSS B/code"])  # A number.
    if _name(row) in _EXACT:
      # Same ids and distances as the flat scan, on its 10 queries.
      assert row["identical to the flat scan"] == "yes"
      assert row["recall@10"] == "1.0000"
    if _name(row) == "faiss":
      assert row["vs IndexBinaryFlat"] == row["vs IndexBinaryMultiHash"] == (
          "1.00")
    if _name(row) in ("numpy", "hnsw"):  # No radius search.
      assert row["radius 2 q/s"] == row["radius 2 results/s"] == row[
          "vs IndexBinaryMultiHash"] == "-"
  by_name = {(r["bits"], r["backend"]): r for r in rows}
  # 4,000 random 12-bit codes repeat (4,096 possible): ~2,600 distinct;
  # 32-bit ones do not.
  assert ("12", "distinct (radius: scan)") in by_name or (
      "12", "distinct (radius: multi_hash)") in by_name
  assert ("32", "distinct (flat fallback)") in by_name
  assert ("32", "hnsw (M=16, efSearch=32)") in by_name
  assert "Machine at the start:" in result.stdout
  assert "faiss, numpy, hnsw answered the first 10 (k) and 5 (radius)" in (
      result.stdout)
  assert "open cold (--drop_caches)" in result.stdout


def _bench(tmp_path, settings, num_codes=3000, bits=32):
  rng = np.random.default_rng(0)
  rows = benchmark_search.bench(
      "random", benchmark_search.random_codes(rng, num_codes, bits),
      benchmark_search.random_codes(rng, 30, bits),
      benchmark_search.random_codes(rng, 6, bits), bits, str(tmp_path),
      settings)
  return _rows(benchmark_search.table(rows, settings.k, settings.radius))


def test_hnsw_has_a_recall_and_the_exact_backends_recall_everything(
    tmp_path, monkeypatch):
  # The NumPy scan merges chunks of 700 codes; the references answer 20 of
  # the 30 queries, the others are compared with them on those.
  monkeypatch.setattr(benchmark_search, "_SCAN_CHUNK", 700)
  rows = _bench(tmp_path, benchmark_search.Settings(
      backends=("faiss", "distinct", "hnsw", "numpy"), k=10, repeats=1,
      max_reference_queries=20, hnsw_ef_search=16, drop_caches=True))
  assert [_name(r) for r in rows] == ["numpy", "faiss", "distinct", "hnsw"]
  for row in rows:
    assert row["N"] == "3,000"
    recall = _number(row["recall@10"])
    if _name(row) == "hnsw":
      assert 0 <= recall <= 1
      assert row["backend"] == "hnsw (M=16, efSearch=16)"
      assert row["identical to the flat scan"] in ("yes", "no (approximate)")
      assert row["radius 2 q/s"] == "-"
      assert _number(row["MB on disk"]) > 0
    else:
      assert recall == 1.0
      assert row["identical to the flat scan"] == "yes"


def test_capped_backends_are_scored_against_a_scan_of_their_codes(tmp_path):
  # No "faiss" or "numpy" in the run: the exact answers come from flat
  # scans, over the 1,000 codes "distinct" indexed and over all for hnsw.
  rows = _bench(tmp_path, benchmark_search.Settings(
      backends=("distinct", "hnsw"), k=10, repeats=1,
      max_codes={"distinct": 1000}, one_at_a_time=True), num_codes=2000)
  distinct, hnsw = rows
  assert (distinct["N"], hnsw["N"]) == ("1,000", "2,000")
  assert distinct["recall@10"] == "1.0000"
  assert 0 <= _number(hnsw["recall@10"]) <= 1
  assert distinct["identical to the flat scan"] == "n/a (subset)"
  assert hnsw["identical to the flat scan"] == "-"  # No exact run to match.
  assert distinct["vs IndexBinaryFlat"] == "-"  # No "faiss" row.


def test_hnsw_is_capped_unless_told_otherwise():
  assert benchmark_search.Settings(backends=()).max_codes == {
      "hnsw": 10_000_000}
  caps = benchmark_search._max_codes  # pylint: disable=protected-access
  assert caps([], ["faiss", "hnsw"]) == {"hnsw": 10_000_000}
  assert caps(["hnsw=0", "milvus=5"], ["hnsw", "milvus"]) == {
      "hnsw": 0, "milvus": 5}
  assert caps([], ["faiss"]) == {}


def test_recall_counts_distances_so_tie_choices_are_not_misses():
  exact = (np.array([[7, 8, 9, 4]]), np.array([[0, 1, 1, 3]]))

  def recall(ids, distances):
    return benchmark_search.recall_at_k(
        (np.array([ids]), np.array([distances])), exact)

  assert recall([7, 8, 9, 4], [0, 1, 1, 3]) == 1.0
  # Another code at the 4th distance: a tie chosen differently, not a miss.
  assert recall([7, 9, 8, 5], [0, 1, 1, 3]) == 1.0
  # Code 7 (distance 0) missed and a second code at 3 found: 3 of the 4 in
  # the exact answer that shares the most with it ({8, 9, 4} or {8, 9, 5}).
  assert recall([8, 9, 4, 5], [1, 1, 3, 3]) == 0.75
  # Nothing found (-1, as HNSW marks it) or farther than the 4th: misses.
  assert recall([7, 8, -1, -1], [0, 1, 2**31 - 1, 2**31 - 1]) == 0.5
  assert recall([7, 8, 9, 5], [0, 1, 1, 4]) == 0.75
  # Averaged over queries; the first rows of a longer answer.
  two = (np.array([[7, 8, 9, 4], [1, 2, 3, 4]]),
         np.array([[0, 1, 1, 3], [0, 0, 0, 0]]))
  assert benchmark_search.recall_at_k(two, exact) == 1.0
  exact_two = (two[0], np.array([[0, 1, 1, 3], [0, 0, 1, 1]]))
  assert benchmark_search.recall_at_k(two, exact_two) == 0.75


def test_numpy_scan_merges_chunks_into_the_flat_scan_s_answer(
    tmp_path, monkeypatch):
  monkeypatch.setattr(benchmark_search, "_SCAN_CHUNK", 100)
  rng = np.random.default_rng(1)
  packed = benchmark_search.random_codes(rng, 1050, 12)  # Many ties.
  queries = benchmark_search.random_codes(rng, 7, 12)
  path = str(tmp_path / "codes.npy")
  settings = benchmark_search.Settings(backends=("numpy",))
  numpy_scan = benchmark_search._NumpyScan  # pylint: disable=protected-access
  numpy_scan.build(path, packed, 12, settings)
  scan = numpy_scan(path, 12, settings)
  for k in (1, 30, 2000):
    found = scan.search(queries, k)
    want = benchmark_search.flat_scan(packed, queries, k)
    assert all(np.array_equal(a, b) for a, b in zip(found, want)), k


def test_learned_codes_are_draws_with_flips_and_their_growth_is_shown():
  tool = benchmark_search
  rng = np.random.default_rng(0)
  real = rng.integers(0, 2, (300, 12), dtype=np.uint8)[
      rng.integers(0, 300, 70000)]
  drawn = tool.learned_codes(rng, real, 50000, 0.0)
  assert drawn.shape == (50000, 2), drawn.shape
  rows = {tuple(row) for row in codes_lib.pack(real)}
  assert all(tuple(row) in rows for row in drawn)  # p = 0: copies only.
  flipped = codes_lib.unpack(tool.learned_codes(rng, real[:1], 20000, 0.1),
                             12)
  rate = (flipped != real[:1]).mean()
  assert 0.09 < rate < 0.11, rate
  text = tool.growth_table(real, rng, 0.01, [100000])
  lines = [line for line in text.splitlines()
           if line.startswith("| ") and line[2].isdigit()]
  assert [line.split(" | ")[0] for line in lines] == [
      "| 7,000", "| 14,000", "| 35,000", "| 70,000", "| 100,000"]
  assert lines[-1].split(" | ")[1] == "-"  # No real subset of 100,000.
  assert "(N / 7,000)^" in text
