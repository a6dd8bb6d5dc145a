"""Protocol `unseen`: train on 75 % of the classes, retrieve the others."""

import json
import os

import numpy as np
import pytest

from dhe_tf.runs import config as config_lib
from dhe_tf.training import trainer
from dhe_tf.data import datasets
from dhe_tf.data import splits
from dhe_tf.core.errors import ConfigError


def test_unseen_split_of_synthetic_classes():
  class_ids = np.repeat(np.arange(4), 30)
  split = splits.split_unseen_classes(class_ids, seen_classes=(1, 3),
                                      queries_per_class=5, train_per_class=8,
                                      seed=0)
  np.testing.assert_array_equal(np.bincount(class_ids[split["train"]],
                                            minlength=4), [0, 8, 0, 8])
  np.testing.assert_array_equal(np.bincount(class_ids[split["query"]],
                                            minlength=4), [5, 0, 5, 0])
  np.testing.assert_array_equal(
      split["database"], np.setdiff1d(np.flatnonzero(class_ids % 2 == 0),
                                      split["query"]))


def test_unseen_protocol_on_the_embedded_data():
  data = datasets.load_dataset("embedded", protocol="unseen", split_seed=3)
  _, class_ids = datasets.load_embedded_arrays()
  seen = data.split["seen_classes"]
  assert seen.dtype == np.int64 and len(seen) == 7
  assert list(seen) == sorted(set(seen)) and set(seen) <= set(range(10))
  unseen = sorted(set(range(10)) - set(seen))
  counts = {part: np.bincount(class_ids[data.split[part]], minlength=10)
            for part in ("train", "query", "database")}
  assert list(counts["train"][seen]) == [500] * 7
  assert not counts["train"][unseen].any()
  assert list(counts["query"][unseen]) == [100] * 3
  assert list(counts["database"][unseen]) == [900] * 3
  assert not counts["query"][seen].any() and not counts["database"][seen].any()
  assert not set(data.split["query"]) & set(data.split["database"])
  assert data.num_classes == 10 and data.topk is None  # Labels not remapped.
  for part in ("train", "query", "database"):
    assert data.parts[part].cardinality() == len(data.split[part])
  _, label = next(iter(data.parts["train"]))
  assert label.shape == (10,) and np.argmax(label) in seen


def test_seen_classes_are_seeded_or_as_given():
  load = lambda **kw: datasets.load_dataset("embedded", protocol="unseen",
                                            **kw).split
  first, again, other = load(split_seed=3), load(split_seed=3), load()
  for part in ("seen_classes", "train", "query", "database"):
    np.testing.assert_array_equal(first[part], again[part])
  assert not np.array_equal(first["seen_classes"], other["seen_classes"])
  given = load(seen_classes=(9, 0, 1, 2, 3, 4, 5))
  assert list(given["seen_classes"]) == [0, 1, 2, 3, 4, 5, 9]
  _, class_ids = datasets.load_embedded_arrays()
  assert set(class_ids[given["train"]]) == {0, 1, 2, 3, 4, 5, 9}
  assert set(class_ids[given["query"]]) == {6, 7, 8}


@pytest.mark.parametrize("protocol,seen", [
    ("unseen", (0, 10)), ("unseen", (1, 1)), ("unseen", tuple(range(10))),
    ("unseen", (-1,))])
def test_impossible_seen_classes_are_refused(protocol, seen):
  with pytest.raises(ConfigError, match=r"^seen_classes must be distinct "
                     r"class ids in 0\.\.9, leaving at least one class "
                     r"unseen\. Received: seen_classes="):
    config_lib.validate(config_lib.TrainConfig(protocol=protocol,
                                               seen_classes=seen))
  with pytest.raises(ConfigError, match="seen_classes must be distinct"):
    datasets.load_dataset("embedded", protocol=protocol, seen_classes=seen)


def test_seen_classes_under_another_protocol_are_refused():
  with pytest.raises(ConfigError, match="seen_classes applies to --protocol="
                     "unseen or unseen_tiny only, not '1k5k'. Received: "
                     "seen_classes=1,2"):
    config_lib.validate(config_lib.TrainConfig(seen_classes=(1, 2)))


def test_resolve_records_the_drawn_seen_classes_and_old_runs_load():
  config = config_lib.resolve(config_lib.TrainConfig(protocol="unseen",
                                                     split_seed=3))
  data = datasets.load_dataset("embedded", protocol="unseen", split_seed=3)
  assert config.seen_classes == tuple(data.split["seen_classes"])
  assert config_lib.resolve(config) == config
  assert config_lib.resolve(config_lib.TrainConfig()).seen_classes == ()
  values = json.loads(json.dumps(config_lib.to_json(config)))
  assert config_lib.from_json(values) == config
  del values["seen_classes"], values["sampler"], values["classes_per_batch"]
  assert config_lib.from_json(values).seen_classes == ()


def test_training_under_unseen_records_the_seen_classes(tmp_path):
  model_dir = str(tmp_path / "run")
  results = trainer.train(config_lib.TrainConfig(
      protocol="unseen_tiny", split_seed=2, bits=8, epochs=1, batch_size=25,
      sampler="balanced", classes_per_batch=5, jit_compile="false"),
                          model_dir, verbose=0)
  with open(os.path.join(model_dir, "flags.json"), encoding="utf-8") as f:
    flags = json.load(f)
  seen = datasets.resolve_seen_classes("embedded", "unseen_tiny",
                                       split_seed=2)
  assert tuple(flags["seen_classes"]) == seen and len(seen) == 7
  assert flags["sampler"] == "balanced" and flags["classes_per_batch"] == 5
  with np.load(os.path.join(model_dir, "split.npz")) as split:
    assert tuple(split["seen_classes"]) == seen
    assert len(split["train"]) == 350 and len(split["validation"]) == 35
  assert (results["num_queries"], results["num_database"]) == (30, 2970)
  assert 0 <= results["mAP"] <= 1
