"""Shared test set-up: quiet TensorFlow, deterministic seeds."""

import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tools import their shared modules (tools/results_table.py) as
# `python tools/NAME.py` finds them: from the tools folder.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir,
                                "tools"))
# XLA's CPU backend compiles without LLVM optimisation here: the tests check
# that training steps compile and compute the same numbers, not their speed
# (about half the compile time of a small_cnn step).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")


def make_small_run(model_dir, *, bits=12, seed=0):
  """A run directory (flags.json, model.keras) of an untrained small CNN on
  the embedded 28 × 28 grey images, whose bits vary from image to image.

  Random weights give nearly the same activations for every image; the hash
  layer is rescaled and centred on the embedded images' mean so that each
  bit splits them, which makes equality tests of codes meaningful.
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from dhe_tf.model import network as model_lib  # pylint: disable=g-import-not-at-top
  from dhe_tf.runs import config as config_lib  # pylint: disable=g-import-not-at-top
  from dhe_tf.runs import run_dir  # pylint: disable=g-import-not-at-top
  from dhe_tf.data import datasets  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  model = model_lib.build_model(backbone="small_cnn", bits=bits,
                                num_classes=10, image_shape=(28, 28, 1))
  images, _ = datasets.load_embedded_arrays()
  hash_layer = model.get_layer("hash")
  features = keras.Model(model.inputs, hash_layer.input)(
      images[:500].astype("float32"), training=False)
  kernel = np.random.default_rng(seed).normal(
      size=hash_layer.kernel.shape).astype("float32")
  projected = np.asarray(features) @ kernel
  scale = 1.0 / (projected.std(axis=0) + 1e-6)
  hash_layer.set_weights([kernel * scale,
                          -projected.mean(axis=0) * scale])
  config = config_lib.TrainConfig(bits=bits, protocol="tiny")
  run_dir.create(model_dir)
  run_dir.write_json(os.path.join(model_dir, "flags.json"),
                     dataclasses.asdict(config))
  run_dir.save_model(os.path.join(model_dir, "model.keras"), model)
  return model


# The tiny trained run the tests share: the "tiny" protocol of the embedded
# data (100 queries, 500 training images, 9,900 database), 10 epochs.
TINY_RUN = dict(protocol="tiny", epochs=10, batch_size=50, bits=12)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
  """(model_dir, metrics) of a real dhe_tf.training.trainer.train run of TINY_RUN."""
  from dhe_tf.runs import config as config_lib  # pylint: disable=g-import-not-at-top
  from dhe_tf.training import trainer  # pylint: disable=g-import-not-at-top
  model_dir = str(tmp_path_factory.mktemp("trained") / "run")
  results = trainer.train(config_lib.TrainConfig(**TINY_RUN), model_dir,
                          verbose=0)
  return model_dir, results


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
  """(model_dir, model) of make_small_run, 12 bits, shared by the tests."""
  model_dir = str(tmp_path_factory.mktemp("small_run") / "run")
  return model_dir, make_small_run(model_dir)


@pytest.fixture(scope="session")
def other_small_run(tmp_path_factory):
  """Like small_run, with other weights: another model of 12 bits."""
  model_dir = str(tmp_path_factory.mktemp("other_run") / "run")
  return model_dir, make_small_run(model_dir, seed=1)


def free_port():
  """A TCP port on 127.0.0.1 that nothing listens on now."""
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


@pytest.fixture(scope="session")
def search_service(trained_run, tmp_path_factory):
  """`python -m dhe_tf.serve` as a real process on a free loopback port, over
  an index of the trained run's query part (100 images), shared by the API
  and browser tests (tests/test_serve*.py).

  Yields a dict: url, index, model_dir, process. Skipped without the
  `serve` extra (FastAPI, uvicorn, python-multipart).
  """
  for module in ("fastapi", "uvicorn", "multipart"):
    pytest.importorskip(module)
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  import requests  # pylint: disable=g-import-not-at-top
  from dhe_tf.index import searcher  # pylint: disable=g-import-not-at-top
  model_dir, _ = trained_run
  folder = tmp_path_factory.mktemp("served")
  index = str(folder / "index")
  searcher.build_index(model_dir, index, part="query")
  port = free_port()
  log = open(folder / "serve.log", "w+", encoding="utf-8")
  process = subprocess.Popen(
      [sys.executable, "-m", "dhe_tf.serve", f"--model_dir={model_dir}",
       f"--index={index}", f"--port={port}", "--max_upload_bytes=1000000",
       "--max_pixels=1000000", "--max_k=50"],
      stdout=log, stderr=subprocess.STDOUT)
  url = f"http://127.0.0.1:{port}"
  deadline = time.monotonic() + 180
  while True:
    if process.poll() is not None:
      log.seek(0)
      raise AssertionError(f"dhe_tf.serve exited: {log.read()[-3000:]}")
    try:
      if requests.get(f"{url}/healthz", timeout=5).ok:
        break
    except requests.ConnectionError:
      pass
    if time.monotonic() > deadline:
      process.kill()
      raise AssertionError("dhe_tf.serve did not answer within 180 s")
    time.sleep(0.2)
  yield dict(url=url, index=index, model_dir=model_dir, process=process,
             log=str(folder / "serve.log"))
  process.terminate()
  try:
    process.wait(timeout=30)
  except subprocess.TimeoutExpired:
    process.kill()
  log.close()
