"""The configuration of a training run: one table, everything derived from it.

`TrainConfig` lists every setting a run depends on, each field with its
default and its help text. From that one table come

- the flags of `python -m dhe_tf.train` (`define_flags`, `from_flags`),
- RUN/flags.json (`to_json`, `from_json`),
- flagfiles in flags/ (`flagfile_lines` writes them; absl reads them, also
  for tools through `read_flagfile`),

and `resolve` and `validate` check a config against what it configures
(datasets, backbones, methods, schedules, hardware) before a run writes.

Field types map to flags: int, float, str and bool to the absl flag of that
type; `X | None` fields take None by default, and 0 (numbers, not weights)
or "" (text) on the command line also mean None; tuples are comma-separated.
"""

import dataclasses
import types
import typing

from absl import flags

from dhe_tf.training import hardware
from dhe_tf.training import methods
from dhe_tf.model import network as model_lib
from dhe_tf.training import optimization
from dhe_tf.data import datasets
from dhe_tf.data import pipeline
from dhe_tf.core.errors import ConfigError


def _field(default, help_text):
  return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run depends on; written to RUN/flags.json."""
  # The codes and the data.
  bits: int = _field(32, "Code length K: units of the hash layer.")
  dataset: str = _field(
      "embedded", f"Dataset: {', '.join(datasets.DATASETS)} "
      "(docs/data.md).")
  protocol: str = _field(
      "", "Query/train/database split protocol (1k5k: 100 queries and 500 "
      "training images per class, database = the rest; 10k50k for cifar10: "
      "official test set as queries, training set as database, mAP@1000; "
      "2k10k for nuswide_21: the lists of tools/prepare_nuswide.py, mAP@5000;"
      " unseen: train on 75 % of the classes, retrieve the others; tiny, "
      "unseen_tiny: trial runs). Empty: the dataset's default.")
  seen_classes: tuple[str, ...] = _field(
      (), "Classes trained on under --protocol=unseen, by id (or by name for"
      " folder and list data); empty = a seeded draw of 75 % with "
      "--split_seed; flags.json records the ids.")
  queries_per_class: int = _field(
      0, "Queries per class (per label) of folder and list data's protocols;"
      " 0 = 100 (the 1k5k rule).")
  train_per_class: int = _field(
      0, "Training images per class (per label), likewise; 0 = 500.")
  split_seed: int = _field(0, "Seed of the split; fixed so runs are "
                           "comparable.")
  data_dir: str | None = _field(
      None, "Directory with the dataset: IDX files for (fashion_)mnist, a "
      "tensorflow-datasets directory for cifar10, the train/test/database.txt"
      " lists for nuswide_21.")
  image_root: str | None = _field(
      None, "Directory the image paths of list files are relative to "
      "(nuswide_21); default: --data_dir.")
  on_bad_image: str = _field(
      "error", "Unusable list entries or image files: error (stop before "
      "training, naming them) or skip (drop them, report which).")
  data_cache: str | None = _field(
      None, "Cache of decoded images of image-file datasets: empty (none), "
      "'memory' (training images, queries) or a directory (reused by runs).")
  # The model.
  backbone: str = _field(
      "small_cnn", f"CNN: {', '.join(model_lib.BACKBONES)} "
      "(docs/training.md, 'The model').")
  weights: str | None = _field(
      "none", "Backbone weights: imagenet, none, or a weights file.")
  image_size: int | None = _field(
      None, "Side of the images the pretrained backbones see (resized in the "
      "graph), and of the images of image-file datasets (folder, list: "
      "fitted whole; nuswide_21: cropped); 0 = 224.")
  color_mode: str = _field(
      "rgb", "Images of folder and list data as rgb or grayscale.")
  fc_units: tuple[int, ...] = _field(
      (), "Sizes of ReLU layers between the backbone and the hash layer, e.g. "
      "512,256.")
  head: str = _field(
      "", "The hash layer: sigmoid (σ(Dense(x))), batchnorm_sigmoid (batch "
      "normalisation before the sigmoid, OrthoHash's) or class_codes (the "
      "codeword of the predicted class); empty = the method's own "
      "(docs/training.md, 'Methods').")
  hamming_classifier: float | None = _field(
      None, "β > 0: class scores b_c − β·d̂(u, σ(v_c)), the distance to a "
      "learned code per class (dhe_tf.model.heads); 0 = a dense layer (the paper's).")
  classifier_reads: str = _field(
      "activations", "What the classifier reads: activations (u, the "
      "paper's), codes (b = [u ≥ ½], gradients passed to u straight "
      "through) or features (the hash layer's input: an auxiliary head that "
      "trains the backbone, not the hash layer).")
  # The objective.
  method: str = _field(
      "dhe", "Hashing method, i.e. the loss on the hash layer: " + "; ".join(
          f"{name}: {m.summary}" for name, m in methods.METHODS.items()) +
      ".")
  method_params: tuple[str, ...] = _field(
      (), "key=value hyper-parameters of the method's loss, e.g. margin=0.5 "
      "for dhe or quantization_weight=0.05 for dpsh; unset ones take the "
      "loss's defaults, and flags.json records them all.")
  hash_loss_weight: float | None = _field(
      None, "Weight of the method's loss on the hash layer (0: off); default:"
      " the method's (1, or 0 for dlbhc and classifier_codes).")
  classification_weight: float | None = _field(
      None, "Weight of the classifier's cross-entropy (0: off); default: the "
      "method's (1 for dhe, dlbhc and classifier_codes, 0 for the others).")
  label_smoothing: float = _field(
      0.0, "Label smoothing ε of the classification loss: the target puts "
      "1 − ε on the labels and spreads ε over all classes (0: none).")
  hash_loss_warmup_epochs: float = _field(
      0.0, "Epochs over which the weight of the hash loss grows linearly "
      "from 0 to --hash_loss_weight (0: no warm-up).")
  # The optimisation.
  augment: str = _field(
      "none", "Augmentation of training images: none, or shift_flip (random "
      "shift ≤ 2 px and horizontal flip; for small centred objects such as "
      "Fashion-MNIST, not for digits).")
  epochs: int = _field(15, "Training epochs.")
  batch_size: int = _field(128, "Images per training batch (the pairwise "
                           "losses use all pairs).")
  sampler: str = _field(
      "shuffle", "Training batches: shuffle (a seeded shuffle every epoch) or"
      " balanced (--classes_per_batch classes × batch_size / P images each).")
  classes_per_batch: int = _field(0, "P of --sampler=balanced; 0: the most "
                                  "classes dividing --batch_size (8 of 10).")
  learning_rate: float = _field(1e-3, "Adam step size.")
  seed: int = _field(0, "Seed of weights and shuffling.")
  backbone_lr_multiplier: float = _field(
      1.0, "The backbone learns at this multiple of --learning_rate (the new "
      "layers at --learning_rate), e.g. 0.1 when fine-tuning ImageNet "
      "weights.")
  freeze_backbone_epochs: int = _field(
      0, "Warm-up epochs in which only the new layers learn.")
  lr_schedule: str = _field(
      "constant", "Learning rate over training: constant, cosine (to 0 at the"
      " last step) or step (× --lr_decay_factor after each of "
      "--lr_decay_epochs).")
  warmup_epochs: int = _field(0, "Epochs of linear learning-rate warm-up "
                              "before the schedule.")
  lr_decay_epochs: tuple[int, ...] = _field(
      (), "Epochs after which --lr_schedule=step decays the learning rate, "
      "e.g. 20,25.")
  lr_decay_factor: float = _field(0.1, "Factor of each decay of "
                                  "--lr_schedule=step.")
  weight_decay: float = _field(
      0.0, "Decoupled weight decay λ (AdamW): each step w ← w − λ·η·w with "
      "the variable's own rate η; not on biases and batch-norm parameters. "
      "0 = Adam.")
  # Evaluation.
  topk: int | None = _field(None, "k of mAP@k; 0 = the dataset's default.")
  eval_batch_size: int = _field(256, "Images per batch when encoding queries"
                                " and database.")
  validation_fraction: float = _field(
      0.1, "Share of the training images (or classes) held out, never the "
      "queries, to choose settings on: they retrieve each other (validation "
      "mAP in TensorBoard and metrics.json); 0 = none.")
  validation_by: str = _field(
      "images", "Hold out images, or classes (all images of ≥ 2 classes) so "
      "validation retrieves classes never fitted, as --protocol=unseen does.")
  validation_every: int = _field(5, "Log validation mAP every this many "
                                 "epochs (and after the last).")
  evaluate_test: bool = _field(
      True, "Score the queries against the database after training. Tuning "
      "runs turn it off, so hyper-parameters are chosen on validation mAP "
      "alone and the queries stay unseen.")
  # Hardware (docs/scaling.md).
  jit_compile: str = _field("auto", "XLA: auto (on GPU only), true or false.")
  mixed_precision: str = _field(
      "none", "Mixed precision: none (float32), auto (mixed_float16 on GPUs "
      "with tensor cores, else none), mixed_float16 or mixed_bfloat16. The "
      "hash layer, classifier, losses and metrics stay float32.")
  strategy: str = _field(
      "default", "tf.distribute strategy: default (one device), mirrored (all"
      " GPUs of this machine) or multi_worker (several machines, cluster in "
      "TF_CONFIG). --batch_size is the global batch, split across replicas.")


FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}


def _kind(field):
  """(base type, whether None is allowed) of a field; tuples are (tuple of
  element type, False)."""
  kind = field.type
  if isinstance(kind, types.UnionType):
    (base,) = [t for t in typing.get_args(kind) if t is not type(None)]
    return base, True
  if typing.get_origin(kind) is tuple:
    return (typing.get_args(kind)[0],), False
  return kind, False


_DEFINE = {list: flags.DEFINE_list, bool: flags.DEFINE_bool,
           int: flags.DEFINE_integer, float: flags.DEFINE_float,
           str: flags.DEFINE_string}


def define_flags(flag_values=flags.FLAGS):
  """Defines one absl flag per TrainConfig field, with its default and help."""
  for name, field in FIELDS.items():
    kind, _ = _kind(field)
    default, text = field.default, field.metadata["help"]
    if isinstance(kind, tuple):
      kind, default = list, list(map(str, default))
    _DEFINE[kind](name, default, text, flag_values=flag_values)


_ZERO_IS_SET = ("hash_loss_weight", "classification_weight")  # 0 = term off.


def _converted(name, value):
  """A flag's or JSON value as the field's type (lists → tuples, 0 → None)."""
  kind, optional = _kind(FIELDS[name])
  if isinstance(kind, tuple):
    try:
      return tuple(kind[0](v) for v in value)
    except (TypeError, ValueError):
      raise ConfigError(f"{name} must be a comma-separated list of "
                        f"{kind[0].__name__}. Received: {name}="
                        f"{','.join(map(str, value))}") from None
  if optional and not value and not (value == 0 and name in _ZERO_IS_SET):
    return None
  return value


def from_flags(flag_values=flags.FLAGS, **overrides):
  """The TrainConfig the parsed flags ask for, with `overrides` on top."""
  values = {name: _converted(name, flag_values[name].value)
            for name in FIELDS}
  return TrainConfig(**{**values, **overrides})


def to_json(config):
  """The dict RUN/flags.json holds: every field, tuples as lists."""
  return dataclasses.asdict(config)


# Fields of older runs, now keys of method_params.
_FORMER_DHE_FIELDS = ("margin", "similar_weight", "dissimilar_weight",
                      "quantization_weight", "distance")


def from_json(values):
  """The TrainConfig of a run, from the dict in its flags.json.

  Runs written before DHE's hyper-parameters became method_params (they
  were fields of their own) load with those values moved there.
  """
  values = dict(values)
  former = {name: values.pop(name) for name in _FORMER_DHE_FIELDS
            if name in values}
  if former and values.get("method", "dhe") == "dhe":
    given = {p.partition("=")[0] for p in values.get("method_params", ())}
    values["method_params"] = list(values.get("method_params", ())) + [
        f"{name}={value}" for name, value in former.items()
        if name not in given]
  unknown = sorted(set(values) - set(FIELDS))
  if unknown:
    raise ConfigError(f"flags.json has fields this version does not know: "
                      f"{', '.join(unknown)}")
  return TrainConfig(**{name: tuple(value) if isinstance(value, list)
                        else value for name, value in values.items()})


def flagfile_lines(config, names):
  """`--name=value` lines of the fields `names` of `config` (empty lists and
  None values are left out), for a flagfile that absl reads back."""
  lines = []
  for name in names:
    value = getattr(config, name)
    if value is None or value == ():
      continue
    if isinstance(value, tuple):
      value = ",".join(map(str, value))
    elif isinstance(value, bool):
      value = str(value).lower()
    lines.append(f"--{name}={value}")
  return lines


def read_flagfile(path):
  """{field: value} of the TrainConfig fields a dhe_tf.train flagfile sets.

  absl parses the file, so it means exactly what `python -m dhe_tf.train
  --flagfile=PATH` makes of it.

  Raises:
    ConfigError: the file is missing, or sets something that is not a
      field of TrainConfig.
  """
  return parse_args([f"--flagfile={path}"], source=path)


def parse_args(args, *, source="flags"):
  """{field: value} of the TrainConfig fields that `args` ("--name=value"
  strings, as dhe_tf.train takes them) set; ConfigError names `source`."""
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  try:
    flag_values(["parse_args", *args])
  except flags.Error as e:
    raise ConfigError(f"{source}: {e}") from None
  return {name: _converted(name, flag_values[name].value)
          for name in FIELDS if flag_values[name].present}


def resolve(config):
  """`config` with the defaults that depend on the dataset and method filled
  in: the protocol, the seen classes of protocol unseen, the two objective
  weights and every hyper-parameter of the method's loss. The resolved
  values are what flags.json records, so a run states what it actually used.

  Raises:
    ConfigError: an unknown dataset or method, a bad method_params entry,
      or bad seen_classes.
  """
  datasets.check_name(config.dataset)
  methods.check_method(config.method)
  method = methods.METHODS[config.method]
  if method.loss is None and config.hash_loss_weight:
    raise ConfigError(f"{config.method} has no hash loss (classification "
                      "alone); leave hash_loss_weight unset.")
  protocol = config.protocol or datasets.default_protocol(config.dataset)
  return dataclasses.replace(
      config, protocol=protocol,
      seen_classes=datasets.resolve_seen_classes(
          config.dataset, protocol, config.seen_classes,
          split_seed=config.split_seed, data_dir=config.data_dir),
      hash_loss_weight=(method.hash_loss_weight
                        if config.hash_loss_weight is None
                        else config.hash_loss_weight),
      classification_weight=(method.classification_weight
                              if config.classification_weight is None
                              else config.classification_weight),
      method_params=methods.resolved_params(config.method,
                                            config.method_params),
      head=config.head or method.head)


# (field, smallest allowed value, whether the bound is excluded).
_LOWER_BOUNDS = (
    ("bits", 1, False), ("epochs", 1, False), ("eval_batch_size", 1, False),
    ("batch_size", 2, False), ("validation_every", 1, False),
    ("topk", 1, False), ("learning_rate", 0, True),
    ("hash_loss_weight", 0, False), ("classification_weight", 0, False),
    ("hash_loss_warmup_epochs", 0, False), ("queries_per_class", 0, False),
    ("train_per_class", 0, False),
    ("backbone_lr_multiplier", 0, False), ("freeze_backbone_epochs", 0, False),
    ("warmup_epochs", 0, False), ("weight_decay", 0, False),
    ("hamming_classifier", 0, False))


def validate(config):
  """Raises ConfigError naming the first impossible value of `config`.

  Returns:
    resolve(config).
  """
  config = resolve(config)
  model_lib.check_backbone(config.backbone)
  methods.make_loss(config.method, config.method_params, num_classes=2,
                    bits=config.bits)
  for name, lowest, excluded in _LOWER_BOUNDS:
    value = getattr(config, name)
    if value is not None and (value < lowest or excluded and value == lowest):
      relation = ">" if excluded else "at least"
      raise ConfigError(f"{name} must be {relation} {lowest}. "
                        f"Received: {name}={value}")
  model_lib.check_head(config.head, config.hamming_classifier,
                       config.classifier_reads)
  if config.head == "class_codes" and config.hash_loss_weight:
    raise ConfigError("head=class_codes gives codes no gradient: it needs a "
                      "method trained by classification alone "
                      f"(classifier_codes). Received: method={config.method}")
  if config.hash_loss_weight == 0 and config.classification_weight == 0:
    raise ConfigError("hash_loss_weight and classification_weight are both 0:"
                      " nothing to train.")
  for name in ("label_smoothing", "validation_fraction"):
    if not 0 <= getattr(config, name) < 1:
      raise ConfigError(f"{name} must be in [0, 1). "
                        f"Received: {name}={getattr(config, name)}")
  pipeline.check_validation_by(config.validation_by)
  if not config.evaluate_test and not config.validation_fraction:
    raise ConfigError("evaluate_test=false needs a validation split "
                      "(validation_fraction > 0): nothing would be measured.")
  pipeline.check_augment(config.augment)
  pipeline.check_sampler(
      config.sampler, config.classes_per_batch, batch_size=config.batch_size,
      num_classes=(len(config.seen_classes) or
                   datasets.num_classes(config.dataset, config.data_dir)))
  hardware.check(config.strategy, config.jit_compile, config.mixed_precision)
  optimization.check_schedule(
      config.lr_schedule, epochs=config.epochs,
      freeze_backbone_epochs=config.freeze_backbone_epochs,
      warmup_epochs=config.warmup_epochs,
      decay_epochs=config.lr_decay_epochs,
      decay_factor=config.lr_decay_factor)
  return config
