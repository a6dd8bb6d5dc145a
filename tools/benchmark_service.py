r"""Load on the search service (python -m dhe_tf.serve), on loopback only.

    python -m dhe_tf.train --bits=32 --model_dir=runs/fmnist32
    python tools/benchmark_service.py --model_dir=runs/fmnist32 \
        --data_dir=/usr/share/datasets/fashion-mnist

1. Encodes all 70,000 Fashion-MNIST images (the IDX files of --data_dir;
   without them, the 10,000 embedded ones) with the run's model into an index
   under --work_dir, sources "fashion_mnist[i]". With --num_codes larger,
   the index holds those codes and then draws of them, each bit flipped with
   probability --flip (learned codes at scale, as tools/benchmark_search.py
   makes them), source "fashion_mnist[i]~" and the label of the image i drawn,
   streamed into the index (dhe_tf.index.Builder) a chunk at a time.
2. Starts `python -m dhe_tf.serve` on a free port of 127.0.0.1, and reports
   how long it took to answer /healthz (TensorFlow, the model, the index) and
   its resident memory after the load (VmRSS).
3. For 1, 4 and 16 concurrent clients (--clients), sends code-only queries
   (JSON {"code"}) and image uploads (multipart PNG) of --queries images
   drawn from the 70,000: --requests requests per row, each row stopped
   after --time_limit seconds. Every request is checked to answer 200.
4. Runs `python -m dhe_tf.search query` once over the same images (one
   process, TensorFlow's start included) and checks that the service gave
   the same neighbors.

Prints a table: requests/s, p50 and p99 latency (ms) per row. Bounded by
construction (fixed request count, time limit per row) and sent to 127.0.0.1
only. --max_batch=1 serves one model call per image, to measure what the
batching of concurrent uploads gives. --backends runs the whole load once
per index backend, side by side on the same codes:

    python tools/benchmark_service.py --model_dir=runs/dhe32 \
        --num_codes=10000000 --backends=faiss,distinct --clients=1,16
"""

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import requests

flags.DEFINE_string("model_dir", None, "The run whose model encodes images.")
flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist",
                    "Fashion-MNIST IDX files (all 70,000 images); without "
                    "them the 10,000 embedded images are indexed.")
flags.DEFINE_string("work_dir", None, "Where the index and query images go "
                    "(default: a temporary directory, deleted at the end).")
flags.DEFINE_list("clients", ["1", "4", "16"], "Concurrent clients per row.")
flags.DEFINE_list("kinds", ["code", "image"], "Query kinds: code, image.")
flags.DEFINE_integer("requests", 2000, "Requests per row.")
flags.DEFINE_float("time_limit", 60, "Seconds per row at most.")
flags.DEFINE_integer("queries", 200, "Distinct query images.")
flags.DEFINE_integer("k", 10, "Neighbors per query.")
flags.DEFINE_integer("max_batch", 64, "dhe_tf.serve --max_batch.")
flags.DEFINE_integer("seed", 0, "Seed of the query images' draw (and of "
                     "the codes drawn with --num_codes).")
flags.DEFINE_integer("num_codes", 0, "Codes in the index: 0 = one per image;"
                     " more: the images' codes, then draws of them with "
                     "--flip.")
flags.DEFINE_float("flip", 0.01, "Probability that a drawn code's bit flips.")
flags.DEFINE_list("backends", ["distinct"], "Index backends "
                  "(dhe_tf.index.BACKENDS), each served and loaded in turn.")
flags.mark_flag_as_required("model_dir")

FLAGS = flags.FLAGS


_CHUNK = 1 << 20  # Codes drawn and written at a time.


def drawn_batches(codes, class_ids, name, num_codes, flip, rng):
  """(rows, packed, sources, labels) batches of an index of `num_codes`:
  the codes of the images (0/1 [M, K]), then draws of them, every bit
  flipped with probability `flip`."""
  from dhe_tf.core import codes as codes_lib  # pylint: disable=g-import-not-at-top
  one_hot = np.eye(10, dtype=np.uint8)
  count = max(num_codes, len(codes))
  for start in range(0, count, _CHUNK):
    rows = np.arange(start, min(start + _CHUNK, count))
    drawn = np.where(rows < len(codes), rows,
                     rng.integers(0, len(codes), len(rows)))
    bits = codes[drawn] ^ ((rows >= len(codes))[:, None] &
                           (rng.random((len(rows), codes.shape[1])) < flip))
    sources = np.char.add(np.char.add(f"{name}[", drawn.astype(str)),
                          np.where(rows < len(codes), "]", "]~"))
    yield rows, codes_lib.pack(bits), sources, one_hot[class_ids[drawn]]


def build(model_dir, data_dir, work_dir, num_queries, seed, num_codes=0,
          flip=0.01, backend="distinct"):
  """Index of every image (and draws of them up to `num_codes`); returns
  (index path, query PNG paths, query code strings, codes in the index)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from dhe_tf.core import codes as codes_lib  # pylint: disable=g-import-not-at-top
  from dhe_tf import index as index_lib  # pylint: disable=g-import-not-at-top
  from dhe_tf.model import inference  # pylint: disable=g-import-not-at-top
  from dhe_tf.model import network as model_lib  # pylint: disable=g-import-not-at-top
  from dhe_tf.runs import run_dir  # pylint: disable=g-import-not-at-top
  from dhe_tf.data import datasets  # pylint: disable=g-import-not-at-top
  from dhe_tf.data import idx_files  # pylint: disable=g-import-not-at-top
  if data_dir and idx_files.has_idx_files(data_dir):
    images, class_ids = idx_files.load_idx_directory(data_dir)
    name = "fashion_mnist"
  else:
    images, class_ids = datasets.load_embedded_arrays()
    name = "embedded"
  run = run_dir.load_run(model_dir)
  encoder = model_lib.encoder(run.model)
  codes = np.concatenate([
      codes_lib.binarize(encoder(images[i:i + 1000].astype(np.float32),
                                 training=False))
      for i in range(0, len(images), 1000)])
  index = os.path.join(work_dir, f"index_{backend}")
  count = max(num_codes, len(images))
  with index_lib.Builder(
      index, count=count, bits=run.bits,
      fingerprint=inference.model_fingerprint(run.model),
      class_names=datasets.FASHION_MNIST_CLASSES, with_sources=True,
      backend=backend) as builder:
    for batch in drawn_batches(codes, class_ids, name, num_codes, flip,
                               np.random.default_rng(seed + 1)):
      builder.write(*batch)
  chosen = np.random.default_rng(seed).choice(len(images), num_queries,
                                              replace=False)
  folder = os.path.join(work_dir, "queries")
  os.makedirs(folder, exist_ok=True)
  paths = []
  for i in chosen:
    paths.append(os.path.join(folder, f"{name}_{i:05d}.png"))
    with open(paths[-1], "wb") as f:
      f.write(tf.io.encode_png(images[i]).numpy())
  strings = codes_lib.to_strings(codes_lib.pack(codes[chosen]), run.bits)
  return index, paths, strings, count


def resident_mb(pid):
  """VmRSS of process `pid`, MB."""
  with open(f"/proc/{pid}/status", encoding="utf-8") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def start_service(model_dir, index, data_dir, max_batch, log):
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  process = subprocess.Popen(
      [sys.executable, "-m", "dhe_tf.serve", f"--model_dir={model_dir}",
       f"--index={index}", f"--port={port}", f"--data_dir={data_dir}",
       f"--max_batch={max_batch}"], stdout=log, stderr=subprocess.STDOUT)
  url = f"http://127.0.0.1:{port}"
  start = time.monotonic()
  deadline = start + 300
  while time.monotonic() < deadline and process.poll() is None:
    try:
      if requests.get(f"{url}/healthz", timeout=5).ok:
        return process, url, time.monotonic() - start
    except requests.ConnectionError:
      time.sleep(0.2)
  process.kill()
  raise RuntimeError(f"dhe_tf.serve did not start; see {log.name}")


def load(url, kind, clients, total, time_limit, payloads, k):
  """(requests/s, p50 ms, p99 ms, requests done) of one row."""
  latencies, lock = [], threading.Lock()
  counter = iter(range(total))
  stop = time.monotonic() + time_limit

  def client():
    session = requests.Session()
    while time.monotonic() < stop:
      with lock:
        i = next(counter, None)
      if i is None:
        return
      payload = payloads[i % len(payloads)]
      start = time.perf_counter()
      if kind == "code":
        response = session.post(f"{url}/v1/search", timeout=60,
                                json={"code": payload, "k": k})
      else:
        response = session.post(f"{url}/v1/search", timeout=60,
                                files={"image": ("q.png", payload)},
                                data={"k": str(k)})
      elapsed = time.perf_counter() - start
      if response.status_code != 200:
        raise RuntimeError(f"{kind} query: HTTP {response.status_code} "
                           f"{response.text[:200]}")
      with lock:
        latencies.append(elapsed)

  began = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(clients) as pool:
    for future in [pool.submit(client) for _ in range(clients)]:
      future.result()
  wall = time.perf_counter() - began
  p50, p99 = np.percentile(latencies, [50, 99]) * 1000
  return len(latencies) / wall, p50, p99, len(latencies)


def compare_with_search_query(url, model_dir, index, paths, k):
  """Wall seconds of one `dhe_tf.search query` process over the images,
  after checking its neighbors equal the service's."""
  start = time.perf_counter()
  result = subprocess.run(
      [sys.executable, "-m", "dhe_tf.search", "query",
       f"--model_dir={model_dir}", f"--index={index}",
       f"--images={','.join(paths)}", f"--k={k}", "--json=-"],
      capture_output=True, text=True, check=True)
  seconds = time.perf_counter() - start
  found = json.loads(result.stdout)["results"]
  for path, expected in zip(paths, found):
    with open(path, "rb") as f:
      served = requests.post(f"{url}/v1/search", files={"image": f},
                             data={"k": str(k)}, timeout=60).json()
    if served["results"] != expected["neighbors"]:
      raise RuntimeError(f"The service and dhe_tf.search query differ for "
                         f"{path}")
  return seconds


def serve_and_load(backend, index, paths, strings, work_dir):
  """Starts the service over `index`, runs every load row; returns (start
  s, RSS MB after the load, rows, seconds of dhe_tf.search query)."""
  pngs = [open(path, "rb").read() for path in paths]
  with open(os.path.join(work_dir, f"serve_{backend}.log"), "w") as log:
    process, url, started = start_service(FLAGS.model_dir, index,
                                          FLAGS.data_dir, FLAGS.max_batch, log)
    try:
      rows = []
      for kind in FLAGS.kinds:
        payloads = strings if kind == "code" else pngs
        for clients in map(int, FLAGS.clients):
          load(url, kind, clients, min(20, FLAGS.requests), 10, payloads,
               FLAGS.k)  # Warm-up.
          rows.append((backend, kind, clients, *load(
              url, kind, clients, FLAGS.requests, FLAGS.time_limit,
              payloads, FLAGS.k)))
          print(f"{backend}: {kind} × {clients}: {rows[-1][3]:.0f} "
                "requests/s", flush=True)
      resident = resident_mb(process.pid)
      seconds = compare_with_search_query(url, FLAGS.model_dir, index,
                                          paths, FLAGS.k)
    finally:
      process.terminate()
      process.wait(timeout=60)
  return started, resident, rows, seconds


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="benchmark_service-")
  os.makedirs(work_dir, exist_ok=True)
  rows, summary = [], []
  for backend in FLAGS.backends:
    start = time.perf_counter()
    index, paths, strings, count = build(
        FLAGS.model_dir, FLAGS.data_dir, work_dir, FLAGS.queries, FLAGS.seed,
        FLAGS.num_codes, FLAGS.flip, backend)
    built = time.perf_counter() - start
    print(f"{backend}: index of {count:,} codes built in {built:.1f} s",
          flush=True)
    started, resident, backend_rows, seconds = serve_and_load(
        backend, index, paths, strings, work_dir)
    rows += backend_rows
    summary.append((backend, built, started, resident, seconds))
    if not FLAGS.work_dir:
      shutil.rmtree(index, ignore_errors=True)
  print(f"\n{count:,} codes, k={FLAGS.k}, max_batch={FLAGS.max_batch}, "
        f"{os.cpu_count()} CPUs\n")
  print("| backend | build s (encoding included) | service start s (to "
        "/healthz) | service RSS MB after the load | dhe_tf.search query, "
        f"{len(paths)} images |")
  print("|---|---|---|---|---|")
  for backend, built, started, resident, seconds in summary:
    print(f"| {backend} | {built:.1f} | {started:.1f} | {resident:,.0f} | "
          f"{seconds:.1f} s, same neighbors as the service |")
  print("\n| backend | query | clients | requests | requests/s | p50 ms | "
        "p99 ms |")
  print("|---|---|---|---|---|---|---|")
  for backend, kind, clients, rate, p50, p99, done in rows:
    print(f"| {backend} | {kind} | {clients} | {done} | {rate:.1f} | "
          f"{p50:.1f} | {p99:.1f} |")
  print("\n`dhe_tf.search query` runs one process over the query images "
        "(TensorFlow's start included).")
  if not FLAGS.work_dir:
    shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
