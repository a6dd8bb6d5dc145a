"""Hashing methods under one training loop: the registry of what trains the codes.

Every method trains the same model (backbone → hash = Dense(K, sigmoid) →
logits = Dense(C)) on the same data with the same optimiser; only the
objective differs:

    hash_loss_weight · L_method(labels, u) + classification_weight · CE(logits)

A method that needs another head says so (`head`, one of
dhe_tf.model.HEADS): OrthoHash batch-normalises the hash pre-activation, and
the classifier-codes baseline classifies the features directly and outputs
its predicted class's codeword. A registry entry carries everything of its
method: the loss class on the hash layer, the model head, the default
weights of the two terms, the callbacks the loss needs during fit(), and the
settings `tools/benchmark_methods.py --tune` tries. The
loss's hyper-parameters are its constructor's keyword arguments, set for every
method the same way (`--method_params=key=value,...`) and checked against the
constructor; the run sets `num_classes` and `bits` itself. Adding a method is
its loss class and one entry here (docs/code.md, "Adding a method, a dataset or a search backend").
"""

import dataclasses
import inspect
import typing

from dhe_tf.losses import baselines
from dhe_tf.training import callbacks as callbacks_lib
from dhe_tf.losses import hamming_embedding as losses
from dhe_tf.core.errors import ConfigError


def _no_callbacks(loss):
  del loss
  return []


@dataclasses.dataclass(frozen=True)
class Method:
  """A hashing method.

  Attributes:
    summary: one line: what the objective is, and its paper.
    loss: the keras.losses.Loss class on the hash activations u [N, K], or
      None for classification alone.
    hash_loss_weight: default weight of the loss.
    classification_weight: default weight of the classifier's
      cross-entropy.
    tuning_grid: the settings a fair tuning tries, each a dict of
      TrainConfig overrides; the loss's hyper-parameters go under
      "method_params" as a dict.
    callbacks: loss → the keras callbacks it needs during fit().
    head: the model's head, one of dhe_tf.model.HEADS (build_model's
      `head`); "sigmoid" is the DHE model.
  """
  summary: str
  loss: type | None
  hash_loss_weight: float
  classification_weight: float
  tuning_grid: tuple
  callbacks: typing.Callable = _no_callbacks
  head: str = "sigmoid"


def _grid(**axes):
  """Every combination of `axes` (name → values) as method_params dicts."""
  names = list(axes)
  combos = [{}]
  for name in names:
    combos = [dict(c, **{name: v}) for c in combos for v in axes[name]]
  return tuple({"method_params": combo} for combo in combos)


# The grid of methods without loss hyper-parameters: learning rates.
_RATES = tuple({"learning_rate": lr}
               for lr in (1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 5e-3))

METHODS = {
    "dhe": Method(
        "Hamming embedding loss + classification (the paper)",
        losses.HammingEmbeddingLoss, 1.0, 1.0,
        _grid(margin=(0.5, 0.6, 0.7), quantization_weight=(0.0, 0.1))),
    "dlbhc": Method(
        "latent sigmoid layer trained by classification alone (Lin et al., "
        "CVPRW 2015)", None, 0.0, 1.0,
        # No hyper-parameters of its own: its budget goes to the rate.
        _RATES),
    "dpsh": Method(
        "pairwise likelihood + quantization (Li et al., IJCAI 2016)",
        baselines.DPSHLoss, 1.0, 0.0,
        _grid(quantization_weight=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0))),
    "dsh": Method(
        "contrastive loss with margin + regulariser (Liu et al., CVPR 2016)",
        baselines.DSHLoss, 1.0, 0.0,
        _grid(margin=(1.0, 2.0, 3.0), regularizer_weight=(0.01, 0.1))),
    "hashnet": Method(
        "weighted pairwise cross-entropy with continuation (Cao et al., ICCV "
        "2017)", baselines.HashNetLoss, 1.0, 0.0,
        # Scale 2.5 was added when the first six chose 5, the grid's edge.
        _grid(scale=(5.0, 10.0, 20.0), gamma=(0.005, 0.05)) +
        _grid(scale=(2.5,), gamma=(0.005, 0.05)),
        callbacks=lambda loss: [callbacks_lib.HashNetContinuation(loss)]),
    "csq": Method(
        "central similarity to hash centres (Yuan et al., CVPR 2020)",
        baselines.CSQLoss, 1.0, 0.0,
        _grid(quantization_weight=(1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0))),
    "orthohash": Method(
        "cross-entropy of scaled cosines to orthogonal codewords, with a "
        "margin, on a batch-normalised hash layer (Hoe et al., NeurIPS 2021)",
        baselines.OrthoHashLoss, 1.0, 0.0,
        # Margin 0.6 was added when the first six chose 0.4, the grid's edge.
        _grid(scale=(4.0, 8.0), margin=(0.1, 0.2, 0.4)) +
        _grid(scale=(4.0, 8.0), margin=(0.6,)),
        head="batchnorm_sigmoid"),
    "classifier_codes": Method(
        "the codeword of the predicted class, from a plain classifier "
        "(Sablayrolles et al., ICASSP 2017)", None, 0.0, 1.0,
        # No hyper-parameters of its own, as dlbhc: rates.
        _RATES,
        head="class_codes"),
}

# Constructor arguments the run sets, not --method_params.
SET_BY_RUN = ("num_classes", "bits")


def check_method(name):
  """Raises ConfigError unless `name` is a known method."""
  if name not in METHODS:
    raise ConfigError(f"Unknown method {name!r}. Available: "
                      f"{', '.join(METHODS)}")


def hyper_parameters(name):
  """{name: default} of the hyper-parameters of method `name`'s loss."""
  loss = METHODS[name].loss
  if loss is None:
    return {}
  signature = inspect.signature(loss.__init__)
  return {key: p.default for key, p in signature.parameters.items()
          if p.kind is p.POSITIONAL_OR_KEYWORD and key not in SET_BY_RUN
          and key not in ("self", "name")}


def parse_params(name, pairs):
  """{key: value} from "key=value" strings, checked against method `name`.

  Values take the type of the constructor's default (float, int or str);
  numbers must be ≥ 0.

  Raises:
    ConfigError: a malformed pair, an unknown key or a value of the wrong
      type, naming it and the method's keys.
  """
  known = hyper_parameters(name)
  params = {}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    key = key.strip()
    if not sep:
      raise ConfigError(f"method_params entries are key=value. Received: "
                        f"{pair!r}")
    if key not in known:
      raise ConfigError(f"{name} has no parameter {key!r}. "
                        f"Available: {', '.join(known) or 'none'}")
    kind = type(known[key])
    if kind is str:
      params[key] = value
      continue
    try:
      params[key] = kind(float(value))
    except ValueError:
      raise ConfigError(f"method_params {key} must be a number. "
                        f"Received: {value!r}") from None
    if params[key] < 0:
      raise ConfigError(f"method_params {key} must be ≥ 0. "
                        f"Received: {value!r}")
  return params


def format_params(params):
  """("key=value", ...) of a {key: value} dict, as --method_params takes."""
  return tuple(f"{key}={value}" for key, value in params.items())


def resolved_params(name, pairs):
  """Every hyper-parameter of method `name` as "key=value" strings: the
  given ones over the loss's defaults, in constructor order, so flags.json
  records all the values a run used."""
  return format_params({**hyper_parameters(name),
                        **parse_params(name, pairs)})


def make_loss(name, pairs, *, num_classes, bits):
  """The loss on the hash output of method `name`; None for methods
  trained by classification alone (dlbhc, classifier_codes).

  Args:
    name: a key of METHODS.
    pairs: "key=value" hyper-parameters (parse_params).
    num_classes: C, for losses with per-class targets (CSQ).
    bits: K.

  Raises:
    ConfigError: a hyper-parameter the loss refuses, with its message.
  """
  method = METHODS[name]
  if method.loss is None:
    return None
  params = parse_params(name, pairs)
  accepted = inspect.signature(method.loss.__init__).parameters
  run = {key: value for key, value in
         dict(num_classes=num_classes, bits=bits).items() if key in accepted}
  try:
    return method.loss(**params, **run)
  except ValueError as e:
    raise ConfigError(f"method_params of {name}: {e}") from None
