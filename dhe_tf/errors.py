"""Errors that entry points report as one line, without a traceback."""


class ConfigError(ValueError):
  """A flag or argument has a value that cannot work; the message names it."""


class DataUnavailableError(RuntimeError):
  """Data or weights are neither on disk nor downloadable; says what to pass."""


class TrainingDivergedError(RuntimeError):
  """The loss became NaN or infinite; says what was kept and what to change."""
