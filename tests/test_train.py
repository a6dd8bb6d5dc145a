"""Training end to end (dhe_tf.training.trainer), evaluation of the run, and the
commands' one-line errors."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dhe_tf.runs import config as config_lib
from dhe_tf.evaluation import evaluator
from dhe_tf.model import inference
from dhe_tf.evaluation import metrics
from dhe_tf.model import network as model_lib
from dhe_tf.runs import run_dir
from dhe_tf.training import trainer
from dhe_tf.data import datasets
from dhe_tf.data import pipeline
from dhe_tf.core.errors import ConfigError


def _random_codes_map(split, bits, seed=0):
  _, class_ids = datasets.load_embedded_arrays()
  rng = np.random.default_rng(seed)
  query, database = split["query"], split["database"]
  return metrics.mean_average_precision(
      rng.integers(0, 2, (len(query), bits)), class_ids[query],
      rng.integers(0, 2, (len(database), bits)), class_ids[database])


@pytest.fixture(scope="module")
def tiny_run(trained_run):
  model_dir, results = trained_run
  return model_dir, results


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
  model_dir, returned = tiny_run
  with open(os.path.join(model_dir, "metrics.json")) as f:
    results = json.load(f)
  assert results == returned
  assert results["bits"] == 12 and results["dataset"] == "embedded"
  assert results["topk"] == "all"
  assert (results["num_queries"], results["num_database"]) == (100, 9900)
  with np.load(os.path.join(model_dir, "split.npz")) as split:
    random_map = _random_codes_map(dict(split), bits=12)
  assert results["mAP"] > random_map + 0.1, (results["mAP"], random_map)
  # The validation curve ends at the last epoch with the reported value, and
  # the codes' diagnostics of that evaluation come with it.
  curve = results["validation_curve"]
  assert curve[max(curve, key=int)] == pytest.approx(
      results["validation_mAP"], abs=1e-5)
  assert len(results["train_loss_curve"]) == 10
  diagnostics = results["validation_diagnostics"]
  assert 0 <= diagnostics["saturated"] <= 1
  assert 0 <= diagnostics["quantization_gap"] <= 0.5
  assert 1 <= diagnostics["distinct_codes"] <= 2**12
  # Trained codes put images of a class nearer than images of others.
  assert diagnostics["hamming_similar"] < diagnostics["hamming_dissimilar"]


def test_saved_model_reloads_and_encodes(tiny_run):
  model_dir, _ = tiny_run
  model = model_lib.load_model(os.path.join(model_dir, "model.keras"))
  images, _ = datasets.load_embedded_arrays()
  outputs = model.predict(images[:5].astype("float32"), verbose=0)
  assert outputs["hash"].shape == (5, 12)


def test_default_model_dir_is_new_under_runs():
  first = run_dir.default_path("embedded", 12)
  assert re.fullmatch(r"runs/embedded_12bits_\d{8}-\d{6}-\d{6}", first)
  assert run_dir.default_path("embedded", 12) != first


@pytest.mark.parametrize("changes, message", [
    (dict(dataset="imagenet"),
     "Unknown dataset 'imagenet'. Available: cifar10, embedded"),
    (dict(backbone="alexnet"),
     "Unknown backbone 'alexnet'. Available: small_cnn, cnn, vgg16, resnet50"),
    (dict(bits=0), "bits must be at least 1. Received: bits=0"),
    (dict(backbone="vgg16", weights="/no/such.h5"),
     "Weights file not found. Received: weights=/no/such.h5"),
    (dict(validation_fraction=1.5), "Received: validation_fraction=1.5"),
    (dict(validation_by="folds"), "Unknown validation_by 'folds'. "
     "Available: images, classes"),
    (dict(method="lsh"), "Unknown method 'lsh'. Available: dhe, dlbhc, dpsh"),
    (dict(method_params=("distance=cosine",)),
     "method_params of dhe: Unknown distance 'cosine'. Available: expected, "
     "squared"),
    (dict(method_params=("margin=2",)), "margin is a fraction of the bits"),
    (dict(method="dlbhc", hash_loss_weight=1.0), "dlbhc has no hash loss"),
    (dict(label_smoothing=1.0), "label_smoothing must be in [0, 1). "
     "Received: label_smoothing=1.0"),
    (dict(method_params=("codeword_radius=1",)),
     "codeword_radius is a fraction of the bits"),
    (dict(method="dpsh", method_params=("quantization_weight=lots",)),
     "method_params quantization_weight must be a number"),
    (dict(method="dsh", method_params=("alpha=1",)),
     "dsh has no parameter 'alpha'. Available: margin, regularizer_weight"),
])
def test_bad_config_is_named_before_anything_is_written(tmp_path, changes,
                                                        message):
  config = config_lib.TrainConfig(protocol="tiny", epochs=1, **changes)
  with pytest.raises(ConfigError, match=re.escape(message)):
    trainer.train(config, os.path.join(tmp_path, "run"))
  assert os.listdir(tmp_path) == []


def test_bad_input_is_one_line_with_status_2(tmp_path):
  # The one real process start of the command: what a user sees.
  result = subprocess.run(
      [sys.executable, "-m", "dhe_tf.train", "--dataset=imagenet"],
      capture_output=True, text=True, cwd=tmp_path, timeout=600)
  assert result.returncode == 2
  last = result.stderr.strip().splitlines()[-1]
  assert last == ("dhe_tf.train: error: Unknown dataset 'imagenet'. "
                  "Available: " + ", ".join(sorted(datasets.DATASETS))), last
  assert "Traceback" not in result.stderr
  assert os.listdir(tmp_path) == []  # No run directory left behind.


def test_unwritable_model_dir_is_named(tmp_path):
  config = config_lib.TrainConfig(protocol="tiny", epochs=1)
  with pytest.raises(ConfigError, match="Cannot write to "
                     "model_dir=/etc/hostname/run"):
    trainer.train(config, "/etc/hostname/run")


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


def test_validation_by_classes_holds_out_seen_classes():
  # Under protocol unseen, validation by classes holds out every training
  # image of 2 of the 7 seen classes: it retrieves classes never fitted.
  config = config_lib.validate(config_lib.TrainConfig(
      protocol="unseen_tiny", validation_by="classes"))
  data = run_dir.load_data(config)
  fit, held_out, split = run_dir.split_training_part(config, data)
  classes = split["validation_classes"]
  assert len(classes) == 2 and set(classes) <= set(config.seen_classes)
  fit_labels = np.argmax(pipeline.labels_of(fit), axis=1)
  held_labels = np.argmax(pipeline.labels_of(held_out), axis=1)
  assert set(held_labels) == set(classes)
  assert not set(fit_labels) & set(classes)
  assert len(fit_labels) + len(held_labels) == len(split["train"]) == 350
  assert set(split["validation"]) <= set(split["train"])


def test_checked_data_refuses_a_changed_split(tiny_run, tmp_path):
  model_dir, _ = tiny_run
  data = evaluator.checked_data(run_dir.load_run(model_dir))
  with np.load(os.path.join(model_dir, "split.npz")) as recorded:
    np.testing.assert_array_equal(data.split["query"], recorded["query"])
    changed = {part: recorded[part] for part in recorded.files}
  copy = shutil.copytree(model_dir, os.path.join(tmp_path, "run"))
  changed["query"] = changed["query"][::-1]
  np.savez(os.path.join(copy, "split.npz"), **changed)
  with pytest.raises(ConfigError, match="The query images of embedded "
                     "differ from those in .*split.npz: the data or its "
                     "split changed since training."):
    evaluator.checked_data(run_dir.load_run(copy))


def test_validation_images_retrieve_each_other(tiny_run):
  # The validation mAP is leave-one-out retrieval among the held-out images,
  # not retrieval of the images fitted on: each held-out image against the
  # others, with its own row deleted.
  model_dir, _ = tiny_run
  run = run_dir.load_run(model_dir)
  data = run_dir.load_data(run.config)
  _, held_out, _ = run_dir.split_training_part(run.config, data)
  codes, labels = inference.encode(run.model, held_out, batch_size=64)
  expected = np.mean([
      metrics.mean_average_precision(codes[i:i + 1], labels[i:i + 1],
                                     np.delete(codes, i, 0),
                                     np.delete(labels, i, 0))
      for i in range(len(codes))])
  with open(os.path.join(model_dir, "metrics.json")) as f:
    trained = json.load(f)
  assert trained["validation_mAP"] == pytest.approx(expected, abs=1e-9)

  # Scoring again without the test queries rewrites only the validation.
  again = evaluator.evaluate_run_dir(model_dir, test=False)
  assert again["validation_mAP"] == pytest.approx(expected, abs=1e-9)
  assert again == {**trained, "validation_mAP": again["validation_mAP"],
                   "validation_diagnostics": again["validation_diagnostics"]}
  assert again["validation_diagnostics"]["distinct_codes"] == len(
      np.unique(codes, axis=0))


def test_evaluate_rewrites_metrics_and_pictures(tiny_run):
  model_dir, _ = tiny_run
  with open(os.path.join(model_dir, "metrics.json")) as f:
    trained = json.load(f)
  os.remove(os.path.join(model_dir, "retrievals.png"))
  returned = evaluator.evaluate_run_dir(model_dir)
  with open(os.path.join(model_dir, "metrics.json")) as f:
    evaluated = json.load(f)
  assert evaluated == {**trained, **returned}
  assert evaluated["mAP"] == pytest.approx(trained["mAP"])
  assert evaluated["train_seconds"] == trained["train_seconds"]
  for key in ("P@H<=2", "R@H<=2", "P@100", "P@500", "P@1000"):
    assert 0 <= evaluated[key] <= 1, key
  assert os.path.getsize(os.path.join(model_dir, "retrievals.png")) > 10_000


def test_evaluate_of_a_directory_that_is_not_a_run_is_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "dhe_tf.evaluate", f"--model_dir={tmp_path}"],
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      f"dhe_tf.evaluate: error: {tmp_path}/flags.json does not exist: "
      "--model_dir must be a finished dhe_tf.train run.")


_LOAD_IN_A_FRESH_PROCESS = """
import sys
import keras
from dhe_tf.model import network as model
path = sys.argv[1]
loaded = model.load_model(path)  # The optimizer and losses come back too.
assert type(loaded.optimizer).__name__ == "FineTuningAdam"
assert type(keras.saving.load_model(path).optimizer) is type(loaded.optimizer)
assert getattr(model.load_model(path, compile=False), "optimizer", None) is None
assert not [m for m in sys.modules if m in (
    "dhe_tf.training.trainer", "dhe_tf.runs.config", "dhe_tf.training.methods", "dhe_tf.training.callbacks")]
print("loaded")
"""


def test_a_fresh_process_loads_the_model_through_dhe_tf_alone(tiny_run):
  model_dir, _ = tiny_run
  result = subprocess.run(
      [sys.executable, "-c", _LOAD_IN_A_FRESH_PROCESS,
       os.path.join(model_dir, "model.keras")],
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == "loaded"


def test_a_validation_split_of_one_image_is_refused_before_writing(tmp_path):
  config = config_lib.TrainConfig(dataset="embedded", protocol="tiny",
                                  backbone="small_cnn", bits=8, epochs=1,
                                  validation_fraction=0.002)
  with pytest.raises(ConfigError, match="holds out 1 of the 500 training "
                     "images; the validation images retrieve each other"):
    trainer.train(config, str(tmp_path / "run"), verbose=0)
  assert not os.path.exists(tmp_path / "run")
