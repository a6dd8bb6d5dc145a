"""The run directory: where a training run leaves everything it produced.

    RUN/flags.json      the configuration the run used
    RUN/split.npz       indices of the query / train / database images
    RUN/logs/           TensorBoard event files
    RUN/model.keras     the trained model
    RUN/metrics.json    retrieval quality on the queries
    RUN/backup/         the state after the last completed epoch, while the
                        run is unfinished (a rerun resumes from it)

Every file is written to a temporary name and renamed into place, so a crash
never leaves a truncated file under the final name; it gets the mode the umask
gives a new file (0644 under umask 022), as a plain open() would. `load_run`
is the one place that reads a finished run back: evaluation, export, search
and the service go through it, never through the trainer. It reads the model and
the configuration once; the `Run` it returns computes the model's
fingerprint on first use and loads the dataset only for a reader that asks
(`Run.data`), checked against RUN/split.npz (`check_split`).
"""

import dataclasses
import datetime
import functools
import json
import os
import secrets
import shutil
import tempfile

import keras
import numpy as np

from dhe_tf.runs import config as config_lib
from dhe_tf.model import inference
from dhe_tf.model import network as model_lib
from dhe_tf.data import datasets
from dhe_tf.data import pipeline
from dhe_tf.core.errors import ConfigError


def default_path(dataset, bits, root="runs"):
  """A fresh directory name: runs/<dataset>_<bits>bits_<timestamp>."""
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
  return os.path.join(root, f"{dataset}_{bits}bits_{stamp}")


def create(path):
  """Creates `path` (and parents) and checks it is writable.

  Returns:
    The directories this call created, outermost first; `remove_created`
    deletes them again when a run fails before it produced anything.

  Raises:
    ConfigError: the directory cannot be created or written to.
  """
  created = []
  parent = os.path.abspath(path)
  while not os.path.exists(parent):
    created.insert(0, parent)
    parent = os.path.dirname(parent)
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    remove_created(created)
    raise ConfigError(f"Cannot write to model_dir={path}: {e.strerror}") from e
  if not os.path.isdir(path):
    raise ConfigError(f"model_dir is not a directory. Received: {path}")
  return created


def check_resumable(path, flags):
  """Whether `path` holds an unfinished run of the same flags to continue.

  Args:
    path: the run directory.
    flags: the dict the run writes to flags.json.

  Returns:
    False for a new run (no flags.json), True for an unfinished run with
    the same flags.

  Raises:
    ConfigError: `path` holds a finished run (model.keras) or a run of other
      flags; the message names the differing flags.
  """
  flags_path = os.path.join(path, "flags.json")
  if not os.path.exists(flags_path):
    return False
  if os.path.exists(os.path.join(path, "model.keras")):
    raise ConfigError(f"model_dir holds a finished run (model.keras); "
                      f"evaluate it with dhe_tf.evaluate or pass a new "
                      f"--model_dir. Received: model_dir={path}")
  before = read_json(flags_path)
  now = json.loads(json.dumps(flags))
  changed = sorted(name for name in set(before) | set(now)
                   if before.get(name) != now.get(name))
  if changed:
    differences = ", ".join(f"{name}={before.get(name)!r} there, "
                            f"{now.get(name)!r} now" for name in changed)
    raise ConfigError(f"model_dir holds an unfinished run with other flags "
                      f"({differences}); rerun with its flags to resume it, "
                      f"or pass a new --model_dir. Received: model_dir={path}")
  return True


def remove_created(created):
  """Deletes what `create` made (outermost first), ignoring what is gone."""
  if created:
    shutil.rmtree(created[0], ignore_errors=True)


def _replace_into(path, write):
  """Calls write(tmp) on a new file next to `path`, then renames it there.

  The temporary file is created with mode 0666 for the umask to cut down, as
  open() does: mkstemp's 0600 would leave every file written here unreadable
  to other users (a service running as another user reads flags.json and an
  index's index.json) while its neighbours are 0644 under umask 022.
  """
  directory, name = os.path.split(path)
  stem, suffix = os.path.splitext(name)
  # O_EXCL on a random name: what mkstemp does, but with open()'s mode.
  tmp = os.path.join(directory, f".{stem}.{secrets.token_hex(8)}{suffix}")
  os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
  try:
    write(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json(path, value):
  """Writes `value` as indented JSON to `path`, atomically."""
  def write(tmp):
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(value, f, indent=2, sort_keys=True)
      f.write("\n")
  _replace_into(path, write)


def read_json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def update_metrics(model_dir, values):
  """Writes `values` into RUN/metrics.json over what it holds (keys they do
  not set, such as train_seconds, are kept); returns the merged dict."""
  path = os.path.join(model_dir, "metrics.json")
  merged = {**(read_json(path) if os.path.exists(path) else {}), **values}
  write_json(path, merged)
  return merged


def write_split(path, split):
  """Writes the split's index arrays ("query", "train", ...) to an .npz."""
  _replace_into(path, lambda tmp: np.savez(tmp, **split))


def save_model(path, model):
  """Saves a Keras model to a `.keras` file, atomically."""
  _replace_into(path, model.save)


@dataclasses.dataclass(frozen=True)
class Run:
  """A finished dhe_tf.train run, read once (`load_run`) and handed on.

  Attributes:
    path: the run directory.
    model: the Keras model of RUN/model.keras, loaded for inference (no
      optimizer or losses).
    config: the dhe_tf.runs.config.TrainConfig of RUN/flags.json.
  """
  path: str
  model: keras.Model
  config: config_lib.TrainConfig

  @property
  def name(self):
    """The run directory's base name (what the service tells clients)."""
    return os.path.basename(os.path.normpath(self.path))

  @property
  def center_crop(self):
    """Whether the model's images are cut like image-file datasets' (the
    central window of the shorter side; dhe_tf.model.inference.decode_image)."""
    return datasets.DATASETS[self.config.dataset].center_crop

  @property
  def bits(self):
    """K, the code length of the model."""
    return inference.num_bits(self.model)

  @functools.cached_property
  def fingerprint(self):
    """dhe_tf.model.inference.model_fingerprint of the model, computed on
    first use and kept: the index, the export and the service record and
    compare it."""
    return inference.model_fingerprint(self.model)

  def data(self, parts=("query", "database"), *, data_dir=None):
    """The run's dataset (`load_data`), its `parts` checked against
    RUN/split.npz (`check_split`): the images the run recorded.

    Args:
      parts: the parts the reader uses.
      data_dir: where the dataset is now, if not where training found it.

    Raises:
      ConfigError: a part whose images differ from those recorded.
    """
    config = self.config
    if data_dir:
      config = dataclasses.replace(config, data_dir=data_dir)
    data = load_data(config)
    check_split(data, os.path.join(self.path, "split.npz"), parts=parts)
    return data

  def held_out(self, data):
    """The validation images the run held out of `data`'s training part
    (`split_training_part`), checked against RUN/split.npz; None when it
    held out none."""
    _, held_out, split = split_training_part(self.config, data)
    check_split(data, os.path.join(self.path, "split.npz"),
                parts=("validation",), split=split)
    return held_out


def check_finished(path):
  """Raises ConfigError unless `path` holds flags.json and model.keras."""
  for name in ("flags.json", "model.keras"):
    file = os.path.join(path, name)
    if not os.path.isfile(file):
      raise ConfigError(f"{file} does not exist: --model_dir must be a "
                        "finished dhe_tf.train run.")


def load_run(path):
  """Reads the finished run in `path`; a Run given instead is returned as
  it is, so a reader that holds one hands it on.

  Raises:
    ConfigError: a file of the run is missing, or its flags.json is not one
      this version reads.
  """
  if isinstance(path, Run):
    return path
  check_finished(path)
  config = config_lib.from_json(read_json(os.path.join(path, "flags.json")))
  model = model_lib.load_model(os.path.join(path, "model.keras"),
                               compile=False)
  return Run(path=path, model=model, config=config)


def check_split(data, path, parts=("query", "database"), split=None):
  """Raises ConfigError unless `data`'s `parts` match those in RUN/split.npz.

  A run is evaluated (or indexed) on the very images its split recorded;
  a changed dataset or split would silently measure something else. `split`
  replaces data.split (e.g. with the run's "validation" part). Parts the
  file does not record, or a run without the file (one not written by
  dhe_tf.train), are not checked.
  """
  if not os.path.isfile(path):
    return
  split = data.split if split is None else split
  with np.load(path) as recorded:
    for part in parts:
      if part in recorded and not np.array_equal(recorded[part],
                                                 split[part]):
        raise ConfigError(
            f"The {part} images of {data.name} differ from those in {path}: "
            "the data or its split changed since training.")


def load_data(config):
  """The dhe_tf.data HashingDataset a run of `config` trains and is
  evaluated on."""
  return datasets.load_dataset(config.dataset, protocol=config.protocol,
                               split_seed=config.split_seed,
                               data_dir=config.data_dir,
                               image_root=config.image_root,
                               image_size=config.image_size,
                               on_bad_image=config.on_bad_image,
                               cache=config.data_cache, seed=config.seed,
                               seen_classes=config.seen_classes,
                               queries_per_class=config.queries_per_class,
                               train_per_class=config.train_per_class,
                               color_mode=config.color_mode)


def split_training_part(config, data):
  """(fit part, validation part or None, split with "validation"): the
  images a run of `config` fits on, and those it holds out to choose
  settings (dhe_tf.training.callbacks.ValidationMAP), from data's training part;
  with --validation_by=classes the split also records the held-out
  "validation_classes"."""
  split = dict(data.split)
  if config.validation_fraction == 0:
    return data.parts["train"], None, split
  size = len(data.split["train"])
  class_ids = None
  if config.validation_by == "classes":
    class_ids = pipeline.single_label_ids(
        pipeline.labels_of(data.parts["train"]), "--validation_by=classes")
  held, classes = pipeline.draw_validation(
      size, config.validation_fraction, config.split_seed, class_ids)
  if len(held) < 2:
    raise ConfigError(
        f"--validation_fraction={config.validation_fraction} holds out "
        f"{len(held)} of the {size} training images; the validation images "
        "retrieve each other, so it takes at least 2 (or 0 to hold out "
        "none).")
  fit_part, validation = pipeline.hold_out(data.parts["train"], size, held)
  split["validation"] = data.split["train"][held]
  if classes is not None:
    split["validation_classes"] = classes
  return fit_part, validation, split
