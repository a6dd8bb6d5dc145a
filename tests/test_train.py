"""`python -m dhe_tf.train` end to end, and its one-line errors."""

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from dhe_tf import metrics
from dhe_tf import training
from dhe_tf.data import datasets
from dhe_tf.errors import ConfigError

_TINY = ["--protocol=tiny", "--epochs=10", "--batch_size=50", "--bits=12"]


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
  for name in ("model.keras", "flags.json", "metrics.json", "split.npz",
               "pr_curve.png", "retrievals.png"):
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
  from dhe_tf import model as model_lib  # pylint: disable=g-import-not-at-top
  model_dir, _ = tiny_run
  model = model_lib.load_model(os.path.join(model_dir, "model.keras"))
  images, _ = datasets.load_embedded_arrays()
  outputs = model.predict(images[:5].astype("float32"), verbose=0)
  assert outputs["hash"].shape == (5, 12)


def test_default_model_dir_is_new_under_runs(tmp_path):
  result = _train(*_TINY, "--epochs=1", "--evaluate_test=false", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  (run,) = glob.glob(os.path.join(tmp_path, "runs", "embedded_12bits_*"))
  assert os.path.isfile(os.path.join(run, "metrics.json"))
  assert "\nvalidation mAP = " in result.stdout  # No query scores.


@pytest.mark.parametrize("changes, message", [
    (dict(dataset="imagenet"),
     "Unknown dataset 'imagenet'. Available: cifar10, embedded"),
    (dict(backbone="alexnet"),
     "Unknown backbone 'alexnet'. Available: small_cnn, vgg16, resnet50"),
    (dict(bits=0), "bits must be at least 1. Received: bits=0"),
    (dict(backbone="vgg16", weights="/no/such.h5"),
     "Weights file not found. Received: weights=/no/such.h5"),
    (dict(validation_fraction=1.5), "Received: validation_fraction=1.5"),
    (dict(method="lsh"), "Unknown method 'lsh'. Available: dhe, dlbhc, dpsh"),
    (dict(distance="cosine"),
     "Unknown distance 'cosine'. Available: expected, squared"),
    (dict(method="dlbhc", hash_loss_weight=1.0), "dlbhc has no hash loss"),
    (dict(method="dsh", method_params=("alpha=1",)),
     "dsh has no parameter 'alpha'. Available: margin, regularizer_weight"),
])
def test_bad_config_is_named_before_anything_is_written(tmp_path, changes,
                                                        message):
  config = training.TrainConfig(protocol="tiny", epochs=1, **changes)
  with pytest.raises(ConfigError, match=re.escape(message)):
    training.train(config, os.path.join(tmp_path, "run"))
  assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    (["--dataset=imagenet"],
     "Unknown dataset 'imagenet'. Available: cifar10, embedded"),
    (["--model_dir=/etc/hostname/run"], "Cannot write to model_dir="),
    (["--method=dpsh", "--method_params=quantization_weight=lots"],
     "method_params quantization_weight must be a number"),
])
def test_bad_input_is_one_line_with_status_2(tmp_path, args, message):
  result = _train(*args, cwd=tmp_path)
  assert result.returncode == 2
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("dhe_tf.train: error: ") and message in last, last
  assert "Traceback" not in result.stderr
  assert os.listdir(tmp_path) == []  # No run directory left behind.


def _scalars(log_dir, tag):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  values = []
  for path in glob.glob(os.path.join(log_dir, "events.out.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          values.append(float(tf.make_ndarray(value.tensor)))
  return values


def test_validation_map_is_logged_from_held_out_training_images(tiny_run):
  model_dir, _ = tiny_run
  values = _scalars(os.path.join(model_dir, "logs", "validation"), "epoch_mAP")
  assert len(values) == 2 and 0 < values[-1] <= 1  # After epochs 5 and 10.
  with np.load(os.path.join(model_dir, "split.npz")) as split:
    assert len(split["validation"]) == 50  # 10 % of the 500 training images.
    assert set(split["validation"]) <= set(split["train"])
    assert not set(split["validation"]) & set(split["query"])
  with open(os.path.join(model_dir, "metrics.json")) as f:
    assert json.load(f)["validation_mAP"] == pytest.approx(values[-1])


def test_evaluate_rewrites_metrics_and_pictures(tiny_run):
  model_dir, _ = tiny_run
  with open(os.path.join(model_dir, "metrics.json")) as f:
    trained = json.load(f)
  os.remove(os.path.join(model_dir, "retrievals.png"))
  result = subprocess.run(
      [sys.executable, "-m", "dhe_tf.evaluate", f"--model_dir={model_dir}"],
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(model_dir, "metrics.json")) as f:
    evaluated = json.load(f)
  assert evaluated["mAP"] == pytest.approx(trained["mAP"])
  assert evaluated["train_seconds"] == trained["train_seconds"]
  for key in ("P@H<=2", "R@H<=2", "P@100", "P@500", "P@1000"):
    assert 0 <= evaluated[key] <= 1, key
  assert os.path.getsize(os.path.join(model_dir, "retrievals.png")) > 10_000
  assert f"mAP@all = {trained['mAP']:.4f}" in result.stdout


def test_evaluate_of_a_directory_that_is_not_a_run_is_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "dhe_tf.evaluate", f"--model_dir={tmp_path}"],
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 2
  assert "flags.json does not exist" in result.stderr.strip().splitlines()[-1]
