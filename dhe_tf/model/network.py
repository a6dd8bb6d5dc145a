"""The DHE model: a CNN, a hidden sigmoid hash layer, and a classifier on top.

    image [B, H, W, C] (0..255) → ImagePreprocessing → backbone → features
      → Dense(fc_units, relu)… → hash = Dense(K, sigmoid) → logits = Dense(C)

The hash layer is inserted at the end of the CNN, after the last layer that
transfers from ImageNet: for VGG16 that is fc7 (`fc2` in keras.applications,
so the pretrained fully-connected layers are kept and the input is 224 px), for
ResNet50 the pooled 2048-d feature. Its activations are the hash codes: bit k
of an image is 1 when its activation u_k ≥ 0.5.

A method may ask for another head (HEADS; dhe_tf.training.methods): the hash layer's
pre-activation batch-normalised (OrthoHash), or the classifier straight on
the features with the hash output the codeword of its predicted class
(classifier codes).
"""

import os

import keras

from dhe_tf.core import downloads
from dhe_tf.model import heads
from dhe_tf.core.errors import ConfigError
from dhe_tf.core.errors import DataUnavailableError

BACKBONES = ("small_cnn", "cnn", "vgg16", "resnet50")
# What sits between the features and the outputs (build_model).
# Backbones trained from scratch on images of their native size.
_FROM_SCRATCH = ("small_cnn", "cnn")

# Files keras.applications downloads for weights="imagenet" into
# $KERAS_HOME/models (default ~/.keras/models).
IMAGENET_WEIGHT_FILES = {
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
_WEIGHTS_HOST = "storage.googleapis.com"

# Input side of each pretrained backbone (VGG16's fc6 fixes it to 224).
DEFAULT_IMAGE_SIZE = {"vgg16": 224, "resnet50": 224}


@keras.saving.register_keras_serializable(package="dhe_tf")
class ImagePreprocessing(keras.layers.Layer):
  """Turns 0..255 images into what a backbone expects, inside the graph.

  Keeping this in the model means a saved or exported model takes raw pixels,
  so training, evaluation and serving cannot disagree on preprocessing.

  Args:
    backbone: one of BACKBONES; "vgg16" and "resnet50" get their
      keras.applications `preprocess_input` (RGB→BGR, ImageNet mean removed),
      "small_cnn" and "cnn" get pixels scaled to [0, 1].
    size: (height, width) to resize to, or None to keep the input size.
    **kwargs: forwarded to keras.layers.Layer.

  Input: float or uint8 [B, H, W, C] with C = 1 or 3; grey images are repeated
  to 3 channels for the pretrained backbones. Output: float32
  [B, height, width, 3] (or C channels for "small_cnn").
  """

  def __init__(self, backbone, size=None, **kwargs):
    super().__init__(**kwargs)
    self.backbone = backbone
    self.size = tuple(size) if size is not None else None

  def call(self, images):
    x = keras.ops.cast(images, "float32")
    if self.backbone in _FROM_SCRATCH:
      x = x / 255.0
    else:
      if x.shape[-1] == 1:
        x = keras.ops.repeat(x, 3, axis=-1)
    if self.size is not None and tuple(x.shape[1:3]) != self.size:
      x = keras.ops.image.resize(x, self.size, interpolation="bilinear")
    if self.backbone == "vgg16":
      x = keras.applications.vgg16.preprocess_input(x)
    elif self.backbone == "resnet50":
      x = keras.applications.resnet50.preprocess_input(x)
    return x

  def get_config(self):
    config = super().get_config()
    config.update(backbone=self.backbone, size=self.size)
    return config


def resolve_weights(backbone, weights):
  """Checks a --weights value; returns what keras.applications takes.

  Args:
    backbone: one of BACKBONES.
    weights: "imagenet", "none" / "" / None (random initialisation), or the
      path of a weights file (for small_cnn: a `.weights.h5` of the backbone).

  Returns:
    "imagenet", None or the path.

  Raises:
    ConfigError: a path that does not exist, or ImageNet weights for
      small_cnn.
    DataUnavailableError: ImageNet weights are neither cached nor
      downloadable.
  """
  if weights is None or str(weights).lower() in ("", "none"):
    return None
  if weights == "imagenet":
    if backbone in _FROM_SCRATCH:
      raise ConfigError(f"{backbone} has no ImageNet weights; use "
                        "--weights=none or a weights file. Received: "
                        "weights=imagenet")
    filename = IMAGENET_WEIGHT_FILES[backbone]
    cache = os.path.join(
        os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
    if (not os.path.exists(os.path.join(cache, filename)) and
        not downloads.host_reachable(_WEIGHTS_HOST)):
      raise DataUnavailableError(
          f"ImageNet weights for {backbone} are not in {cache} and "
          f"{_WEIGHTS_HOST} cannot be reached: pass --weights=PATH to a local "
          f"copy of {filename}, or --weights=none to train from scratch.")
    return "imagenet"
  if not os.path.isfile(weights):
    raise ConfigError(f"Weights file not found. Received: weights={weights}")
  return weights


def _small_cnn(input_shape, weights):
  """Three conv blocks for CPU work and tests: 64-d pooled features.

  Batch-norm statistics use momentum 0.9 (Keras' default is 0.99) so that
  they settle within the few hundred steps of a CPU run; with 0.99 the
  inference-mode codes of a short run are nearly constant.
  """
  inputs = keras.Input(input_shape)
  x = inputs
  for filters, pool in ((16, True), (32, True), (64, False)):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    if pool:
      x = keras.layers.MaxPooling2D()(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  backbone = keras.Model(inputs, x, name="backbone")
  if weights is not None:
    backbone.load_weights(weights)
  return backbone


def _cnn(input_shape, weights):
  """The field's small CNN for 28–32 px images: 256-d features.

      [conv3×3(f) → BN → ReLU → max-pool 2×2] for f = 32, 64, 128
      → flatten → Dense(256, ReLU) → Dropout(0.5)

  The size of the networks supervised hashing papers train from scratch on
  CIFAR-10 and MNIST-like data (DSH's net has three conv blocks of 32–64
  filters); on 2 CPU cores it trains at ~1,000 images/s (28 px, batch 128),
  and classifies Fashion-MNIST far better than small_cnn. Batch-norm momentum
  0.9, as in small_cnn.
  """
  inputs = keras.Input(input_shape)
  x = inputs
  for filters in (32, 64, 128):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dense(256, activation="relu")(x)
  x = keras.layers.Dropout(0.5)(x)
  backbone = keras.Model(inputs, x, name="backbone")
  if weights is not None:
    backbone.load_weights(weights)
  return backbone


def _vgg16(input_shape, weights):
  """VGG16 up to fc7 (`fc2`): 4096-d features, pretrained FC layers kept."""
  vgg = keras.applications.VGG16(include_top=True, weights=weights,
                                 input_shape=input_shape)
  return keras.Model(vgg.input, vgg.get_layer("fc2").output, name="backbone")


def _resnet50(input_shape, weights):
  """ResNet50 with global average pooling: 2048-d features."""
  resnet = keras.applications.ResNet50(include_top=False, weights=weights,
                                       input_shape=input_shape, pooling="avg")
  return keras.Model(resnet.input, resnet.output, name="backbone")


_BUILDERS = {"small_cnn": _small_cnn, "cnn": _cnn, "vgg16": _vgg16,
             "resnet50": _resnet50}


def check_backbone(backbone):
  if backbone not in BACKBONES:
    raise ConfigError(f"Unknown backbone {backbone!r}. "
                      f"Available: {', '.join(BACKBONES)}")


CLASSIFIER_READS = ("activations", "codes", "features")


def check_head(head, hamming_classifier=None, classifier_reads="activations"):
  """Raises ConfigError for an unknown head or classifier, or one that does
  not apply to the head."""
  if head not in HEADS:
    raise ConfigError(f"Unknown head {head!r}. Available: {', '.join(HEADS)}")
  if classifier_reads not in CLASSIFIER_READS:
    raise ConfigError("classifier_reads is activations, codes or features. "
                      f"Received: classifier_reads={classifier_reads!r}")
  if classifier_reads == "features" and hamming_classifier:
    raise ConfigError("hamming_classifier scores codes; with "
                      "classifier_reads=features the classifier reads the "
                      "features before the hash layer. Use one of them.")
  if head == "class_codes" and (hamming_classifier or
                                classifier_reads != "activations"):
    raise ConfigError("head=class_codes classifies the features, not the "
                      "codes: hamming_classifier and classifier_reads do not "
                      "apply to it.")


def _classifier(x, codes, num_classes, hamming_classifier, classifier_reads):
  # logits [B, C] of the classifier on the hash layer (the paper's dense one,
  # or heads.HammingClassifier), reading u or, straight through, b = [u ≥ ½];
  # or a dense one on the features x the hash layer reads (an auxiliary
  # head: it shapes the backbone, and the hash layer gets no gradient from it).
  if classifier_reads == "features":
    return keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
  read = codes
  if classifier_reads == "codes":
    read = heads.StraightThrough(name="binary_codes", dtype="float32")(codes)
  if hamming_classifier:
    return heads.HammingClassifier(num_classes, hamming_classifier,
                                   name="logits", dtype="float32")(read)
  return keras.layers.Dense(num_classes, name="logits", dtype="float32")(read)


def _sigmoid_head(x, *, bits, num_classes, hamming_classifier,
                  classifier_reads, multi_label):
  del multi_label  # The classifier's loss says it (objective).
  codes = keras.layers.Dense(bits, activation="sigmoid", name="hash",
                             dtype="float32")(x)
  return codes, _classifier(x, codes, num_classes, hamming_classifier,
                            classifier_reads)


def _batchnorm_sigmoid_head(x, *, bits, num_classes, hamming_classifier,
                            classifier_reads, multi_label):
  del multi_label
  z = keras.layers.Dense(bits, use_bias=False, name="hash_dense",
                         dtype="float32")(x)
  z = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5,
                                      name="hash_batchnorm",
                                      dtype="float32")(z)
  codes = keras.layers.Activation("sigmoid", name="hash", dtype="float32")(z)
  return codes, _classifier(x, codes, num_classes, hamming_classifier,
                            classifier_reads)


def _class_codes_head(x, *, bits, num_classes, hamming_classifier,
                      classifier_reads, multi_label):
  del hamming_classifier, classifier_reads  # check_head refuses them.
  logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
  codes = heads.ClassCodewords(num_classes, bits, multi_label=multi_label,
                               name="hash", dtype="float32")(logits)
  return codes, logits


# Features x → (hash, logits); see build_model's `head`.
HEADS = {"sigmoid": _sigmoid_head,
         "batchnorm_sigmoid": _batchnorm_sigmoid_head,
         "class_codes": _class_codes_head}


def _backbone_input(backbone, image_shape, image_size):
  """(size the images are resized to or None, the backbone's input shape)."""
  if backbone in _FROM_SCRATCH:
    return None, tuple(image_shape)
  side = image_size or DEFAULT_IMAGE_SIZE[backbone]
  if backbone == "vgg16" and side != 224:
    raise ConfigError("vgg16 keeps its fully-connected layers and needs "
                      f"224 px images. Received: image_size={side}")
  return (side, side), (side, side, 3)


def build_model(*, backbone, bits, num_classes, image_shape, weights=None,
                fc_units=(), image_size=None, head="sigmoid",
                hamming_classifier=None, classifier_reads="activations",
                multi_label=False):
  """Builds the DHE model, or the variant of head `head`.

  Args:
    backbone: one of BACKBONES.
    bits: K, the code length (units of the hash layer), ≥ 1.
    num_classes: C, units of the classifier on top of the hash layer.
    image_shape: (H, W, C) of the input images.
    weights: see resolve_weights.
    fc_units: sizes of optional ReLU layers between backbone and hash layer.
    image_size: side the pretrained backbones see (images are resized in
      the graph); None for the backbone's default. VGG16 requires 224.
    head: one of HEADS (a method's, dhe_tf.training.methods), features x → outputs:
      "sigmoid": hash = Dense(K, sigmoid)(x), logits = Dense(C)(hash);
      "batchnorm_sigmoid": hash = sigmoid(BN(Dense(K, no bias)(x))) (layers
        "hash_dense", "hash_batchnorm"; BN momentum 0.9, ε = 1e-5, PyTorch's
        BatchNorm1d defaults as in OrthoHash's code), logits as above;
      "class_codes": logits = Dense(C)(x), hash = heads.ClassCodewords(logits),
        0/1 codes.
    hamming_classifier: β > 0 for logits = heads.HammingClassifier(C, β)
      (hash) instead of Dense(C)(hash), under "sigmoid" and
      "batchnorm_sigmoid"; None or 0 for the dense classifier.
    classifier_reads: what the classifier sees: "activations" (u, the
      paper's), "codes" (b = [u ≥ ½] through heads.StraightThrough) or
      "features" (logits = Dense(C)(x), beside the hash layer rather than on
      it: classification shapes the backbone, and only the method's loss
      trains the hash layer).
    multi_label: for "class_codes": whether several classes may be
      predicted (ClassCodewords).

  Returns:
    A functional keras.Model from "image" float [B, H, W, C] in 0..255 to
    {"hash": float32 [B, K] in (0, 1) ([0, 1] for "class_codes"),
    "logits": float32 [B, C]}. Its layer "hash" gives the hash output.
  """
  check_backbone(backbone)
  check_head(head, hamming_classifier, classifier_reads)
  if bits < 1:
    raise ConfigError(f"bits must be at least 1. Received: bits={bits}")
  weights = resolve_weights(backbone, weights)
  size, backbone_shape = _backbone_input(backbone, image_shape, image_size)
  inputs = keras.Input(tuple(image_shape), name="image")
  x = ImagePreprocessing(backbone, size, name="preprocessing")(inputs)
  x = _BUILDERS[backbone](backbone_shape, weights)(x)
  for i, units in enumerate(fc_units):
    x = keras.layers.Dense(units, activation="relu", name=f"fc_{i}")(x)
  codes, logits = HEADS[head](
      x, bits=bits, num_classes=num_classes,
      hamming_classifier=hamming_classifier,
      classifier_reads=classifier_reads, multi_label=multi_label)
  return keras.Model(inputs, {"hash": codes, "logits": logits},
                     name=f"dhe_{backbone}_{bits}bits")


def encoder(model):
  """The sub-model from images to hash-layer activations [B, K]."""
  return keras.Model(model.inputs, model.get_layer("hash").output)


def load_model(path, *, compile=True):  # pylint: disable=redefined-builtin
  """Loads a model saved by dhe_tf.train (RUN/model.keras).

  Importing dhe_tf registers every custom object it needs (layers, losses,
  optimizer, schedules). compile=False loads it for inference only, without
  its optimizer and losses.
  """
  return keras.saving.load_model(path, compile=compile)
