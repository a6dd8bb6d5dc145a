r"""Load on the search service (python -m dhe_tf.serve), on loopback only.

    python -m dhe_tf.train --bits=32 --model_dir=runs/fmnist32
    python tools/benchmark_service.py --model_dir=runs/fmnist32 \
        --data_dir=/usr/share/datasets/fashion-mnist

1. Encodes all 70,000 Fashion-MNIST images (the IDX files of --data_dir;
   without them, the 10,000 embedded ones) with the run's model into an index
   under --work_dir, sources "fashion_mnist[i]".
2. Starts `python -m dhe_tf.serve` on a free port of 127.0.0.1.
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
batching of concurrent uploads gives.
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
flags.DEFINE_integer("seed", 0, "Seed of the query images' draw.")
flags.mark_flag_as_required("model_dir")

FLAGS = flags.FLAGS


def build(model_dir, data_dir, work_dir, num_queries, seed):
  """Index of every image; returns (index path, query ids, PNG paths)."""
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
  index = os.path.join(work_dir, "index")
  index_lib.build(index, codes_lib.pack(codes), bits=run.bits,
                  fingerprint=inference.model_fingerprint(run.model),
                  sources=[f"{name}[{i}]" for i in range(len(images))],
                  labels=np.eye(10, dtype=np.uint8)[class_ids],
                  class_names=datasets.FASHION_MNIST_CLASSES)
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
  return index, paths, strings, len(images)


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
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline and process.poll() is None:
    try:
      if requests.get(f"{url}/healthz", timeout=5).ok:
        return process, url
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="benchmark_service-")
  os.makedirs(work_dir, exist_ok=True)
  start = time.perf_counter()
  index, paths, strings, count = build(FLAGS.model_dir, FLAGS.data_dir,
                                       work_dir, FLAGS.queries, FLAGS.seed)
  print(f"Index of {count:,} codes built in "
        f"{time.perf_counter() - start:.1f} s", flush=True)
  pngs = [open(path, "rb").read() for path in paths]
  with open(os.path.join(work_dir, "serve.log"), "w") as log:
    process, url = start_service(FLAGS.model_dir, index, FLAGS.data_dir,
                                 FLAGS.max_batch, log)
    try:
      rows = []
      for kind in FLAGS.kinds:
        payloads = strings if kind == "code" else pngs
        for clients in map(int, FLAGS.clients):
          load(url, kind, clients, min(20, FLAGS.requests), 10, payloads,
               FLAGS.k)  # Warm-up.
          rows.append((kind, clients, *load(
              url, kind, clients, FLAGS.requests, FLAGS.time_limit,
              payloads, FLAGS.k)))
          print(f"{kind} × {clients}: {rows[-1][2]:.0f} requests/s",
                flush=True)
      seconds = compare_with_search_query(url, FLAGS.model_dir, index,
                                          paths, FLAGS.k)
    finally:
      process.terminate()
      process.wait(timeout=60)
  print(f"\n{count:,} codes, k={FLAGS.k}, max_batch={FLAGS.max_batch}, "
        f"{os.cpu_count()} CPUs\n")
  print("| query | clients | requests | requests/s | p50 ms | p99 ms |")
  print("|---|---|---|---|---|---|")
  for kind, clients, rate, p50, p99, done in rows:
    print(f"| {kind} | {clients} | {done} | {rate:.1f} | {p50:.1f} | "
          f"{p99:.1f} |")
  print(f"\n`dhe_tf.search query`, one process over the {len(paths)} images:"
        f" {seconds:.1f} s ({len(paths) / seconds:.1f} images/s, TensorFlow's "
        "start included); the same neighbors as the service.")
  if not FLAGS.work_dir:
    shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
