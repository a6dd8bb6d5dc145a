"""`python -m dhe_tf.train` end to end, and its one-line errors."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dhe_tf import metrics
from dhe_tf.data import datasets

_TINY = ["--protocol=tiny", "--epochs=4", "--batch_size=50", "--bits=12"]


def _train(*args, cwd=None):
  return subprocess.run([sys.executable, "-m", "dhe_tf.train", *args],
                        capture_output=True, text=True, cwd=cwd, timeout=600)


def _random_codes_map(split, bits, seed=0):
  _, class_ids = datasets.load_embedded_arrays()
  rng = np.random.default_rng(seed)
  query, database = split["query"], split["database"]
  return metrics.mean_average_precision(
      rng.integers(0, 2, (len(query), bits)), class_ids[query],
      rng.integers(0, 2, (len(database), bits)), class_ids[database])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("run") / "run")
  result = _train(*_TINY, f"--model_dir={model_dir}")
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir, result


def test_run_writes_everything_it_promises(tiny_run):
  model_dir, _ = tiny_run
  for name in ("model.keras", "flags.json", "metrics.json", "split.npz"):
    assert os.path.isfile(os.path.join(model_dir, name)), name
  assert glob.glob(os.path.join(model_dir, "logs", "train", "events.out.*"))
  assert not glob.glob(os.path.join(model_dir, ".*"))  # No temporary files.
  with open(os.path.join(model_dir, "flags.json")) as f:
    config = json.load(f)
  assert config["bits"] == 12 and config["protocol"] == "tiny"


def test_metrics_beat_random_codes_on_the_same_split(tiny_run):
  model_dir, result = tiny_run
  with open(os.path.join(model_dir, "metrics.json")) as f:
    results = json.load(f)
  assert results["bits"] == 12 and results["dataset"] == "embedded"
  assert results["topk"] == "all"
  assert (results["num_queries"], results["num_database"]) == (100, 9900)
  with np.load(os.path.join(model_dir, "split.npz")) as split:
    random_map = _random_codes_map(dict(split), bits=12)
  assert results["mAP"] > random_map + 0.1, (results["mAP"], random_map)
  assert f"mAP@all = {results['mAP']:.4f}" in result.stdout


def test_saved_model_reloads_and_encodes(tiny_run):
  import keras  # pylint: disable=g-import-not-at-top
  model_dir, _ = tiny_run
  model = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
  images, _ = datasets.load_embedded_arrays()
  outputs = model.predict(images[:5].astype("float32"), verbose=0)
  assert outputs["hash"].shape == (5, 12)


def test_default_model_dir_is_new_under_runs(tmp_path):
  result = _train(*_TINY, "--epochs=1", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  (run,) = glob.glob(os.path.join(tmp_path, "runs", "embedded_12bits_*"))
  assert os.path.isfile(os.path.join(run, "metrics.json"))


@pytest.mark.parametrize("args, message", [
    (["--dataset=imagenet"],
     "Unknown dataset 'imagenet'. Available: cifar10, embedded"),
    (["--backbone=alexnet"],
     "Unknown backbone 'alexnet'. Available: small_cnn, vgg16, resnet50"),
    (["--bits=0"], "bits must be at least 1. Received: bits=0"),
    (["--backbone=vgg16", "--weights=/no/such.h5"],
     "Weights file not found. Received: weights=/no/such.h5"),
    (["--model_dir=/etc/hostname/run"], "Cannot write to model_dir="),
])
def test_bad_input_is_one_line_with_status_2(tmp_path, args, message):
  result = _train(*args, cwd=tmp_path)
  assert result.returncode == 2
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("dhe_tf.train: error: ") and message in last, last
  assert "Traceback" not in result.stderr
  assert os.listdir(tmp_path) == []  # No run directory left behind.
