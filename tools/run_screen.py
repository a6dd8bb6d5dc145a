r"""A screen of settings, run from its record: SCREEN_DIR/screen.toml.

A screen is a folder: screen.toml says what the screen asks and which calls
of tools/compare_settings.py answer it; the calls' out_dirs, below the
folder, hold the results. The calls run in order, the first failure stops
the screen, and every call resumes (compare_settings keeps the runs its
results.csv holds), so running a screen again finishes it:

    python tools/run_screen.py tools/results/dhe_research/screen6   # resumes
    python tools/run_screen.py tools/results/dhe_research/screen6 --report_only
    python tools/run_screen.py tools/results/dhe_research/screen6 --dry_run

--report_only runs no training and prints every call's table (seconds per
call); --dry_run prints the compare_settings commands instead of running
them. Flag paths in screen.toml (--flagfile=flags/...) are read from the
repository root, wherever the command starts. Needs Python 3.11 (tomllib).

screen.toml, every key optional but a [[call]]'s bits and its seeds (or
parallel):

    # What the screen asks, how it ran, what was dropped and why.
    [fragments]      # flags used as $NAME in variants, common and fragments
    DHE = "--flagfile=flags/fashion_mnist_dhe.flags --protocol=$protocol"
    [variants]       # LABEL = "dhe_tf.train flags"; quote a label with a dot
    dhe = "$DHE"
    "dhe_lr_0.002" = "$DHE --learning_rate=0.002"
    [[call]]         # one per compare_settings call, in order
    out_dir = "1k5k"                    # below the screen's folder (".")
    fragments = {protocol = "1k5k"}     # this call's, over [fragments]
    variants = ["dhe", "dhe_lr_0.002"]  # (all) the first is the reference
                                        # of the paired differences
    common = ""                         # compare_settings --common ("")
    bits = [12]
    seeds = [0, 1, 2]   # or parallel = [[3, 5], [4, 6]]: one process per
                        # group, at once, sharing the out_dir
    test = false        # also score the test queries (false)
    report_only = false # true: a call that only prints the table (false)
"""

import dataclasses
import os
import shlex
import string
import subprocess
import sys
import time
import tomllib

from absl import app
from absl import flags

from dhe_tf.core import errors
from dhe_tf.core.errors import ConfigError
import compare_settings

_TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "compare_settings.py")
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SCREEN_KEYS = ("fragments", "variants", "call")
_CALL_KEYS = ("out_dir", "fragments", "variants", "common", "bits", "seeds",
              "parallel", "test", "report_only")


class CallFailed(RuntimeError):
  """A compare_settings process of a screen ended with an error."""


@dataclasses.dataclass(frozen=True)
class Call:
  """One call of tools/compare_settings.py, its fragments expanded.

  Attributes:
    out_dir: the screen's folder joined with the call's out_dir.
    variants: "LABEL: flags" of each variant, the reference first.
    common: flags before every variant's.
    bits: code lengths.
    seed_groups: the seeds of each process (one group: one process).
    test: whether the test queries are scored.
    report_only: whether the call only prints the table.
  """
  out_dir: str
  variants: tuple
  common: str
  bits: tuple
  seed_groups: tuple
  test: bool
  report_only: bool

  def modes(self, report_only=False, rescore_validation=False):
    """compare_settings' report_only and rescore_validation in this call,
    given the screen's: a report call only reports."""
    return dict(report_only=report_only or self.report_only,
                rescore_validation=rescore_validation and not self.report_only)

  def arguments(self, seeds, report_only=False, rescore_validation=False):
    """compare_settings' command line for the process of `seeds`, given the
    screen's modes."""
    arguments = [f"--out_dir={self.out_dir}"]
    if self.common:
      arguments.append(f"--common={self.common}")
    arguments += [f"--variant={variant}" for variant in self.variants]
    arguments += [f"--bits={_joined(self.bits)}", f"--seeds={_joined(seeds)}"]
    arguments += [f"--{name}" for name, given in dict(
        test=self.test, **self.modes(report_only, rescore_validation)).items()
                  if given]
    return arguments


def _joined(numbers):
  return ",".join(map(str, numbers))


def _expand(text, fragments, where, seen=()):
  """`text` with each $NAME replaced by fragment NAME, itself expanded."""
  template = string.Template(text)
  if not template.is_valid():
    raise ConfigError(f"{where}: a $ that names no fragment (write $$ for "
                      f"a $). Received: {text!r}")
  values = {}
  for name in template.get_identifiers():
    if name in seen:
      raise ConfigError(f"{where}: fragment {name} contains itself.")
    if name not in fragments:
      raise ConfigError(f"{where}: unknown fragment ${name}. Available: "
                        f"{', '.join(fragments) or 'none'}")
    values[name] = _expand(fragments[name], fragments, where, (*seen, name))
  return template.substitute(values)


def _strings(table, where):
  """A TOML table of name = "flags"; ConfigError for anything else (a
  dotted label read as a table, say)."""
  if not isinstance(table, dict):
    raise ConfigError(f"{where} is a table of NAME = \"flags\".")
  for name, value in table.items():
    if not isinstance(value, str):
      raise ConfigError(f"{where}: {name} is not a string of flags (quote "
                        f"a name with a dot). Received: {value!r}")
  return table


def _check_keys(table, keys, where):
  for key in table:
    if key not in keys:
      raise ConfigError(f"{where}: unknown key '{key}'. Available: "
                        f"{', '.join(keys)}")


def _integers(value, where):
  if (not isinstance(value, list) or not value or
      not all(type(v) is int for v in value)):  # pylint: disable=unidiomatic-typecheck
    raise ConfigError(f"{where} is a list of integers. Received: {value!r}")
  return tuple(value)


def _call(entry, fragments, variants, screen_dir, where):
  """The Call of one [[call]] table."""
  _check_keys(entry, _CALL_KEYS, where)
  fragments = {**fragments,
               **_strings(entry.get("fragments", {}), f"{where} fragments")}
  _strings({key: entry[key] for key in ("out_dir", "common") if key in entry},
           where)
  labels = entry.get("variants", list(variants))
  if not isinstance(labels, list) or not labels:
    raise ConfigError(f"{where} variants is a list of labels. Received: "
                      f"{labels!r}")
  for label in labels:
    if label not in variants:
      raise ConfigError(f"{where}: unknown variant '{label}'. Available: "
                        f"{', '.join(variants)}")
  if ("seeds" in entry) == ("parallel" in entry):
    raise ConfigError(f"{where} gives seeds or parallel, one of them.")
  if "seeds" in entry:
    groups = (_integers(entry["seeds"], f"{where} seeds"),)
  else:
    groups = entry["parallel"]
    if not isinstance(groups, list) or not groups:
      raise ConfigError(f"{where} parallel is a list of seed lists. "
                        f"Received: {groups!r}")
    groups = tuple(_integers(group, f"{where} parallel") for group in groups)
  switches = {key: entry.get(key, False) for key in ("test", "report_only")}
  for key, value in switches.items():
    if not isinstance(value, bool):
      raise ConfigError(f"{where} {key} is true or false. Received: "
                        f"{value!r}")
  return Call(
      out_dir=os.path.normpath(os.path.join(screen_dir,
                                            entry.get("out_dir", "."))),
      variants=tuple(f"{label}: {_expand(variants[label], fragments, where)}"
                     .rstrip() for label in labels),
      common=_expand(entry.get("common", ""), fragments, f"{where} common"),
      bits=_integers(entry.get("bits"), f"{where} bits"),
      seed_groups=groups, **switches)


def load_screen(screen_dir):
  """The calls of SCREEN_DIR/screen.toml, in order.

  Raises:
    ConfigError: the file is missing or does not parse, or a table names a
      key, variant or fragment it does not define.
  """
  path = os.path.join(screen_dir, "screen.toml")
  try:
    with open(path, "rb") as f:
      screen = tomllib.load(f)
  except FileNotFoundError:
    raise ConfigError(f"No screen.toml in {screen_dir}.") from None
  except tomllib.TOMLDecodeError as error:
    raise ConfigError(f"{path}: {error}") from None
  _check_keys(screen, _SCREEN_KEYS, path)
  fragments = _strings(screen.get("fragments", {}), f"{path} [fragments]")
  variants = _strings(screen.get("variants", {}), f"{path} [variants]")
  for label in variants:
    if not label or ":" in label or label != label.strip():
      raise ConfigError(f"{path}: a variant label has no ':' and no spaces "
                        f"around it. Received: {label!r}")
  entries = screen.get("call", [])
  if not entries:
    raise ConfigError(f"{path} has no [[call]].")
  return [_call(entry, fragments, variants, screen_dir,
                f"{path} call {number}")
          for number, entry in enumerate(entries, start=1)]


def run_at_once(commands):
  """Runs `commands` as processes at the same time; when one fails, stops
  the others (their finished runs are in results.csv) and raises."""
  processes = [subprocess.Popen(command) for command in commands]
  try:
    while True:
      codes = [process.poll() for process in processes]
      for command, code in zip(commands, codes):
        if code:
          raise CallFailed(f"{shlex.join(command[1:])} exited with {code}.")
      if None not in codes:
        return
      time.sleep(1)
  finally:
    for process in processes:
      if process.poll() is None:
        process.terminate()
        process.wait()


def run_screen(screen_dir, report_only=False, rescore_validation=False,
               dry_run=False):
  """Runs the calls of SCREEN_DIR/screen.toml in order, printing each call's
  table; stops at the first that fails.

  A call runs in this process (compare_settings.compare); a call's parallel
  seed groups run as processes at the same time, except with `report_only`
  or `rescore_validation`, which train nothing: then one after another here.
  With `dry_run`, prints each compare_settings command instead.
  """
  for call in load_screen(screen_dir):
    modes = call.modes(report_only, rescore_validation)
    at_once = len(call.seed_groups) > 1 and not any(modes.values())
    if dry_run:
      for seeds in call.seed_groups:
        print(shlex.join(["python", os.path.relpath(_TOOL), *call.arguments(
            seeds, report_only, rescore_validation)]) +
              (" &" if at_once else ""))
    elif at_once:
      run_at_once([[sys.executable, _TOOL, *call.arguments(seeds)]
                   for seeds in call.seed_groups])
    else:
      for seeds in call.seed_groups:
        print(compare_settings.compare(
            call.out_dir, call.variants, call.common,
            [str(b) for b in call.bits], [str(s) for s in seeds], call.test,
            **modes), flush=True)


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("Give one SCREEN_DIR (a folder with a screen.toml)."
                         f" Received: {' '.join(argv[1:]) or 'none'}")
  # The screens' flag paths (--flagfile=flags/...) are the repository's.
  screen_dir = os.path.abspath(argv[1])
  if screen_dir.startswith(_REPOSITORY + os.sep):
    screen_dir = os.path.relpath(screen_dir, _REPOSITORY)
  os.chdir(_REPOSITORY)
  with errors.reported_in_one_line("run_screen"):
    try:
      run_screen(screen_dir, flags.FLAGS.report_only,
                 flags.FLAGS.rescore_validation, flags.FLAGS.dry_run)
    except CallFailed as error:
      print(f"run_screen: error: {error} The screen stops here.",
            file=sys.stderr)
      sys.exit(1)


if __name__ == "__main__":
  # Flags only when run as a script, as compare_settings: a test imports
  # this tool next to tools that define flags of the same names.
  flags.DEFINE_bool("report_only", False, "Train nothing: print the table "
                    "of every call from what its out_dir holds.")
  flags.DEFINE_bool("rescore_validation", False, "Train nothing: every call "
                    "scores the validation split of its runs again "
                    "(compare_settings --rescore_validation).")
  flags.DEFINE_bool("dry_run", False, "Print the compare_settings commands "
                    "instead of running them.")
  app.run(main)
