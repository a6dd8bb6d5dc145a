"""Errors that entry points report as one line, without a traceback."""

import contextlib
import sys


class ConfigError(ValueError):
  """A flag or argument has a value that cannot work; the message names it."""


class DamagedIndexError(ConfigError):
  """An index file is missing, truncated, corrupt or of another build."""


class DataUnavailableError(RuntimeError):
  """Data or weights are neither on disk nor downloadable; says what to pass."""


class TrainingDivergedError(RuntimeError):
  """The loss became NaN or infinite; says what was kept and what to change."""


# The errors a user can act on: each message names the input and what to do.
USER_ERRORS = (ConfigError, DataUnavailableError, FileNotFoundError,
               TrainingDivergedError)


@contextlib.contextmanager
def reported_in_one_line(command):
  """Turns a user error raised in the block into one line and exit status 2.

  The line is "<command>: error: <message>" on standard error, without a
  traceback; anything else (a bug) keeps its traceback.
  """
  try:
    yield
  except USER_ERRORS as e:
    print(f"{command}: error: {e}", file=sys.stderr)
    sys.exit(2)
