"""The interface every search backend implements, and its settings.

A backend is one class, a subclass of `Backend`, registered by name in
dhe_tf.index.BACKENDS. dhe_tf.index does everything that is the same for
all of them (checks, the codes, sources and labels, index.json, the atomic
rename: dhe_tf.index.builder); a backend
only stores packed codes and searches them, results ordered by (distance,
id):

    build:  settings = Backend.resolve_settings(given)    # defaults, checks
            recorded = Backend.write(tmp_dir, packed, bits, settings)
            ... index.json records `recorded`; the directory is renamed
            OldBackend.drop(old_manifest)   # when it replaced an index
    open:   backend = Backend.load(directory, manifest)
            backend.search(queries, k) / backend.radius_search(queries, r)
            backend.close()

Its `settings` declare what a user may choose (`Setting`); dhe_tf.search
derives a flag --<name>_<setting> from each, and tests/test_index_backends.py
fails when a registered backend lacks any piece of this interface.
"""

import abc
import dataclasses

import numpy as np

from dhe_tf.core.errors import ConfigError

# Setting types that the command line (dhe_tf.search) has flags for.
SETTING_TYPES = (str, int, float, bool)


@dataclasses.dataclass(frozen=True)
class Setting:
  """One choice a backend offers, recorded in index.json.

  Attributes:
    name: its key in the settings dict and in index.json.
    default: used when it is not given; None or a value of `type`.
    type: one of SETTING_TYPES.
    help: what it does, for the flag's help.
    choices: the allowed values, or () for any value of `type`.
    flag: the flag is --<backend>_<flag> (default: --<backend>_<name>).
  """
  name: str
  default: object
  type: type
  help: str
  choices: tuple = ()
  flag: str = None


def sorted_hits(ids, distances):
  """(ids, distances) int64 [M] ordered by (distance, id)."""
  ids = np.asarray(ids, np.int64)
  distances = np.asarray(distances, np.int64)
  order = np.lexsort((ids, distances))
  return ids[order], distances[order]


class Backend(abc.ABC):
  """Stores packed binary codes and finds the nearest in Hamming distance.

  Codes are packed uint8 [N, B], B = ceil(K / 8), as dhe_tf.core.codes.pack packs
  them; queries are checked to be packed [Q, B] before they reach a backend.
  Ids are the row numbers 0..N-1 of the codes given to `write`. Every result
  is ordered by (distance, id), ties broken by id as dhe_tf.evaluation.metrics breaks
  them (`sorted_hits` sorts a row so).

  Attributes:
    name: the registry name, also the prefix of its flags.
    settings: the `Setting`s a user may choose, () when none.
  """

  name = None
  settings = ()

  @classmethod
  @abc.abstractmethod
  def write(cls, directory, packed, bits, settings):
    """Stores the codes in `directory` (or a server that it names).

    Args:
      directory: the new index's (temporary) directory; it will be renamed,
        so what is stored must not depend on its path.
      packed: uint8 [N, ceil(K/8)], N ≥ 1.
      bits: K.
      settings: dict of every declared setting (`resolve_settings`).

    Returns:
      The settings dict to record in index.json; `load` gets it back as
      manifest["settings"]. It may add what `load` needs (a collection name).
    """

  @classmethod
  @abc.abstractmethod
  def load(cls, directory, manifest):
    """Opens what `write` stored: returns an instance that can search.

    Args:
      directory: the index directory.
      manifest: index.json as a dict: "bits", "count", and "settings" as
        `write` returned them, with defaults for settings it lacks.
    """

  @classmethod
  def drop(cls, manifest):
    """Deletes what a replaced index stored outside its directory.

    Called after a new index has replaced one of this backend at the same
    path (the old directory is already deleted). Default: nothing, for
    backends that keep everything in the directory.
    """
    del manifest

  @abc.abstractmethod
  def search(self, queries, k):
    """The k nearest codes of each query.

    Args:
      queries: packed uint8 [Q, ceil(K/8)].
      k: 1 ≤ k ≤ N.

    Returns:
      (ids int64 [Q, k], distances int64 [Q, k]), each row by (distance,
      id). An approximate backend fills places it found no code for with
      id -1 and distance -1.
    """

  @abc.abstractmethod
  def radius_search(self, queries, radius):
    """Every code within Hamming distance `radius` (inclusive) of each query.

    Args:
      queries: packed uint8 [Q, ceil(K/8)].
      radius: ≥ 0.

    Returns:
      A list of Q pairs (ids int64 [M_q], distances int64 [M_q]), each by
      (distance, id).
    """

  @abc.abstractmethod
  def close(self):
    """Releases clients, servers and files that `load` opened."""

  @classmethod
  def flag_name(cls, setting):
    """The command-line flag of `setting`: <backend>_<setting.flag or name>."""
    return f"{cls.name}_{setting.flag or setting.name}"

  @classmethod
  def defaults(cls):
    """{name: default} of every declared setting."""
    return {setting.name: setting.default for setting in cls.settings}

  @classmethod
  def resolve_settings(cls, given):
    """Every declared setting: `given` (None meaning default) over defaults.

    Raises:
      ConfigError: a setting that is not declared, of the wrong type, or not
        one of its choices; the message names the flag.
    """
    given = dict(given or {})
    declared = {setting.name: setting for setting in cls.settings}
    unknown = sorted(set(given) - set(declared))
    if unknown:
      raise ConfigError(
          f"Unknown setting {unknown[0]!r} of backend {cls.name!r}. "
          f"Available: {', '.join(declared) or 'none'}")
    resolved = {}
    for name, setting in declared.items():
      value = given.get(name)
      if value is None:
        value = setting.default
      flag = cls.flag_name(setting)
      if value is not None and not _is_a(value, setting.type):
        raise ConfigError(f"{flag} must be of type {setting.type.__name__}. "
                          f"Received: {flag}={value!r}")
      if setting.choices and value not in setting.choices:
        raise ConfigError(f"Unknown {flag} {value!r}. "
                          f"Available: {', '.join(map(str, setting.choices))}")
      # Plain Python values, for index.json: int(np.int64(3)) is 3.
      resolved[name] = None if value is None else setting.type(value)
    return resolved


def _is_a(value, kind):
  """isinstance, where a bool is not an int and an int is a float."""
  if kind is bool:
    return isinstance(value, (bool, np.bool_))
  if isinstance(value, (bool, np.bool_)):
    return False
  if kind is int:
    return isinstance(value, (int, np.integer))
  if kind is float:
    return isinstance(value, (int, float, np.integer, np.floating))
  return isinstance(value, kind)
