"""The method registry: every entry complete, hyper-parameters checked alike."""

import inspect
import re

import keras
import numpy as np
import pytest

from dhe_tf.losses import baselines
from dhe_tf.runs import config as config_lib
from dhe_tf.losses import hamming_embedding as losses
from dhe_tf.training import methods
from dhe_tf.model import network as model_lib
from dhe_tf.core.errors import ConfigError

_TRAINING_GUIDE = open("docs/training.md", encoding="utf-8").read()


@pytest.mark.parametrize("name", list(methods.METHODS))
def test_every_registry_entry_has_every_piece(name):
  method = methods.METHODS[name]
  assert method.summary and re.search(r"\d{4}|the paper", method.summary)
  assert f"| `{name}`" in _TRAINING_GUIDE, (
      "the methods table of docs/training.md lacks it")
  assert method.hash_loss_weight >= 0 and method.classification_weight >= 0
  assert method.hash_loss_weight + method.classification_weight > 0
  assert len(method.tuning_grid) >= 6
  assert method.head in model_lib.HEADS
  known = methods.hyper_parameters(name)
  fields = set(config_lib.FIELDS)
  for setting in method.tuning_grid:
    assert set(setting) <= fields, setting
    params = setting.get("method_params", {})
    assert set(params) <= set(known), params
    config_lib.validate(config_lib.TrainConfig(
        method=name, **dict(setting, method_params=methods.format_params(
            params))))
  loss = methods.make_loss(name, (), num_classes=10, bits=12)
  if method.loss is None:
    assert loss is None and not known
    return
  assert isinstance(loss, keras.losses.Loss)
  assert method.loss.__doc__ and "Reference" in method.loss.__doc__ or (
      "the paper" in method.summary)
  # One attribute per hyper-parameter, and a config that round-trips.
  for key, default in known.items():
    assert getattr(loss, key) == default, key
  again = keras.losses.deserialize(keras.losses.serialize(loss))
  assert again.get_config() == loss.get_config()
  u = np.random.default_rng(0).uniform(0.05, 0.95, (6, 12)).astype("float32")
  labels = np.eye(10, dtype="float32")[[0, 0, 1, 1, 2, 3]]
  assert np.isfinite(float(loss(labels, u)))
  assert all(isinstance(c, keras.callbacks.Callback)
             for c in method.callbacks(loss))


def test_hyper_parameters_are_the_constructor_arguments():
  assert methods.hyper_parameters("dhe") == {
      name: p.default for name, p in inspect.signature(
          losses.HammingEmbeddingLoss.__init__).parameters.items()
      if name not in ("self", "name", "kwargs") + methods.SET_BY_RUN}
  assert "num_classes" not in methods.hyper_parameters("csq")
  assert methods.hyper_parameters("dlbhc") == {}


def test_method_params_are_parsed_and_checked():
  assert methods.parse_params("dsh", ["margin=1.5", "regularizer_weight=0"]) \
      == {"margin": 1.5, "regularizer_weight": 0.0}
  assert methods.parse_params("csq", ["seed=3"]) == {"seed": 3}
  assert methods.parse_params("dhe", ["margin=0.5", "distance=squared"]) == {
      "margin": 0.5, "distance": "squared"}
  for method, pairs, message in [
      ("dsh", ["margin"], "key=value"),
      ("dsh", ["alpha=1"], "no parameter 'alpha'. Available: margin, "
       "regularizer_weight"),
      ("dsh", ["margin=big"], "must be a number"),
      ("dpsh", ["quantization_weight=-1"], "≥ 0"),
      ("dlbhc", ["margin=1"], "Available: none"),
  ]:
    with pytest.raises(ConfigError, match=message):
      methods.parse_params(method, pairs)
  with pytest.raises(ConfigError, match="Unknown method 'nope'. Available: "
                     "dhe, dlbhc"):
    methods.check_method("nope")


def test_the_loss_refuses_impossible_values_in_one_line():
  for pairs, message in [(["margin=1.5"], "margin is a fraction"),
                         (["distance=manhattan"], "Unknown distance")]:
    with pytest.raises(ConfigError, match="method_params of dhe: " + message):
      methods.make_loss("dhe", pairs, num_classes=10, bits=12)


def test_resolved_config_records_every_hyper_parameter():
  config = config_lib.resolve(config_lib.TrainConfig(
      method="dhe", method_params=("margin=0.5",)))
  assert config.method_params == (
      "margin=0.5", "similar_weight=0.25", "dissimilar_weight=1.0",
      "quantization_weight=0.1", "distance=expected", "codeword_weight=0.0",
      "codeword_radius=0.0", "codeword_loss=hinge", "codeword_scale=16.0",
      "codeword_margin=0.1", "seed=0")
  assert config_lib.resolve(config) == config  # Idempotent: resume compares.


def test_every_method_builds_its_loss_with_what_the_run_sets():
  expected = {"dhe": losses.HammingEmbeddingLoss, "dlbhc": type(None),
              "dpsh": baselines.DPSHLoss, "dsh": baselines.DSHLoss,
              "hashnet": baselines.HashNetLoss, "csq": baselines.CSQLoss,
              "orthohash": baselines.OrthoHashLoss,
              "classifier_codes": type(None)}
  assert set(expected) == set(methods.METHODS)
  for name, kind in expected.items():
    assert type(methods.make_loss(name, (), num_classes=10, bits=12)) is kind
  csq = methods.make_loss("csq", (), num_classes=10, bits=16)
  assert csq.centers.shape == (10, 16)


def test_runs_written_before_method_params_load_with_them():
  config = config_lib.from_json({"method": "dhe", "margin": 0.5,
                                 "distance": "expected", "bits": 12})
  assert config.method_params == ("margin=0.5", "distance=expected")
  other = config_lib.from_json({"method": "csq", "margin": 0.6})
  assert other.method_params == ()
