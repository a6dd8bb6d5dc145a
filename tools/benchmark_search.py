r"""Benchmarks Hamming search: dhe_tf.index backends side by side, a NumPy
scan and FAISS's approximate IndexBinaryHNSW.

    python tools/benchmark_search.py --num_codes=1000000,10000000 \
        --bits=32,64 --model_dirs=runs/dhe32,runs/dhe64 \
        --backends=faiss,distinct --queries=1000 --radius_queries=100 \
        --threads=1 > tools/results/benchmark_search/results_distinct.md

(runs/dhe32: `python -m dhe_tf.train --flagfile=flags/fashion_mnist_dhe.flags
--bits=32 --seed=0 --model_dir=runs/dhe32`, ~5 min on 2 CPU cores; the same
with --bits=64.) About 25 minutes on 2 shared CPU cores, most of it today's
"faiss" backend answering radius queries on learned codes at 10^7.

10^8 codes, with HNSW (over its first 10^7 codes: its default --max_codes),
each backend in memory on its own, and a cold open:

    python tools/benchmark_search.py --num_codes=100000000 --bits=32,64 \
        --model_dirs=runs/dhe32,runs/dhe64 --backends=faiss,distinct,hnsw \
        --queries=1000 --radius_queries=10 --threads=1 --one_at_a_time \
        --drop_caches

Measured with --bits=64, runs/dhe32 only, --max_codes=hnsw=1000000 and
--repeats=1 (random 64-bit and learned 32-bit codes, 2 shared cores): 20
minutes, 10.2 GB peak resident memory. Each set of codes takes 5-10 minutes
without HNSW: drawing the codes, counting the distinct ones and building
"distinct" sort all 10^8; the flat scan answers 8 k-NN queries/s (hence
--max_reference_queries), IndexBinaryMultiHash 0.1 radius queries/s on the
learned 32-bit codes, each returning ~7 million ids, ~110 MB (hence 10
radius queries). IndexBinaryHNSW took 90 s over 10^6 random 64-bit codes
on one thread and grows faster than N: at its default cap of 10^7 codes,
about half an hour for each set of codes (estimated), 2-3 hours for the
command above. Without --one_at_a_time the backends are open together:
"faiss" and the flat fallback of "distinct" each hold 5.8 GB over 10^8
random 64-bit codes after their first radius query (IndexBinaryMultiHash's
tables), ~17 GB at the peak (scaled from 10^7). Leave "numpy" out at 10^8
(about 1 query/s); it never unpacks more than 2^20 codes at a time, and
the codes are drawn chunk by chunk into one array.

--backends takes any of dhe_tf.index.BACKENDS (faiss, milvus, distinct...)
and two references that are not index backends: "numpy"
(dhe_tf.evaluation.metrics.retrieve: XOR + np.bitwise_count, k nearest only)
and "hnsw" (faiss.IndexBinaryHNSW, approximate, k nearest only: --hnsw_m
neighbours per node, --hnsw_ef_construction, --hnsw_ef_search; FAISS
searches with max(efSearch, k)). For each size in --num_codes, kind of
codes, code length and backend, one row of a Markdown table:

    N               codes the backend indexed: all, or its --max_codes
    distinct        distinct codes among all N
    build s         dhe_tf.index.build (the index's files: the codes, the
                    backend's files, checksums); numpy: the codes saved;
                    hnsw: IndexBinaryHNSW built and written
    MB on disk      the whole index directory (numpy, hnsw: one file)
    open s          dhe_tf.index.open_index (its checks of the index's
                    files included), in this process; with --drop_caches the
                    index's files are evicted from the page cache first, so
                    the open reads them from disk (cold); 1st radius s: the
                    first radius query (today's "faiss" backend builds its
                    IndexBinaryMultiHash there)
    RSS MB          resident memory of the open index, after a warm-up
                    query of each kind (VmRSS after minus before)
    RSS B/code      the same in bytes per code it indexed
    k q/s           queries/s for the --k nearest, one batch of --queries,
                    the best of --repeats; the ratio to "faiss"
                    (IndexBinaryFlat over all N codes, also for a row
                    capped by --max_codes)
    recall@k        `recall_at_k`, which counts distances so that a tie
                    kept instead of another is no miss: against the exact k
                    nearest over the same codes ("numpy" or "faiss" over
                    all N, else a flat scan of the codes the backend
                    indexed); 1 for every exact backend (milvus included:
                    Milvus Lite has BIN_FLAT only), below 1 where hnsw
                    missed a neighbour
    radius q/s      queries/s within --radius, one batch of --radius_queries,
                    and ids returned per second; the ratio to "faiss"
                    (IndexBinaryMultiHash over all N codes)
    identical       the k nearest (ids and distances) equal those of the
                    NumPy scan (or, without "numpy", of "faiss", itself
                    checked against it in tests/), and the radius results
                    those of "faiss"; "no (approximate)" for hnsw when
                    not; "n/a (subset)" under --max_codes

The reference backends (faiss, numpy, hnsw) answer only the first
--max_reference_queries queries of each batch (0: all of them): the flat
scan answers ~8 k-NN queries/s at 10^8 codes, so 1,000 would take two
minutes a repeat. The ratios stay queries/s against queries/s, and the
identical check and the recall compare the first --max_reference_queries
answers of every backend with theirs.

The backends are built and opened one after the other, then timed in turn
within each repeat, so load from other jobs falls on all of them alike;
with --one_at_a_time each is built, opened, timed and deleted before the
next, so that only one is in memory at a time.

Codes:
- random: uniform random bits (--bits), queries drawn the same way.
- learned (--model_dirs, runs of dhe_tf.train): the codes of all 70,000
  Fashion-MNIST images (--data_dir) under the run's model; N of them drawn
  with replacement, every bit flipped with probability --flip (images of the
  same kind at scale, seen with small differences); the queries are drawn
  the same way. How distinct codes grow with N is printed for real subsets
  of the 70,000 and for the draws, so the model can be judged.

--max_codes=BACKEND=N caps the codes a backend indexes (its first N; the
row says how many): Milvus Lite (embedded Milvus, a local file) inserts
slowly (milvus=100000), and IndexBinaryHNSW builds slowly and takes ~150
bytes a code, so "hnsw" indexes at most 10^7 codes unless told otherwise
(hnsw=0: all).
"""

import ctypes
import dataclasses
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
from dhe_tf.index.faiss_backend import FaissBackend

# Subsets of the 70,000 real codes whose distinct codes are counted.
_SUBSETS = (7_000, 14_000, 35_000, 70_000)
_DRAW_CHUNK = 1 << 18  # Codes drawn (and flipped, padded, added) at a time.
_SCAN_CHUNK = 1 << 20  # Codes the "numpy" scan unpacks at a time (64 MB).
# Caps of --max_codes unless it names the backend (0: none).
_DEFAULT_MAX_CODES = {"hnsw": 10_000_000}

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Settings:
  """What `bench` measures and how: main's flags, or a test's choice.

  max_codes: {backend: N}, index at most N codes there (0: all);
  max_reference_queries: queries of each batch the reference backends
  (_REFERENCES) answer (0: all).
  """
  backends: tuple
  k: int = 100
  radius: int = 2
  repeats: int = 2
  max_codes: dict = dataclasses.field(
      default_factory=lambda: dict(_DEFAULT_MAX_CODES))
  max_reference_queries: int = 200
  hnsw_m: int = 16
  hnsw_ef_construction: int = 40  # FAISS's default.
  hnsw_ef_search: int = 128
  drop_caches: bool = False
  one_at_a_time: bool = False


def _define_flags():
  """The command line's flags, defined only when run as a program, so that
  tests can import this module next to tools with flags of the same names."""
  defaults = Settings(backends=())
  flags.DEFINE_list("num_codes", ["1000000"], "Sizes of the index (codes).")
  flags.DEFINE_list("bits", ["32", "48"], "Code lengths of the random codes.")
  flags.DEFINE_integer("queries", 1000, "Queries per batch, k nearest.")
  flags.DEFINE_integer("radius_queries", 100, "Queries per batch, radius.")
  flags.DEFINE_integer("k", defaults.k, "Neighbours per query.")
  flags.DEFINE_integer("radius", defaults.radius,
                       "Hamming radius of the radius search.")
  flags.DEFINE_list("backends", list(_AVAILABLE),
                    f"Any of {', '.join(_AVAILABLE)}.")
  flags.DEFINE_list("model_dirs", [],
                    "Runs of dhe_tf.train whose codes to benchmark too.")
  flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist",
                      "IDX image files the trained models encode.")
  flags.DEFINE_float("flip", 0.01,
                     "Bit-flip probability of the drawn learned codes.")
  flags.DEFINE_list(
      "max_codes", [],
      "BACKEND=N pairs: index at most the first N codes in that backend "
      "(e.g. milvus=100000: Milvus Lite inserts slowly; 0: all); others "
      "index all, except " +
      ", ".join(f"{b}={n}" for b, n in _DEFAULT_MAX_CODES.items()) + ".")
  flags.DEFINE_integer(
      "max_reference_queries", defaults.max_reference_queries,
      f"The reference backends ({', '.join(_REFERENCES)}) answer at most "
      "this many of each batch (0: all): the flat scan is slow at 10^8 "
      "codes. Ratios stay queries/s to queries/s; identical and recall "
      "compare these first answers.", lower_bound=0)
  flags.DEFINE_integer("hnsw_m", defaults.hnsw_m,
                       "hnsw: neighbours per node (IndexBinaryHNSW's M).",
                       lower_bound=2)
  flags.DEFINE_integer("hnsw_ef_construction", defaults.hnsw_ef_construction,
                       "hnsw: efConstruction, candidates kept while building.",
                       lower_bound=1)
  flags.DEFINE_integer("hnsw_ef_search", defaults.hnsw_ef_search,
                       "hnsw: efSearch, candidates kept while searching "
                       "(FAISS uses max(efSearch, k)).", lower_bound=1)
  flags.DEFINE_bool(
      "drop_caches", defaults.drop_caches,
      "Evict each index's files from the page cache (fsync, then "
      "posix_fadvise DONTNEED; no root needed, other files untouched) "
      "before opening it, so that 'open s' is a cold open.")
  flags.DEFINE_bool(
      "one_at_a_time", defaults.one_at_a_time,
      "Build, open, time and delete each backend before the next, so that "
      "the peak memory is the largest backend's, not their sum (10^8 random "
      "64-bit codes: 'faiss' and 'distinct''s flat fallback hold ~8 GB "
      "each after a radius query); load from other jobs then no longer "
      "falls on all backends alike.")
  flags.DEFINE_integer("repeats", defaults.repeats,
                       "Timed runs of each search; the best.")
  flags.DEFINE_integer("threads", 0,
                       "FAISS (OpenMP) threads; 0: FAISS's default.")
  flags.DEFINE_integer("seed", 0, "Seed of random codes, draws and queries.")


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
  drawn with replacement, each bit flipped with probability `flip`.

  Drawn and flipped _DRAW_CHUNK codes at a time into one array: only the
  chunk is ever unpacked (10^8 64-bit codes: 800 MB packed, 6.4 GB not).
  """
  bits = codes.shape[1]
  packed = np.empty((num_codes, -(-bits // 8)), np.uint8)
  for start in range(0, num_codes, _DRAW_CHUNK):
    size = min(_DRAW_CHUNK, num_codes - start)
    drawn = codes[rng.integers(0, len(codes), size)]
    packed[start:start + size] = codes_lib.pack(
        drawn ^ (rng.random((size, bits)) < flip))
  return packed


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


def recall_at_k(found, exact):
  """Mean recall@k of the k nearest `found`, counted by distances.

  Per query, recall is |F ∩ E| / k for the found ids F and the exact answer
  E that shares the most ids with them: when several codes tie at the k-th
  distance, any k of them make an exact answer, and which ones a backend
  keeps is no error. That maximum is the size of the multiset intersection
  of the two distance lists, divided by k: every code nearer than the k-th
  distance is in every exact answer, and at the k-th distance an exact
  answer can take the found ones among its ties. Found ids of -1 (no code
  found) are misses. It assumes what every backend here returns: distinct
  ids with their true Hamming distances.

  Args:
    found: (ids int64 [Q', k'], distances int64 [Q', k']), Q' ≥ Q.
    exact: (ids, distances) [Q, k'] of an exact search over the same codes
      for the first Q of the same queries (k' = min(k, codes)).

  Returns:
    The mean over the Q queries, in [0, 1].
  """
  exact_distances = exact[1]
  num_queries, k = exact_distances.shape
  ids, distances = (array[:num_queries] for array in found)
  # Distances 0..max of the exact ones, and one bin past them for misses
  # and farther codes, which match nothing.
  bins = int(exact_distances.max()) + 2
  distances = np.where(ids >= 0, np.minimum(distances, bins - 1), bins - 1)
  rows = np.arange(num_queries)[:, None] * bins

  def counts(values):
    return np.bincount((rows + values).ravel(),
                       minlength=num_queries * bins).reshape(-1, bins)

  matched = np.minimum(counts(distances), counts(exact_distances))
  return float(matched[:, :-1].sum() / (num_queries * k))


def _timed(function, *args):
  """(seconds, result) of function(*args)."""
  start = time.perf_counter()
  result = function(*args)
  return time.perf_counter() - start, result


def _trim_heap():
  """Hands freed heap back to the system (glibc's malloc_trim): FAISS's
  hash tables and graphs are many small allocations, which free() keeps in
  the process."""
  try:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
  except (OSError, AttributeError):
    pass  # Not glibc: nothing to do.


def _rss_mb():
  """Resident memory (VmRSS), after _trim_heap, so that what earlier steps
  freed is not counted."""
  _trim_heap()
  with open("/proc/self/status", encoding="ascii") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def _files(path):
  if os.path.isfile(path):
    return [path]
  return [os.path.join(d, f) for d, _, files in os.walk(path) for f in files]


def _size_mb(path):
  return sum(os.path.getsize(f) for f in _files(path)) / 1e6


def evict(path):
  """Drops the files at `path` (a file or a directory) from the page cache,
  so that the next read comes from disk.

  fsync writes their dirty pages, which the kernel cannot drop, then
  posix_fadvise(DONTNEED) drops the clean ones: no root is needed, and the
  page cache of other files (other jobs') stays, unlike writing to
  /proc/sys/vm/drop_caches.
  """
  for name in _files(path):
    fd = os.open(name, os.O_RDONLY)
    try:
      os.fsync(fd)
      os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
      os.close(fd)


def _padded(packed, width):
  """packed uint8 [N, B] with zero bytes up to `width` (FaissBackend.width)."""
  return np.pad(packed, ((0, 0), (0, width - packed.shape[1])))


def flat_scan(packed, queries, k):
  """The exact k nearest (ids, distances int64 [Q, min(k, N)]) of `queries`
  among `packed` [N, B], by faiss.IndexBinaryFlat as backend "faiss" finds
  them; the codes padded and added _DRAW_CHUNK at a time."""
  import faiss  # pylint: disable=g-import-not-at-top
  width = FaissBackend.width(packed.shape[1])
  flat = faiss.IndexBinaryFlat(8 * width)
  for start in range(0, len(packed), _DRAW_CHUNK):
    flat.add(_padded(packed[start:start + _DRAW_CHUNK], width))
  distances, ids = flat.search(_padded(queries, width), min(k, len(packed)))
  return ids.astype(np.int64), distances.astype(np.int64)


class _NumpyScan:
  """Reference "numpy": dhe_tf.evaluation.metrics.retrieve over the codes,
  _SCAN_CHUNK of them unpacked at a time, the chunks' k nearest merged by
  (distance, id), which is retrieve's order over all of them. Only the
  packed codes are kept (10^8 64-bit codes unpacked would be 6.4 GB)."""

  suffix = ".npy"
  approximate = False
  radius_search = None

  @staticmethod
  def build(path, packed, bits, settings):
    """Writes what __init__ reads at `path`; returns the row's label."""
    del bits, settings
    np.save(path, packed)
    return "numpy"

  def __init__(self, path, bits, settings):
    del settings
    self.packed = np.load(path)
    self.bits = bits

  def search(self, queries, k):
    queries = codes_lib.unpack(queries, self.bits)
    count = len(self.packed)
    ids = distances = None
    for start in range(0, count, _SCAN_CHUNK):
      chunk = codes_lib.unpack(self.packed[start:start + _SCAN_CHUNK],
                               self.bits)
      found, found_distances = metrics.retrieve(queries, chunk, k)
      if ids is None:
        ids, distances = found + start, found_distances
        continue
      ids = np.concatenate([ids, found + start], axis=1)
      distances = np.concatenate([distances, found_distances], axis=1)
      nearest = np.argsort(distances * count + ids, axis=1)[:, :k]
      ids = np.take_along_axis(ids, nearest, axis=1)
      distances = np.take_along_axis(distances, nearest, axis=1)
    return ids, distances

  def close(self):
    self.packed = None


class _Hnsw:
  """Reference "hnsw": faiss.IndexBinaryHNSW over the codes, padded to the
  width backend "faiss" gives them (FaissBackend.width); approximate, k
  nearest only."""

  suffix = ".faiss"
  approximate = True
  radius_search = None

  @staticmethod
  def build(path, packed, bits, settings):
    """Builds the graph, _DRAW_CHUNK codes at a time, and writes it to
    `path`; returns the row's label."""
    import faiss  # pylint: disable=g-import-not-at-top
    del bits
    width = FaissBackend.width(packed.shape[1])
    index = faiss.IndexBinaryHNSW(8 * width, settings.hnsw_m)
    index.hnsw.efConstruction = settings.hnsw_ef_construction
    for start in range(0, len(packed), _DRAW_CHUNK):
      index.add(_padded(packed[start:start + _DRAW_CHUNK], width))
    faiss.write_index_binary(index, path)
    return f"hnsw (M={settings.hnsw_m}, efSearch={settings.hnsw_ef_search})"

  def __init__(self, path, bits, settings):
    import faiss  # pylint: disable=g-import-not-at-top
    del bits
    self.index = faiss.read_index_binary(path)
    self.index.hnsw.efSearch = settings.hnsw_ef_search

  def search(self, queries, k):
    distances, ids = self.index.search(
        _padded(queries, self.index.code_size), min(k, self.index.ntotal))
    return ids.astype(np.int64), distances.astype(np.int64)

  def close(self):
    self.index = None


# The references that are not index backends, behind the interface the
# timing loop uses (search, radius_search or None, close).
_PSEUDO = {"numpy": _NumpyScan, "hnsw": _Hnsw}
_AVAILABLE = (*index_lib.BACKENDS, *_PSEUDO)
# Backends timed on at most --max_reference_queries queries of a batch.
_REFERENCES = ("faiss", *_PSEUDO)


def _build_index(path, packed, bits, backend):
  """dhe_tf.index.build with the backend's default settings: (the row's
  label, whether it is approximate)."""
  recorded = index_lib.build(path, packed, bits=bits,
                             fingerprint="benchmark",
                             backend=backend)["settings"]
  label, approximate = backend, False
  if recorded.get("layout") == "flat":
    label += " (flat fallback)"
  elif recorded.get("layout"):
    label += f" (radius: {recorded['radius']})"
  if backend == "milvus":
    label += f" ({recorded['index_type']})"
    approximate = recorded["index_type"] != "BIN_FLAT"
  return label, approximate


def open_backend(backend, packed, bits, path, settings):
  """Builds and opens one backend: (index, facts of the build and open)."""
  start = time.perf_counter()
  if backend in _PSEUDO:
    path += _PSEUDO[backend].suffix
    label = _PSEUDO[backend].build(path, packed, bits, settings)
    approximate = _PSEUDO[backend].approximate
  else:
    label, approximate = _build_index(path, packed, bits, backend)
  build = time.perf_counter() - start
  if settings.drop_caches:
    evict(path)
  rss = _rss_mb()
  start = time.perf_counter()
  index = (_PSEUDO[backend](path, bits, settings) if backend in _PSEUDO
           else index_lib.open_index(path))
  opened = time.perf_counter() - start
  return index, dict(build=build, size=_size_mb(path), open=opened,
                     rss_before=rss, path=path, label=label,
                     approximate=approximate)


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


def _answered(queries, settings):
  """How many of a batch the reference backends answer: the first
  --max_reference_queries (0: all)."""
  return min(len(queries), settings.max_reference_queries or len(queries))


def _batch(backend, queries, settings):
  """The queries `backend` answers: all, or for the reference backends the
  first _answered."""
  if backend in _REFERENCES:
    return queries[:_answered(queries, settings)]
  return queries


def _same(found, reference):
  """Whether the first rows of `found` (ids, distances) are `reference`."""
  if reference is None:
    return None
  return all(np.array_equal(a[:len(b)], b) for a, b in zip(found, reference))


def _same_rows(found, reference):
  if found is None or reference is None:
    return None
  return len(found) >= len(reference) and all(
      _same(row, want) for row, want in zip(found, reference))


def _open_all(backends, packed, bits, queries, work_dir, settings):
  """Builds, opens and warms up each of `backends`: ({backend: index},
  {backend: facts})."""
  opened, facts = {}, {}
  for backend in backends:
    count = min(settings.max_codes.get(backend) or len(packed), len(packed))
    opened[backend], facts[backend] = open_backend(
        backend, packed[:count], bits,
        os.path.join(work_dir, f"{backend}_{bits}"), settings)
    facts[backend]["count"] = count
    _warm_up(opened[backend], queries, settings.k, settings.radius,
             facts[backend])
  return opened, facts


def _time_all(opened, facts, queries, radius_queries, settings):
  """Times every backend in turn, --repeats times: ({backend: best seconds
  of "k" and "radius"}, {backend: its last answers}).

  The answers kept are the k nearest and radius rows of the queries the
  reference backends answer (compared with theirs), and the number of
  radius results; the rest is dropped as soon as it is counted, and the
  previous repeat's before the next search, so that at most one batch of
  radius results (~128 MB a query at 10^8 learned codes) is held beyond
  them.
  """
  best = {backend: {"k": float("inf"), "radius": float("inf")}
          for backend in opened}
  kept_k = _answered(queries, settings)
  kept_radius = _answered(radius_queries, settings)
  results = {}
  for _ in range(settings.repeats):
    for backend, index in opened.items():
      results.pop(backend, None)
      seconds, found = _timed(index.search,
                              _batch(backend, queries, settings), settings.k)
      best[backend]["k"] = min(best[backend]["k"], seconds)
      rows, hits = None, 0
      if index.radius_search and "radius_error" not in facts[backend]:
        seconds, rows = _timed(index.radius_search,
                               _batch(backend, radius_queries, settings),
                               settings.radius)
        best[backend]["radius"] = min(best[backend]["radius"], seconds)
        hits = sum(len(ids) for ids, _ in rows)
        rows = rows[:kept_radius]
      results[backend] = dict(
          found=tuple(array[:kept_k].copy() for array in found), rows=rows,
          hits=hits)
      del found, rows
  return best, results


def _close(index, path):
  """Closes `index` and deletes its files; the caller holds it no more, so
  its memory is freed before the next backend is built."""
  index.close()
  del index
  _trim_heap()
  (os.remove if os.path.isfile(path) else shutil.rmtree)(path)


def _measure(packed, bits, queries, radius_queries, work_dir, settings):
  """Builds, opens, times, closes and deletes the backends: all open
  together, or with one_at_a_time each on its own. ({backend: facts},
  {backend: best seconds}, {backend: answers}), in the order of
  settings.backends."""
  groups = ([(b,) for b in settings.backends] if settings.one_at_a_time
            else [settings.backends])
  facts, best, results = {}, {}, {}
  for group in groups:
    opened, group_facts = _open_all(group, packed, bits, queries, work_dir,
                                    settings)
    group_best, group_results = _time_all(opened, group_facts, queries,
                                          radius_queries, settings)
    for backend in group:
      _close(opened.pop(backend), group_facts[backend]["path"])
    facts.update(group_facts)
    best.update(group_best)
    results.update(group_results)
  return facts, best, results


def bench(kind, packed, queries, radius_queries, bits, work_dir, settings):
  """Table rows (lists of cells) for one set of codes (packed uint8 [N, B]):
  each backend of `settings` (a Settings) built, opened, timed, checked."""
  settings = dataclasses.replace(settings, backends=sorted(
      settings.backends, key=lambda name: (name != "numpy",
                                           name != "faiss")))
  num_distinct = distinct_count(packed)
  facts, best, results = _measure(packed, bits, queries, radius_queries,
                                  work_dir, settings)
  complete = {b for b in facts if facts[b]["count"] == len(packed)}
  k_reference = next((results[b]["found"] for b in ("numpy", "faiss")
                      if b in complete), None)
  radius_reference = (results["faiss"]["rows"] if "faiss" in complete
                      else None)
  # The exact k nearest over the codes each backend indexed, for the
  # queries the references answered.
  exact = {} if k_reference is None else {len(packed): k_reference}
  compared = queries[:_answered(queries, settings)]
  rows = []
  for backend in facts:
    fact, result = facts[backend], results[backend]
    count = fact["count"]
    if count not in exact:
      exact[count] = flat_scan(packed[:count], compared, settings.k)
    radius_qps = results_per_s = float("nan")
    if result["rows"] is not None:
      radius_qps = (len(_batch(backend, radius_queries, settings)) /
                    best[backend]["radius"])
      results_per_s = result["hits"] / best[backend]["radius"]
    same = [_same(result["found"], k_reference),
            _same_rows(result["rows"], radius_reference)]
    same = [s for s in same if s is not None]
    rows.append(dict(
        kind=kind, bits=bits, count=count, distinct=num_distinct,
        backend=fact["label"], build=fact["build"], size=fact["size"],
        open=fact["open"], first_radius=fact["first_radius"],
        rss=fact["rss"], k_qps=(len(_batch(backend, queries, settings)) /
                                best[backend]["k"]),
        recall=recall_at_k(result["found"], exact[count]),
        radius_qps=radius_qps, results_per_s=results_per_s,
        same=("n/a (subset)" if backend not in complete else
              "-" if not same else "yes" if all(same) else
              "no (approximate)" if fact["approximate"] else "NO")))
    print(_cells(rows[-1], {}), file=sys.stderr, flush=True)
  reference = dict(zip(facts, rows)).get("faiss")
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
      f"{row['rss'] * 2**20 / row['count']:.1f}",
      f"{row['k_qps']:,.0f}", _ratio(row["k_qps"], reference.get("k_qps")),
      f"{row['recall']:.4f}",
      f"{row['radius_qps']:,.1f}" if has_radius else "-",
      f"{row['results_per_s']:,.0f}" if has_radius else "-",
      _ratio(row["radius_qps"], reference.get("radius_qps")),
      row["same"]]


def table(rows, k, radius):
  header = ["codes", "bits", "N", "distinct", "backend", "build s",
            "MB on disk", "open s", "1st radius s", "RSS MB", "RSS B/code",
            f"k={k} q/s", "vs IndexBinaryFlat", f"recall@{k}",
            f"radius {radius} q/s", f"radius {radius} results/s",
            "vs IndexBinaryMultiHash", "identical to the flat scan"]
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
  """{backend: N}: _DEFAULT_MAX_CODES's caps of `backends`, then
  --max_codes's BACKEND=N pairs."""
  caps = {b: n for b, n in _DEFAULT_MAX_CODES.items() if b in backends}
  for pair in pairs:
    backend, _, number = pair.partition("=")
    if backend not in backends or not number.isdigit():
      _fail(f"--max_codes takes BACKEND=N, BACKEND one of --backends "
            f"({', '.join(backends)}). Received: {pair}")
    caps[backend] = int(number)
  return caps


def _footer(settings, started):
  """The line under the run: what was timed, how, and in what time."""
  threads = FLAGS.threads or "FAISS's default"
  references = [b for b in _REFERENCES if b in settings.backends]
  limit = settings.max_reference_queries
  answered = (f"; {', '.join(references)} answered the first "
              f"{min(limit, FLAGS.queries)} (k) and "
              f"{min(limit, FLAGS.radius_queries)} (radius), on which "
              "identical and recall are counted"
              if references and limit else "")
  hnsw = (f"; hnsw: M = {settings.hnsw_m}, efConstruction = "
          f"{settings.hnsw_ef_construction}, efSearch = "
          f"{settings.hnsw_ef_search}" if "hnsw" in settings.backends else "")
  caps = ", ".join(f"{b} {n:,}" for b, n in settings.max_codes.items() if n)
  return (f"{FLAGS.queries} queries per batch for k = {FLAGS.k}, "
          f"{FLAGS.radius_queries} for radius {FLAGS.radius}{answered}; "
          f"best of {FLAGS.repeats}; FAISS threads: {threads}{hnsw}; "
          f"codes at most: {caps or 'no cap'}; backends "
          f"{'one at a time' if settings.one_at_a_time else 'open together'}"
          f"; open "
          f"{'cold (--drop_caches)' if settings.drop_caches else 'warm'}; "
          f"learned codes drawn with bit-flip probability {FLAGS.flip}; "
          f"{time.perf_counter() - started:.0f} s in all. Machine at the "
          f"end: {machine()}.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  unknown = sorted(set(FLAGS.backends) - set(_AVAILABLE))
  if unknown:
    _fail(f"Unknown backends {unknown}. Available: {', '.join(_AVAILABLE)}")
  if FLAGS.threads:
    import faiss  # pylint: disable=g-import-not-at-top
    faiss.omp_set_num_threads(FLAGS.threads)
  settings = Settings(
      backends=tuple(FLAGS.backends), k=FLAGS.k, radius=FLAGS.radius,
      repeats=FLAGS.repeats,
      max_codes=_max_codes(FLAGS.max_codes, FLAGS.backends),
      max_reference_queries=FLAGS.max_reference_queries,
      hnsw_m=FLAGS.hnsw_m, hnsw_ef_construction=FLAGS.hnsw_ef_construction,
      hnsw_ef_search=FLAGS.hnsw_ef_search,
      drop_caches=FLAGS.drop_caches, one_at_a_time=FLAGS.one_at_a_time)
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
  print(f"\n{_footer(settings, started)}\n")
  print(table(rows, FLAGS.k, FLAGS.radius))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
