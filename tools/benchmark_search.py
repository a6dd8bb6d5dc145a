r"""Benchmarks Hamming top-k search: every dhe_tf.index backend, a NumPy scan.

    python tools/benchmark_search.py --num_codes=1000000 --bits=32,48 \
        --queries=1000 --k=100 --backends=faiss,milvus,numpy \
        --model_dirs=runs/b32,runs/b48 \
        --data_dir=/usr/share/datasets/fashion-mnist

--backends takes any of dhe_tf.index.BACKENDS (faiss, milvus...) and
"numpy". Prints a Markdown table: for each kind of codes, code length and
backend, the index build time and size on disk (the whole dhe_tf.index
directory, codes.npz included), queries per second for one batch of
--queries queries (the best of --repeats runs), the ratio to FAISS
IndexBinaryFlat, and whether the top-k ids and distances equal those of the
NumPy scan.

Codes:
- random: uniform random bits, queries drawn the same way.
- trained (with --model_dirs, runs of dhe_tf.train): the codes of the
  images in --data_dir (Fashion-MNIST IDX files: all 70,000) under each
  run's model, then copies of them, every bit flipped with probability
  --flip, until --num_codes; the queries are the codes of --queries of
  those images (so each has an exact duplicate in the index).

"numpy" is dhe_tf.evaluation.metrics.retrieve: XOR + np.bitwise_count over packed
words, chunked over queries in threads, with a partial sort (tie-stable).
Milvus is embedded Milvus Lite (a local file), whose inserts are slow:
--max_codes=milvus=100000 caps the number of codes it indexes (the row says
how many). About 18 minutes on 2 shared CPU cores for the command above, most
of it Milvus Lite inserting 1,000,000 rows 4 times.
"""

import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np

from dhe_tf.core import codes as codes_lib
from dhe_tf import index as index_lib
from dhe_tf.evaluation import metrics

_NUMPY = "numpy"  # The reference scan, not an index backend.
_AVAILABLE = (*index_lib.BACKENDS, _NUMPY)

flags.DEFINE_integer("num_codes", 1_000_000, "Codes in the index.")
flags.DEFINE_list("bits", ["32", "48"], "Code lengths of the random codes.")
flags.DEFINE_integer("queries", 1000, "Queries per batch.")
flags.DEFINE_integer("k", 100, "Neighbours per query.")
flags.DEFINE_list("backends", list(_AVAILABLE),
                  f"Any of {', '.join(_AVAILABLE)}.")
flags.DEFINE_list("model_dirs", [],
                  "Runs of dhe_tf.train whose codes to benchmark too.")
flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist",
                    "IDX image files the trained models encode.")
flags.DEFINE_float("flip", 0.05,
                   "Bit-flip probability of the copies of trained codes.")
flags.DEFINE_list("max_codes", [],
                  "BACKEND=N pairs: index at most N codes in that backend "
                  "(e.g. milvus=100000: Milvus Lite inserts slowly); others "
                  "index all.")
flags.DEFINE_integer("repeats", 2, "Timed runs of each search; the best.")
flags.DEFINE_integer("seed", 0, "Seed of random codes, flips and queries.")

FLAGS = flags.FLAGS


def random_codes(rng, num_codes, num_queries, bits):
  return (rng.integers(0, 2, (num_codes, bits), dtype=np.uint8),
          rng.integers(0, 2, (num_queries, bits), dtype=np.uint8))


def trained_codes(rng, model_dir, data_dir, num_codes, num_queries, flip):
  """Codes of real images under a run's model, grown by noisy copies."""
  from dhe_tf.model import network as model_lib  # pylint: disable=g-import-not-at-top
  from dhe_tf.data import idx_files  # pylint: disable=g-import-not-at-top
  images, _ = idx_files.load_idx_directory(data_dir)
  model = model_lib.load_model(os.path.join(model_dir, "model.keras"))
  encoder = model_lib.encoder(model)
  codes = np.concatenate([
      codes_lib.binarize(encoder(images[i:i + 1000].astype(np.float32),
                                 training=False))
      for i in range(0, len(images), 1000)])
  base = codes[rng.integers(0, len(codes), num_codes - len(codes))]
  copies = base ^ (rng.random(base.shape) < flip).astype(np.uint8)
  database = np.concatenate([codes, copies])[:num_codes]
  queries = codes[rng.choice(len(codes), num_queries, replace=False)]
  return database, queries, len(images)


def _best_time(function, repeats):
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    result = function()
    best = min(best, time.perf_counter() - start)
  return best, result


def _size_mb(path):
  total = sum(os.path.getsize(os.path.join(d, f))
              for d, _, files in os.walk(path) for f in files)
  return total / 1e6


def bench_backend(backend, database, queries, bits, k, work_dir, repeats):
  """(build s, MB on disk, queries/s, (ids, distances)) of one backend."""
  packed = codes_lib.pack(database)
  queries_packed = codes_lib.pack(queries)
  path = os.path.join(work_dir, f"{backend}_{bits}")
  if backend == _NUMPY:
    start = time.perf_counter()
    np.save(path + ".npy", packed)
    build = time.perf_counter() - start
    size = os.path.getsize(path + ".npy") / 1e6
    seconds, result = _best_time(
        lambda: metrics.retrieve(queries, database, k), repeats)
    return build, size, len(queries) / seconds, result
  start = time.perf_counter()
  index_lib.build(path, packed, bits=bits, fingerprint="benchmark",
                  backend=backend)
  with index_lib.open_index(path) as index:
    build = time.perf_counter() - start
    index.search(queries_packed[:10], k)  # Warm up.
    seconds, result = _best_time(lambda: index.search(queries_packed, k),
                                 repeats)
  size = _size_mb(path)
  shutil.rmtree(path)
  return build, size, len(queries) / seconds, result


def bench(kind, database, queries, bits, backends, k, work_dir, repeats,
          max_codes):
  """Table rows for one set of codes; max_codes: {backend: N}."""
  rows, timings, reference = [], {}, None
  # The NumPy scan first: its result is the reference.
  for backend in sorted(backends, key=lambda name: name != _NUMPY):
    if reference is None and backend != _NUMPY:
      reference = metrics.retrieve(queries, database, k)
    subset = database[:max_codes.get(backend) or len(database)]
    build, size, qps, (ids, distances) = bench_backend(
        backend, subset, queries, bits, k, work_dir, repeats)
    timings[backend] = qps
    if backend == _NUMPY:
      reference = (ids, distances)
    if len(subset) == len(database):
      same = (np.array_equal(ids, reference[0]) and
              np.array_equal(distances, reference[1]))
      same = "yes" if same else "NO"
    else:
      same = "n/a (subset)"
    rows.append([kind, str(bits), backend, f"{len(subset):,}",
                 f"{build:.2f}", f"{size:.1f}", f"{qps:,.0f}", None, same])
    print(" | ".join(str(cell) for cell in rows[-1]), file=sys.stderr,
          flush=True)
  for row in rows:
    faiss_qps = timings.get("faiss")
    ratio = float(row[6].replace(",", "")) / faiss_qps if faiss_qps else None
    row[7] = f"{ratio:.2f}" if ratio is not None else "-"
    if row[3] != f"{len(database):,}":
      row[7] += " (fewer codes)"
  return rows


def table(rows):
  header = ["codes", "bits", "backend", "indexed codes", "build s",
            "size on disk MB", "queries/s", "vs FAISS IndexBinaryFlat",
            "same top-k as NumPy"]
  lines = ["| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


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
  max_codes = _max_codes(FLAGS.max_codes, FLAGS.backends)
  rng = np.random.default_rng(FLAGS.seed)
  started = time.perf_counter()
  rows = []
  with tempfile.TemporaryDirectory() as work_dir:
    for bits in [int(b) for b in FLAGS.bits]:
      database, queries = random_codes(rng, FLAGS.num_codes, FLAGS.queries,
                                       bits)
      rows += bench("random", database, queries, bits, FLAGS.backends,
                    FLAGS.k, work_dir, FLAGS.repeats, max_codes)
    for model_dir in FLAGS.model_dirs:
      database, queries, num_images = trained_codes(
          rng, model_dir, FLAGS.data_dir, FLAGS.num_codes, FLAGS.queries,
          FLAGS.flip)
      kind = f"trained ({os.path.basename(model_dir.rstrip('/'))})"
      rows += bench(kind, database, queries, database.shape[1],
                    FLAGS.backends, FLAGS.k, work_dir, FLAGS.repeats,
                    max_codes)
      print(f"{kind}: {num_images:,} images encoded, grown to "
            f"{len(database):,} codes by copies with bit-flip probability "
            f"{FLAGS.flip}", file=sys.stderr)
  print(f"{FLAGS.queries} queries per batch, top-{FLAGS.k}; "
        f"{time.perf_counter() - started:.0f} s in all.\n")
  print(table(rows))


if __name__ == "__main__":
  app.run(main)
