"""dhe_tf.runs.config: one field table, and flags, flags.json and flagfiles from it."""

import dataclasses
import glob
import json
import os

from absl import flags
import pytest

from dhe_tf.runs import config as config_lib
from dhe_tf.core.errors import ConfigError

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILES = sorted(glob.glob(os.path.join(_ROOT, "flags", "*.flags")))


def _parse(*argv):
  flag_values = flags.FlagValues()
  config_lib.define_flags(flag_values)
  flag_values(["dhe_tf.train", *argv])
  return config_lib.from_flags(flag_values)


def test_every_field_is_a_flag_with_its_default_and_help():
  flag_values = flags.FlagValues()
  config_lib.define_flags(flag_values)
  assert set(flag_values) == set(config_lib.FIELDS)
  for name, field in config_lib.FIELDS.items():
    assert flag_values[name].help == field.metadata["help"], name
  assert _parse() == config_lib.TrainConfig()


def test_flags_become_typed_fields():
  config = _parse("--bits=12", "--fc_units=512,256", "--topk=0",
                  "--image_size=0", "--data_cache=", "--evaluate_test=false",
                  "--method_params=margin=0.5,distance=squared",
                  "--hash_loss_weight=2")
  assert config == config_lib.TrainConfig(
      bits=12, fc_units=(512, 256), topk=None, image_size=None,
      data_cache=None, evaluate_test=False,
      method_params=("margin=0.5", "distance=squared"), hash_loss_weight=2.0)


def test_a_weight_of_zero_turns_its_term_off():
  # 0 means "unset" for other optional numbers (topk, image_size); for the
  # objective's weights it is a setting: DHE without its classifier.
  config = _parse("--classification_weight=0")
  assert config.classification_weight == 0.0
  assert config_lib.resolve(config).classification_weight == 0.0
  assert config_lib.parse_args(["--hash_loss_weight=0"]) == dict(
      hash_loss_weight=0.0)
  assert config_lib.resolve(_parse()).classification_weight == 1.0


def test_a_list_of_the_wrong_type_names_the_flag():
  with pytest.raises(ConfigError, match="fc_units must be a comma-separated "
                     "list of int. Received: fc_units=512,big"):
    _parse("--fc_units=512,big")


def test_json_round_trip_keeps_tuples_and_none():
  config = config_lib.TrainConfig(lr_schedule="step", lr_decay_epochs=(5, 8),
                                  fc_units=(64,), method_params=("margin=1",))
  values = json.loads(json.dumps(config_lib.to_json(config)))
  assert values == json.loads(json.dumps(dataclasses.asdict(config)))
  assert config_lib.from_json(values) == config


def test_unknown_json_fields_are_named():
  with pytest.raises(ConfigError, match="does not know: colour"):
    config_lib.from_json({"bits": 12, "colour": "red"})


@pytest.mark.parametrize("path", FLAGFILES, ids=os.path.basename)
def test_every_flagfile_gives_a_valid_config_and_says_how_to_run_it(path):
  with open(path, encoding="utf-8") as f:
    header = f.read().split("\n--", 1)[0]
  assert "python -m dhe_tf.train --flagfile=flags/" in header, path
  assert "untime" in header, "a flagfile states its runtime"
  values = config_lib.read_flagfile(path)
  config = config_lib.validate(config_lib.TrainConfig(**values))
  assert config_lib.validate(config) == config  # Resolved once for all.
  if config.weights == "imagenet":  # The paper's settings fine-tune.
    assert config.backbone_lr_multiplier < 1 and config.weight_decay > 0


def test_written_flagfile_reads_back_as_the_same_config(tmp_path):
  config = config_lib.TrainConfig(
      method="hashnet", method_params=("scale=10", "gamma=0.05"), bits=12,
      fc_units=(64,), evaluate_test=False, learning_rate=3e-4)
  path = str(tmp_path / "x.flags")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(["# comment"] + config_lib.flagfile_lines(
        config, list(config_lib.FIELDS))) + "\n")
  assert config_lib.TrainConfig(**config_lib.read_flagfile(path)) == config


def test_a_flagfile_with_a_stray_flag_or_missing_is_named(tmp_path):
  path = tmp_path / "bad.flags"
  path.write_text("--bits=12\n--colour=red\n")
  with pytest.raises(ConfigError, match="bad.flags: .*colour"):
    config_lib.read_flagfile(str(path))
  with pytest.raises(ConfigError, match="nothere.flags"):
    config_lib.read_flagfile(str(tmp_path / "nothere.flags"))


def test_head_defaults_to_the_method_s_and_can_be_chosen():
  def resolved(**values):
    return config_lib.resolve(config_lib.TrainConfig(**values)).head
  assert resolved(method="dhe") == "sigmoid"
  assert resolved(method="orthohash") == "batchnorm_sigmoid"
  assert resolved(method="classifier_codes") == "class_codes"
  assert resolved(method="dhe", head="batchnorm_sigmoid") == (
      "batchnorm_sigmoid")
  assert config_lib.validate(config_lib.TrainConfig(
      method="dhe", head="batchnorm_sigmoid")).head == "batchnorm_sigmoid"


@pytest.mark.parametrize("values, message", [
    (dict(head="tanh"), "Unknown head 'tanh'. Available: sigmoid, "
     "batchnorm_sigmoid, class_codes"),
    (dict(method="dhe", head="class_codes"),
     "head=class_codes gives codes no gradient"),
    (dict(method="classifier_codes", hamming_classifier=2.0),
     "hamming_classifier and classifier_reads do not apply to it"),
    (dict(classifier_reads="logits"),
     "classifier_reads is activations, codes or features. Received: "
     "classifier_reads='logits'"),
    (dict(classifier_reads="features", hamming_classifier=2.0),
     "hamming_classifier scores codes; with classifier_reads=features"),
    (dict(hamming_classifier=-1.0),
     "hamming_classifier must be at least 0. Received: hamming_classifier=-1"),
])
def test_a_bad_head_is_named(values, message):
  with pytest.raises(ConfigError, match=message):
    config_lib.validate(config_lib.TrainConfig(**values))
