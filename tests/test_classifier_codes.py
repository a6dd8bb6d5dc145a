"""Methods with their own head, trained for real: classifier codes and
OrthoHash (dhe_tf.training.methods), the classifier numbers of metrics.json, and the
export of a classifier-codes run."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.core import codewords as codewords_lib
from dhe_tf.core import codes as codes_lib
from dhe_tf.runs import config as config_lib
from dhe_tf.evaluation import evaluator
from dhe_tf.saved_model import exporter
from dhe_tf.model import inference
from dhe_tf.model import network as model_lib
from dhe_tf.runs import run_dir
from dhe_tf.training import trainer
from dhe_tf.data import datasets
from dhe_tf.core.errors import ConfigError

# The shared tiny run (conftest.TINY_RUN), shortened: 10 classes, 12 bits.
_TINY = dict(protocol="tiny", epochs=2, batch_size=50, bits=12)


@pytest.fixture(scope="module")
def classifier_codes_run(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("classifier_codes") / "run")
  results = trainer.train(config_lib.TrainConfig(
      method="classifier_codes", **_TINY), model_dir, verbose=0)
  return model_dir, results


def test_database_codes_are_codewords_of_classes(classifier_codes_run):
  model_dir, results = classifier_codes_run
  run = run_dir.load_run(model_dir)
  data = run_dir.load_data(run.config)
  codes, _, logits = inference.encode(run.model, data.parts["database"],
                                      batch_size=512, with_logits=True)
  codewords = ((codewords_lib.hash_centers(10, 12) + 1) / 2).astype(np.uint8)
  np.testing.assert_array_equal(codes, codewords[logits.argmax(axis=1)])
  assert results["distinct_database_codes"] == len(
      np.unique(codes, axis=0)) <= 10
  assert 0.1 < results["classifier_accuracy"] <= 1.0
  with open(os.path.join(model_dir, "metrics.json"), encoding="utf-8") as f:
    written = json.load(f)
  assert written["classifier_accuracy"] == results["classifier_accuracy"]
  assert written["distinct_database_codes"] == results[
      "distinct_database_codes"]


def test_evaluating_again_scores_the_classifier_alike(classifier_codes_run):
  model_dir, results = classifier_codes_run
  again = evaluator.evaluate_run_dir(model_dir)
  for key in ("mAP", "classifier_accuracy", "distinct_database_codes"):
    assert again[key] == pytest.approx(results[key])


def test_orthohash_trains_its_batchnorm_head_without_classifier(tmp_path):
  results = trainer.train(config_lib.TrainConfig(method="orthohash", **_TINY),
                          str(tmp_path / "run"), verbose=0)
  assert "classifier_accuracy" not in results  # Its classifier is frozen.
  assert 1 < results["distinct_database_codes"] <= results["num_database"]
  assert 0 < results["mAP"] <= 1
  model = run_dir.load_run(str(tmp_path / "run")).model
  assert model.get_layer("hash_batchnorm") is not None


class _Config:  # What scores_classifier reads of a TrainConfig.
  def __init__(self, classification_weight):
    self.classification_weight = classification_weight


def test_classifier_accuracy_only_where_it_means_something():
  tiny, unseen = (datasets.load_dataset("embedded", protocol=protocol)
                  for protocol in ("tiny", "unseen_tiny"))
  assert evaluator.scores_classifier(_Config(1.0), tiny)
  assert not evaluator.scores_classifier(_Config(0.0), tiny)
  # Queries of classes never trained on: no accuracy to speak of.
  assert not evaluator.scores_classifier(_Config(1.0), unseen)
  multi_label = dataclasses.replace(tiny, multi_label=True)
  assert not evaluator.scores_classifier(_Config(1.0), multi_label)


def test_classifier_codes_has_no_hash_loss_to_weigh():
  with pytest.raises(ConfigError, match="classifier_codes has no hash loss"):
    config_lib.validate(config_lib.TrainConfig(method="classifier_codes",
                                               hash_loss_weight=1.0))


def test_exported_classifier_codes_serve_the_same_bits(classifier_codes_run,
                                                       tmp_path):
  model_dir, _ = classifier_codes_run
  run = run_dir.load_run(model_dir)
  images, _ = datasets.load_embedded_arrays()
  pixels = images[:16].astype("float32")
  expected = codes_lib.binarize(
      model_lib.encoder(run.model)(pixels, training=False))
  export = exporter.export_run(model_dir, str(tmp_path / "export"))
  served = tf.saved_model.load(export).signatures["pixels"](
      images=tf.constant(pixels))
  np.testing.assert_array_equal(served["bits"].numpy(), expected)
