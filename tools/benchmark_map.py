"""Times dhe_tf.evaluation.metrics.mean_average_precision against the usual NumPy loop.

    python tools/benchmark_map.py                  # about 45 s
    python tools/benchmark_map.py --memory_check   # about 10 s more

The reference is the mAP function of the popular PyTorch hashing repos
(DPSH, HashNet, DeepHash ports): per query, Hamming distances from ±1 codes as
0.5 * (K - q @ db.T), an argsort, and the cumulative precision at each
relevant item. Here the argsort is stable, so its ties fall in the same order
as in dhe_tf and both must give the same mAP.

Codes are drawn around a random code per class with each bit flipped with
probability --flip, so the mAP is that of a plausible model rather than of
coin tosses. Output of `--memory_check` on 2 cores of an Intel Xeon @ 2.50GHz
(shared with other jobs; dhe_tf.evaluation.metrics took 0.42 to 0.95 s over 6 runs):

    | method                     | seconds | ratio | mAP@ALL      |
    |----------------------------|---------|-------|--------------|
    | per-query argsort (NumPy)  |    7.58 |   1.0 | 0.4253823834 |
    | dhe_tf.evaluation.metrics             |    0.48 |  15.9 | 0.4253823834 |

    The two mAPs agree: abs diff 2.2e-16, tolerance 1e-9.

    mean_average_precision, 2100 x 200000 codes of 48 bits: 3.1 s;
    peak memory it allocated 83 MiB (tracemalloc), max RSS of the process
    216 MiB.
"""

import resource
import time
import tracemalloc

from absl import app
from absl import flags
import numpy as np

from dhe_tf.evaluation import metrics

_QUERIES = flags.DEFINE_integer("queries", 1000, "Number of query codes.")
_DATABASE = flags.DEFINE_integer("database", 69000,
                                 "Number of database codes.")
_BITS = flags.DEFINE_integer("bits", 32, "Bits per code.")
_CLASSES = flags.DEFINE_integer("classes", 10, "Number of classes.")
_TOPK = flags.DEFINE_integer("topk", None, "mAP cut-off; unset for mAP@ALL.")
_MULTILABEL = flags.DEFINE_bool(
    "multilabel", False,
    "Give every item, besides its own class, each other class with "
    "probability 0.1 (multi-hot labels); otherwise one-hot labels.")
_FLIP = flags.DEFINE_float(
    "flip", 0.25, "Probability that a bit differs from its class code.")
_REPEATS = flags.DEFINE_integer("repeats", 3,
                                "Runs of each method; the best time counts.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random codes.")
_MEMORY_CHECK = flags.DEFINE_bool(
    "memory_check", False,
    "Also measure the peak memory of mAP on 2,100 x 200,000 codes of 48 bits.")

_MEMORY_CASE = {"num_queries": 2100, "num_items": 200000, "bits": 48}


def random_codes(num_queries, num_items, bits, num_classes, multilabel, flip,
                 seed):
  """Returns query codes, labels and database codes, labels.

  Codes are {0, 1} [num, bits]: the code of the item's class with each bit
  flipped with probability `flip`. Labels are one-hot [num, num_classes], or
  multi-hot when `multilabel`: each other class added with probability 0.1.
  """
  rng = np.random.default_rng(seed)
  class_codes = rng.integers(0, 2, (num_classes, bits), dtype=np.uint8)

  def draw(num):
    classes = rng.integers(0, num_classes, num)
    codes = class_codes[classes] ^ (rng.random((num, bits)) < flip)
    labels = np.eye(num_classes, dtype=np.uint8)[classes]
    if multilabel:
      labels |= rng.random((num, num_classes)) < 0.1
    return codes, labels

  query_codes, query_labels = draw(num_queries)
  database_codes, database_labels = draw(num_items)
  return query_codes, query_labels, database_codes, database_labels


def reference_map(query_codes, query_labels, database_codes, database_labels,
                  topk=None):
  """mAP@topk as computed by the PyTorch hashing repos, one query at a time."""
  bits = query_codes.shape[1]
  query_signs = 2.0 * query_codes - 1.0
  database_signs = 2.0 * database_codes - 1.0
  total = 0.0
  for i in range(len(query_codes)):
    relevant = (query_labels[i] @ database_labels.T > 0).astype(np.float64)
    hamming = 0.5 * (bits - query_signs[i] @ database_signs.T)
    relevant = relevant[np.argsort(hamming, kind="stable")][:topk]
    num_relevant = int(relevant.sum())
    if num_relevant == 0:
      continue
    hits = np.linspace(1, num_relevant, num_relevant)
    ranks = np.flatnonzero(relevant) + 1.0
    total += np.mean(hits / ranks)
  return total / len(query_codes)


def best_time(function, args, repeats):
  """Returns (fastest wall time in seconds, result) over `repeats` calls."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    result = function(*args)
    times.append(time.perf_counter() - start)
  return min(times), result


def markdown_table(rows, topk):
  """rows: (method, seconds, mAP), the baseline first."""
  name = "mAP@ALL" if topk is None else f"mAP@{topk}"
  lines = [f"| method                     | seconds | ratio | {name:<12} |",
           "|----------------------------|---------|-------|--------------|"]
  baseline = rows[0][1]
  for method, seconds, value in rows:
    lines.append(f"| {method:<26} | {seconds:7.2f} | {baseline / seconds:5.1f} "
                 f"| {value:.10f} |")
  return "\n".join(lines)


def memory_check(num_queries, num_items, bits, seed):
  """Prints the time and peak memory of one mAP@ALL call, beyond its inputs."""
  case = random_codes(num_queries, num_items, bits, num_classes=10,
                      multilabel=False, flip=0.25, seed=seed)
  tracemalloc.start()
  start = time.perf_counter()
  metrics.mean_average_precision(*case)
  seconds = time.perf_counter() - start
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  # ru_maxrss is in KiB on Linux and covers the whole run, inputs included.
  max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  print(f"mean_average_precision, {num_queries} x {num_items} codes of "
        f"{bits} bits: {seconds:.1f} s;\npeak memory it allocated "
        f"{peak / 2**20:.0f} MiB (tracemalloc), max RSS of the process "
        f"{max_rss / 2**10:.0f} MiB.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  case = random_codes(_QUERIES.value, _DATABASE.value, _BITS.value,
                      _CLASSES.value, _MULTILABEL.value, _FLIP.value,
                      _SEED.value)
  reference_seconds, reference_value = best_time(
      reference_map, case + (_TOPK.value,), _REPEATS.value)
  seconds, value = best_time(metrics.mean_average_precision,
                             case + (_TOPK.value,), _REPEATS.value)
  print(markdown_table([("per-query argsort (NumPy)", reference_seconds,
                         reference_value),
                        ("dhe_tf.evaluation.metrics", seconds, value)], _TOPK.value))
  difference = abs(value - reference_value)
  verdict = "agree" if difference < 1e-9 else "DISAGREE"
  print(f"\nThe two mAPs {verdict}: abs diff {difference:.1e}, "
        "tolerance 1e-9.")
  if _MEMORY_CHECK.value:
    print()
    memory_check(seed=_SEED.value, **_MEMORY_CASE)


if __name__ == "__main__":
  app.run(main)
