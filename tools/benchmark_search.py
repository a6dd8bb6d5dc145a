r"""Benchmarks Hamming search: dhe_tf.index backends side by side, a NumPy scan.

    python tools/benchmark_search.py --num_codes=1000000,10000000 \
        --bits=32,64 --model_dirs=runs/dhe32,runs/dhe64 \
        --backends=faiss,distinct --queries=1000 --radius_queries=100 \
        --threads=1 > tools/results/benchmark_search/results_distinct.md

(runs/dhe32: `python -m dhe_tf.train --flagfile=flags/fashion_mnist_dhe.flags
--bits=32 --seed=0 --model_dir=runs/dhe32`, ~5 min on 2 CPU cores; the same
with --bits=64.) About 25 minutes on 2 shared CPU cores, most of it today's
"faiss" backend answering radius queries on learned codes at 10^7.

--backends takes any of dhe_tf.index.BACKENDS (faiss, milvus, distinct...)
and "numpy" (dhe_tf.evaluation.metrics.retrieve: XOR + np.bitwise_count,
k nearest only). For each size in --num_codes, kind of codes, code length
and backend, one row of a Markdown table:

    distinct        distinct codes among the N
    build s         dhe_tf.index.build (codes.npz, the backend's files,
                    checksums)
    MB on disk      the whole index directory, codes.npz included
    open s          dhe_tf.index.open_index (checksums verified, codes.npz
                    read); 1st radius s: the first radius query (today's
                    "faiss" backend builds its IndexBinaryMultiHash there)
    RSS MB          resident memory of the open index, after a warm-up
                    query of each kind (VmRSS after minus before)
    k q/s           queries/s for the --k nearest, one batch of --queries,
                    the best of --repeats; the ratio to "faiss"
                    (IndexBinaryFlat over all N codes)
    radius q/s      queries/s within --radius, one batch of --radius_queries,
                    and ids returned per second; the ratio to "faiss"
                    (IndexBinaryMultiHash over all N codes)
    identical       the k nearest (ids and distances) equal those of the
                    NumPy scan (or, without "numpy", of "faiss", itself
                    checked against it in tests/), and the radius results
                    those of "faiss"

The backends are built and opened one after the other, then timed in turn
within each repeat, so load from other jobs falls on all of them alike.

Codes:
- random: uniform random bits (--bits), queries drawn the same way.
- learned (--model_dirs, runs of dhe_tf.train): the codes of all 70,000
  Fashion-MNIST images (--data_dir) under the run's model; N of them drawn
  with replacement, every bit flipped with probability --flip (images of the
  same kind at scale, seen with small differences); the queries are drawn
  the same way. How distinct codes grow with N is printed for real subsets
  of the 70,000 and for the draws, so the model can be judged.

Milvus is embedded Milvus Lite (a local file), whose inserts are slow:
--max_codes=milvus=100000 caps the number of codes it indexes (the row says
how many).
"""

import ctypes
import os
import platform
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np

from dhe_tf.core import codes as codes_lib
from dhe_tf.core.errors import ConfigError
from dhe_tf import index as index_lib
from dhe_tf.evaluation import metrics
from dhe_tf.index import distinct_backend

_NUMPY = "numpy"  # The reference scan, not an index backend.
_AVAILABLE = (*index_lib.BACKENDS, _NUMPY)
# Subsets of the 70,000 real codes whose distinct codes are counted.
_SUBSETS = (7_000, 14_000, 35_000, 70_000)
_DRAW_CHUNK = 1 << 18  # Codes drawn (and flipped) at a time.

flags.DEFINE_list("num_codes", ["1000000"], "Sizes of the index (codes).")
flags.DEFINE_list("bits", ["32", "48"], "Code lengths of the random codes.")
flags.DEFINE_integer("queries", 1000, "Queries per batch, k nearest.")
flags.DEFINE_integer("radius_queries", 100, "Queries per batch, radius.")
flags.DEFINE_integer("k", 100, "Neighbours per query.")
flags.DEFINE_integer("radius", 2, "Hamming radius of the radius search.")
flags.DEFINE_list("backends", list(_AVAILABLE),
                  f"Any of {', '.join(_AVAILABLE)}.")
flags.DEFINE_list("model_dirs", [],
                  "Runs of dhe_tf.train whose codes to benchmark too.")
flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist",
                    "IDX image files the trained models encode.")
flags.DEFINE_float("flip", 0.01,
                   "Bit-flip probability of the drawn learned codes.")
flags.DEFINE_list("max_codes", [],
                  "BACKEND=N pairs: index at most N codes in that backend "
                  "(e.g. milvus=100000: Milvus Lite inserts slowly); others "
                  "index all.")
flags.DEFINE_integer("repeats", 2, "Timed runs of each search; the best.")
flags.DEFINE_integer("threads", 0,
                     "FAISS (OpenMP) threads; 0: FAISS's default.")
flags.DEFINE_integer("seed", 0, "Seed of random codes, draws and queries.")

FLAGS = flags.FLAGS


def random_codes(rng, num_codes, bits):
  """uint8 [num_codes, ceil(bits / 8)]: uniform random packed codes."""
  packed = rng.integers(0, 256, (num_codes, -(-bits // 8)), dtype=np.uint8)
  packed[:, -1] &= np.uint8((0xFF << (-bits % 8)) & 0xFF)  # Zero padding.
  return packed


def encode_images(model_dir, data_dir):
  """uint8 [70,000, K] 0/1: the codes of every IDX image under the run's
  model (dhe_tf.model.inference.encode)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from dhe_tf.data import idx_files  # pylint: disable=g-import-not-at-top
  from dhe_tf.model import inference  # pylint: disable=g-import-not-at-top
  from dhe_tf.model import network  # pylint: disable=g-import-not-at-top
  images, labels = idx_files.load_idx_directory(data_dir)
  model = network.load_model(os.path.join(model_dir, "model.keras"),
                             compile=False)
  one_hot = np.eye(labels.max() + 1, dtype=np.float32)[labels]
  codes, _ = inference.encode(
      model, tf.data.Dataset.from_tensor_slices((images, one_hot)),
      batch_size=1000)
  return codes


def learned_codes(rng, codes, num_codes, flip):
  """uint8 [num_codes, ceil(K / 8)]: packed rows of `codes` (0/1 [M, K])
  drawn with replacement, each bit flipped with probability `flip`."""
  bits = codes.shape[1]
  packed = []
  for start in range(0, num_codes, _DRAW_CHUNK):
    size = min(_DRAW_CHUNK, num_codes - start)
    drawn = codes[rng.integers(0, len(codes), size)]
    packed.append(codes_lib.pack(drawn ^ (rng.random((size, bits)) < flip)))
  return np.concatenate(packed)


def distinct_count(packed):
  return len(distinct_backend.group(packed)[1]) - 1


def growth_table(codes, rng, flip, sizes):
  """Markdown: distinct codes of nested random subsets of the real codes and
  of draws of the same sizes (then of `sizes`), with the power law of the
  real subsets carried to each size."""
  order = rng.permutation(len(codes))
  real = {n: distinct_count(codes_lib.pack(codes[order[:n]]))
          for n in _SUBSETS if n <= len(codes)}
  small, large = min(real), max(real)
  exponent = np.log(real[large] / real[small]) / np.log(large / small)
  lines = [f"Distinct codes against N (real: nested random subsets of the "
           f"{len(codes):,} images' codes; power law {real[small]:,} · "
           f"(N / {small:,})^{exponent:.2f} fitted to them; drawn: with "
           f"replacement, bits flipped with p = {flip}):", "",
           "| N | real images | power law | drawn |", "|---|---|---|---|"]
  for n in sorted({*real, *sizes}):
    law = real[small] * (n / small) ** exponent
    drawn = distinct_count(learned_codes(rng, codes, n, flip))
    seen = f"{real[n]:,}" if n in real else "-"
    lines.append(f"| {n:,} | {seen} | {law:,.0f} | {drawn:,} |")
  return "\n".join(lines)


def _timed(function, *args):
  """(seconds, result) of function(*args)."""
  start = time.perf_counter()
  result = function(*args)
  return time.perf_counter() - start, result


def _rss_mb():
  """Resident memory (VmRSS), after handing freed heap back to the system
  (glibc's malloc_trim), so that what earlier steps freed is not counted."""
  try:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
  except (OSError, AttributeError):
    pass  # Not glibc: RSS as it is.
  with open("/proc/self/status", encoding="ascii") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def _size_mb(path):
  if os.path.isfile(path):
    return os.path.getsize(path) / 1e6
  return sum(os.path.getsize(os.path.join(d, f))
             for d, _, files in os.walk(path) for f in files) / 1e6


class _NumpyScan:
  """The reference scan behind the interface the timing loop uses."""

  def __init__(self, path, bits):
    self.database = codes_lib.unpack(np.load(path), bits)
    self.bits = bits

  def search(self, queries, k):
    return metrics.retrieve(codes_lib.unpack(queries, self.bits),
                            self.database, k)

  radius_search = None

  def close(self):
    pass


def open_backend(backend, packed, bits, path):
  """Builds and opens one backend: (index, facts of the build and open)."""
  start = time.perf_counter()
  label = backend
  if backend == _NUMPY:
    path += ".npy"
    np.save(path, packed)
  else:
    recorded = index_lib.build(path, packed, bits=bits,
                               fingerprint="benchmark",
                               backend=backend)["settings"]
    if recorded.get("layout") == "flat":
      label += " (flat fallback)"
    elif recorded.get("layout"):
      label += f" (radius: {recorded['radius']})"
  build = time.perf_counter() - start
  rss = _rss_mb()
  start = time.perf_counter()
  index = (_NumpyScan(path, bits) if backend == _NUMPY
           else index_lib.open_index(path))
  opened = time.perf_counter() - start
  return index, dict(build=build, size=_size_mb(path), open=opened,
                     rss_before=rss, path=path, label=label)


def _warm_up(index, queries, k, radius, facts):
  index.search(queries[:10], k)
  start = time.perf_counter()
  if index.radius_search is not None:
    try:
      index.radius_search(queries[:1], radius)
    except ConfigError as e:  # Milvus: too many results.
      facts["radius_error"] = str(e)
  facts["first_radius"] = time.perf_counter() - start
  facts["rss"] = _rss_mb() - facts.pop("rss_before")


def _same(found, reference):
  if reference is None:
    return None
  return all(np.array_equal(a, b) for a, b in zip(found, reference))


def _same_rows(found, reference):
  if found is None or reference is None:
    return None
  return len(found) == len(reference) and all(
      _same(row, want) for row, want in zip(found, reference))


def _open_all(packed, bits, queries, work_dir, settings):
  """Builds, opens and warms up each backend: ({backend: index},
  {backend: facts})."""
  opened, facts = {}, {}
  for backend in settings["backends"]:
    count = settings["max_codes"].get(backend) or len(packed)
    opened[backend], facts[backend] = open_backend(
        backend, packed[:count], bits,
        os.path.join(work_dir, f"{backend}_{bits}"))
    facts[backend]["count"] = count
    _warm_up(opened[backend], queries, settings["k"], settings["radius"],
             facts[backend])
  return opened, facts


def _time_all(opened, facts, queries, radius_queries, settings):
  """Times every backend in turn, --repeats times: ({backend: best seconds
  of "k" and "radius"}, {backend: (k nearest, radius rows or None)})."""
  best = {backend: {"k": float("inf"), "radius": float("inf")}
          for backend in opened}
  results = {}
  for _ in range(settings["repeats"]):
    for backend, index in opened.items():
      seconds, found = _timed(index.search, queries, settings["k"])
      best[backend]["k"] = min(best[backend]["k"], seconds)
      rows = None
      if index.radius_search and "radius_error" not in facts[backend]:
        seconds, rows = _timed(index.radius_search, radius_queries,
                               settings["radius"])
        best[backend]["radius"] = min(best[backend]["radius"], seconds)
      results[backend] = (found, rows)
      del found, rows  # Free the last repeat's results before the next.
  return best, results


def bench(kind, packed, queries, radius_queries, bits, work_dir, settings):
  """Table rows for one set of codes (packed uint8 [N, B])."""
  settings = dict(settings, backends=sorted(
      settings["backends"], key=lambda name: (name != _NUMPY,
                                              name != "faiss")))
  num_distinct = distinct_count(packed)
  opened, facts = _open_all(packed, bits, queries, work_dir, settings)
  best, results = _time_all(opened, facts, queries, radius_queries, settings)
  for backend, index in opened.items():
    index.close()
    path = facts[backend]["path"]
    (os.remove if os.path.isfile(path) else shutil.rmtree)(path)
  complete = {b for b in opened if facts[b]["count"] == len(packed)}
  k_reference = next((results[b][0] for b in (_NUMPY, "faiss")
                      if b in complete), None)
  radius_reference = results["faiss"][1] if "faiss" in complete else None
  rows = []
  for backend in opened:
    fact, (found, found_rows) = facts[backend], results[backend]
    radius_qps = results_per_s = float("nan")
    if found_rows is not None:
      radius_qps = len(radius_queries) / best[backend]["radius"]
      results_per_s = (sum(len(ids) for ids, _ in found_rows) * radius_qps /
                       len(radius_queries))
    same = [_same(found, k_reference),
            _same_rows(found_rows, radius_reference)]
    same = [s for s in same if s is not None]
    rows.append(dict(
        kind=kind, bits=bits, count=fact["count"], distinct=num_distinct,
        backend=fact["label"], build=fact["build"], size=fact["size"],
        open=fact["open"], first_radius=fact["first_radius"],
        rss=fact["rss"], k_qps=len(queries) / best[backend]["k"],
        radius_qps=radius_qps, results_per_s=results_per_s,
        same=("n/a (subset)" if backend not in complete else
              "-" if not same else "yes" if all(same) else "NO")))
    print(_cells(rows[-1], {}), file=sys.stderr, flush=True)
  reference = dict(zip(opened, rows)).get("faiss")
  return [_cells(row, reference) for row in rows]


def _ratio(value, reference):
  if not reference or not np.isfinite(value) or not np.isfinite(reference):
    return "-"
  return f"{value / reference:.2f}"


def _cells(row, reference):
  """The table cells of a row; ratios to `reference` (the "faiss" row)."""
  reference = reference or {}
  has_radius = np.isfinite(row["radius_qps"])
  return [
      row["kind"], str(row["bits"]), f"{row['count']:,}",
      f"{row['distinct']:,}", row["backend"], f"{row['build']:.2f}",
      f"{row['size']:.1f}", f"{row['open']:.2f}",
      f"{row['first_radius']:.2f}", f"{row['rss']:.0f}",
      f"{row['k_qps']:,.0f}", _ratio(row["k_qps"], reference.get("k_qps")),
      f"{row['radius_qps']:,.1f}" if has_radius else "-",
      f"{row['results_per_s']:,.0f}" if has_radius else "-",
      _ratio(row["radius_qps"], reference.get("radius_qps")),
      row["same"]]


def table(rows, k, radius):
  header = ["codes", "bits", "N", "distinct", "backend", "build s",
            "MB on disk", "open s", "1st radius s", "RSS MB", f"k={k} q/s",
            "vs IndexBinaryFlat", f"radius {radius} q/s",
            f"radius {radius} results/s", "vs IndexBinaryMultiHash",
            "identical to the flat scan"]
  lines = ["| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def machine():
  """One line: CPU model, cores, load average."""
  model = platform.processor() or "unknown CPU"
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      model = next(line.split(":", 1)[1].strip() for line in f
                   if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
  return f"{model}, {os.cpu_count()} cores, load average {load}"


def _fail(message):
  print(f"benchmark_search: error: {message}", file=sys.stderr)
  sys.exit(2)


def _max_codes(pairs, backends):
  """{backend: N} from --max_codes's BACKEND=N pairs."""
  caps = {}
  for pair in pairs:
    backend, _, number = pair.partition("=")
    if backend not in backends or not number.isdigit():
      _fail(f"--max_codes takes BACKEND=N, BACKEND one of --backends "
            f"({', '.join(backends)}). Received: {pair}")
    caps[backend] = int(number)
  return caps


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  unknown = sorted(set(FLAGS.backends) - set(_AVAILABLE))
  if unknown:
    _fail(f"Unknown backends {unknown}. Available: {', '.join(_AVAILABLE)}")
  if FLAGS.threads:
    import faiss  # pylint: disable=g-import-not-at-top
    faiss.omp_set_num_threads(FLAGS.threads)
  settings = dict(backends=FLAGS.backends, k=FLAGS.k, radius=FLAGS.radius,
                  repeats=FLAGS.repeats,
                  max_codes=_max_codes(FLAGS.max_codes, FLAGS.backends))
  sizes = [int(n) for n in FLAGS.num_codes]
  rng = np.random.default_rng(FLAGS.seed)
  started = time.perf_counter()
  print(f"Machine at the start: {machine()}.", flush=True)
  real = {model_dir: encode_images(model_dir, FLAGS.data_dir)
          for model_dir in FLAGS.model_dirs}
  for model_dir, codes in real.items():
    print(f"\n{os.path.basename(model_dir.rstrip('/'))}, "
          f"{codes.shape[1]} bits:\n\n"
          f"{growth_table(codes, rng, FLAGS.flip, sizes)}\n", flush=True)
  rows = []
  with tempfile.TemporaryDirectory() as work_dir:
    for size in sizes:
      for bits in [int(b) for b in FLAGS.bits]:
        rows += bench("random", random_codes(rng, size, bits),
                      random_codes(rng, FLAGS.queries, bits),
                      random_codes(rng, FLAGS.radius_queries, bits), bits,
                      work_dir, settings)
      for model_dir, codes in real.items():
        kind = f"learned ({os.path.basename(model_dir.rstrip('/'))})"
        rows += bench(kind, learned_codes(rng, codes, size, FLAGS.flip),
                      learned_codes(rng, codes, FLAGS.queries, FLAGS.flip),
                      learned_codes(rng, codes, FLAGS.radius_queries,
                                    FLAGS.flip),
                      codes.shape[1], work_dir, settings)
  threads = FLAGS.threads or "FAISS's default"
  print(f"\n{FLAGS.queries} queries per batch for k = {FLAGS.k}, "
        f"{FLAGS.radius_queries} for radius {FLAGS.radius}; best of "
        f"{FLAGS.repeats}; FAISS threads: {threads}; learned codes drawn "
        f"with bit-flip probability {FLAGS.flip}; "
        f"{time.perf_counter() - started:.0f} s in all. Machine at the end: "
        f"{machine()}.\n")
  print(table(rows, FLAGS.k, FLAGS.radius))


if __name__ == "__main__":
  app.run(main)
