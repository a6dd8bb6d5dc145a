"""The DHE model: outputs, codes, backbones, weights and saving."""

import os

import keras
import numpy as np
import pytest

from dhe_tf.core import codewords as codewords_lib
from dhe_tf.core import downloads
from dhe_tf.model import network as model_lib
from dhe_tf.core.errors import ConfigError
from dhe_tf.core.errors import DataUnavailableError


def _small(bits=12, classes=4, shape=(16, 16, 1)):
  return model_lib.build_model(backbone="small_cnn", bits=bits,
                               num_classes=classes, image_shape=shape)


def test_outputs_are_named_hash_and_logits_with_their_shapes():
  model = _small(bits=13, classes=5)
  outputs = model(np.zeros((3, 16, 16, 1), "float32"))
  assert set(outputs) == {"hash", "logits"}
  assert tuple(outputs["hash"].shape) == (3, 13)
  assert tuple(outputs["logits"].shape) == (3, 5)
  u = keras.ops.convert_to_numpy(outputs["hash"])
  assert np.all((u > 0) & (u < 1))
  assert model.get_layer("hash").activation is keras.activations.sigmoid


def test_keras_file_round_trip_gives_the_same_outputs(tmp_path):
  model = _small()
  images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 1))
  before = model.predict(images.astype("float32"), verbose=0)
  path = os.path.join(tmp_path, "model.keras")
  model.save(path)
  restored = keras.saving.load_model(path)
  after = restored.predict(images.astype("float32"), verbose=0)
  np.testing.assert_allclose(after["hash"], before["hash"], atol=1e-6)
  np.testing.assert_allclose(after["logits"], before["logits"], atol=1e-5)


def test_preprocessing_config_round_trip():
  layer = model_lib.ImagePreprocessing("resnet50", (32, 32), name="p")
  restored = model_lib.ImagePreprocessing.from_config(layer.get_config())
  assert restored.get_config() == layer.get_config()


def test_vgg16_preprocessing_matches_keras_applications():
  images = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3))
  layer = model_lib.ImagePreprocessing("vgg16")
  expected = keras.applications.vgg16.preprocess_input(images.copy())
  np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(images)),
                             expected, atol=1e-4)


def test_grey_images_become_rgb_for_pretrained_backbones():
  layer = model_lib.ImagePreprocessing("resnet50", (12, 12))
  out = layer(np.full((1, 6, 6, 1), 100.0, "float32"))
  assert tuple(out.shape) == (1, 12, 12, 3)


def test_vgg16_hash_layer_sits_on_fc7():
  model = model_lib.build_model(backbone="vgg16", bits=12, num_classes=10,
                                image_shape=(32, 32, 3))
  backbone = model.get_layer("backbone")
  assert backbone.output.shape[-1] == 4096
  assert backbone.layers[-1].name == "fc2"
  assert backbone.input.shape[1:] == (224, 224, 3)


def test_resnet50_hash_layer_sits_on_pooled_features():
  model = model_lib.build_model(backbone="resnet50", bits=12, num_classes=10,
                                image_shape=(32, 32, 3), image_size=32)
  assert model.get_layer("backbone").output.shape[-1] == 2048
  outputs = model(np.zeros((2, 32, 32, 3), "float32"))
  assert tuple(outputs["hash"].shape) == (2, 12)


def test_small_cnn_loads_a_weights_file(tmp_path):
  donor = _small()
  path = os.path.join(tmp_path, "backbone.weights.h5")
  donor.get_layer("backbone").save_weights(path)
  model = model_lib.build_model(backbone="small_cnn", bits=12, num_classes=4,
                                image_shape=(16, 16, 1), weights=path)
  for a, b in zip(model.get_layer("backbone").weights,
                  donor.get_layer("backbone").weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("kwargs, message", [
    (dict(backbone="vgg"), "Unknown backbone 'vgg'. Available: small_cnn"),
    (dict(bits=0), "Received: bits=0"),
    (dict(weights="/no/such/file.h5"), "weights=/no/such/file.h5"),
    (dict(weights="imagenet"), "small_cnn has no ImageNet weights"),
    (dict(backbone="vgg16", image_size=64), "Received: image_size=64"),
    (dict(head="tanh"), "Unknown head 'tanh'. Available: sigmoid"),
])
def test_bad_arguments_are_named(kwargs, message):
  args = dict(backbone="small_cnn", bits=8, num_classes=3,
              image_shape=(16, 16, 1))
  args.update(kwargs)
  with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
    model_lib.build_model(**args)


@pytest.mark.skipif(downloads.host_reachable("storage.googleapis.com"),
                    reason="online: ImageNet weights would be downloaded")
def test_unreachable_imagenet_weights_fail_fast_naming_the_flag(
    tmp_path, monkeypatch):
  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  with pytest.raises(DataUnavailableError, match="--weights=PATH"):
    model_lib.resolve_weights("vgg16", "imagenet")


def test_cached_imagenet_weights_need_no_network(tmp_path, monkeypatch):
  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  os.makedirs(tmp_path / "models")
  (tmp_path / "models" / model_lib.IMAGENET_WEIGHT_FILES["resnet50"]).touch()
  assert model_lib.resolve_weights("resnet50", "imagenet") == "imagenet"


def test_batchnorm_head_normalises_the_hash_pre_activation(tmp_path):
  model = model_lib.build_model(backbone="small_cnn", bits=12, num_classes=4,
                                image_shape=(16, 16, 1),
                                head="batchnorm_sigmoid")
  assert isinstance(model.get_layer("hash_batchnorm"),
                    keras.layers.BatchNormalization)
  assert not model.get_layer("hash_dense").use_bias
  assert model.get_layer("logits").input is model.get_layer("hash").output
  images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 1)).astype(
      "float32")
  # Training mode: each unit of z = logit(u) has batch mean 0 (β = 0).
  u = keras.ops.convert_to_numpy(model(images, training=True)["hash"])
  np.testing.assert_allclose(np.log(u / (1 - u)).mean(axis=0), 0, atol=1e-4)
  before = model.predict(images, verbose=0)
  path = os.path.join(tmp_path, "model.keras")
  model.save(path)
  restored = model_lib.load_model(path)
  after = restored.predict(images, verbose=0)
  np.testing.assert_allclose(after["hash"], before["hash"], atol=1e-6)
  np.testing.assert_allclose(
      keras.ops.convert_to_numpy(model_lib.encoder(restored)(images)),
      before["hash"], atol=1e-6)


def test_class_codes_head_classifies_the_features(tmp_path):
  model = model_lib.build_model(backbone="small_cnn", bits=8, num_classes=4,
                                image_shape=(16, 16, 1), head="class_codes")
  # Dense(C) on the 64-d pooled features, no K-unit bottleneck.
  assert tuple(model.get_layer("logits").kernel.shape) == (64, 4)
  images = np.random.default_rng(1).uniform(0, 255, (6, 16, 16, 1)).astype(
      "float32")
  outputs = model.predict(images, verbose=0)
  codewords = (codewords_lib.hash_centers(4, 8) + 1) / 2
  np.testing.assert_array_equal(outputs["hash"],
                                codewords[outputs["logits"].argmax(axis=1)])
  path = os.path.join(tmp_path, "model.keras")
  model.save(path)
  restored = model_lib.load_model(path)
  np.testing.assert_array_equal(restored.predict(images, verbose=0)["hash"],
                                outputs["hash"])
