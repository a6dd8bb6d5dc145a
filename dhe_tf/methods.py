"""Hashing methods under one training loop: which loss trains the hash layer.

Every method trains the same model (backbone → hash = Dense(K, sigmoid) →
logits = Dense(C)) on the same data with the same optimiser; only the
objective differs:

    hash_loss_weight · L_method(labels, u) + classification_weight · CE(logits)

`--method` picks L_method and the default weights; `--method_params`
overrides a baseline's hyper-parameters (DHE's have their own flags).
"""

import dataclasses
import inspect

from dhe_tf import baselines
from dhe_tf import losses
from dhe_tf.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Method:
  """A hashing method: its hash loss class and default objective weights."""
  summary: str
  loss: type | None  # None: no hash loss, classification alone.
  hash_loss_weight: float
  classification_weight: float


METHODS = {
    "dhe": Method("Hamming embedding loss + classification (the paper)",
                  losses.HammingEmbeddingLoss, 1.0, 1.0),
    "dlbhc": Method("latent sigmoid layer trained by classification alone "
                    "(Lin et al., CVPRW 2015)", None, 0.0, 1.0),
    "dpsh": Method("pairwise likelihood + quantization (Li et al., IJCAI 2016)",
                   baselines.DPSHLoss, 1.0, 0.0),
    "dsh": Method("contrastive loss with margin + regulariser (Liu et al., "
                  "CVPR 2016)", baselines.DSHLoss, 1.0, 0.0),
    "hashnet": Method("weighted pairwise cross-entropy with continuation (Cao "
                      "et al., ICCV 2017)", baselines.HashNetLoss, 1.0, 0.0),
    "csq": Method("central similarity to hash centres (Yuan et al., CVPR "
                  "2020)", baselines.CSQLoss, 1.0, 0.0),
}

# Constructor arguments that the run sets, not --method_params.
_SET_BY_RUN = {"self", "name", "kwargs", "num_classes", "bits"}
# DHE's hyper-parameters are TrainConfig fields with flags of their own.
_DHE_FIELDS = ("margin", "similar_weight", "dissimilar_weight",
               "quantization_weight", "distance")


def check_method(name):
  """Raises ConfigError unless `name` is a known method."""
  if name not in METHODS:
    raise ConfigError(f"Unknown method {name!r}. Available: "
                      f"{', '.join(METHODS)}")


def tunable_params(name):
  """{name: default} of the hyper-parameters `--method_params` may set."""
  loss = METHODS[name].loss
  if loss is None or loss is losses.HammingEmbeddingLoss:
    return {}
  signature = inspect.signature(loss.__init__)
  return {key: p.default for key, p in signature.parameters.items()
          if key not in _SET_BY_RUN}


def parse_params(name, pairs):
  """{key: float} from "key=value" strings, checked against method `name`.

  Raises:
    ConfigError: a malformed pair, an unknown key or a non-numeric value.
  """
  known = tunable_params(name)
  params = {}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    key = key.strip()
    if not sep:
      raise ConfigError(f"method_params entries are key=value. Received: "
                        f"{pair!r}")
    if key not in known:
      hint = (" (DHE's are set by --margin, --similar_weight, "
              "--dissimilar_weight, --quantization_weight)"
              if name == "dhe" else "")
      raise ConfigError(f"{name} has no parameter {key!r}{hint}. "
                        f"Available: {', '.join(known) or 'none'}")
    try:
      params[key] = type(known[key])(float(value))
    except ValueError:
      raise ConfigError(f"method_params {key} must be a number. "
                        f"Received: {value!r}") from None
    if params[key] < 0:
      raise ConfigError(f"method_params {key} must be ≥ 0. "
                        f"Received: {value!r}")
  return params


def hash_loss(config, *, num_classes):
  """The loss on the hash output for a run of `config`; None for DLBHC.

  Args:
    config: a TrainConfig (method, method_params, bits, DHE's fields, seed).
    num_classes: C, for methods with per-class targets (CSQ).
  """
  method = METHODS[config.method]
  if method.loss is None:
    return None
  if method.loss is losses.HammingEmbeddingLoss:
    return losses.HammingEmbeddingLoss(
        **{field: getattr(config, field) for field in _DHE_FIELDS})
  params = parse_params(config.method, config.method_params)
  if method.loss is baselines.CSQLoss:
    params.update(num_classes=num_classes, bits=config.bits)
  return method.loss(**params)


def callbacks(loss):
  """Training callbacks a hash loss needs (HashNet's continuation)."""
  if isinstance(loss, baselines.HashNetLoss):
    return [baselines.HashNetContinuation(loss)]
  return []
