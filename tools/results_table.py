"""The results.csv files of the benchmark tools (benchmark_methods,
compare_settings): rows written atomically, so an interrupted sitting never
leaves half a file, read back typed, their mean ± sd cells and their paired
differences."""

import csv
import dataclasses
import json
import os
import statistics


def write_rows(path, rows, columns=None):
  """Writes `rows` (dicts) to the CSV `path` atomically, with `columns` (or
  the first row's keys) as header; dict values are written as JSON."""
  with open(path + ".tmp", "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(columns or rows[0]))
    writer.writeheader()
    writer.writerows({key: json.dumps(value) if isinstance(value, dict)
                      else value for key, value in row.items()}
                     for row in rows)
  os.replace(path + ".tmp", path)


def read_rows(path, kind_of):
  """The rows of the CSV `path`, [] when there is none.

  Args:
    path: a file write_rows wrote.
    kind_of: column name → int, float, json.loads or None (kept as text);
      an empty or "None" cell becomes None.
  """
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  for row in rows:
    for key, text in row.items():
      kind = kind_of(key)
      if kind is not None:
        row[key] = None if text in ("", "None") else kind(text)
  return rows


def mean_sd(values, digits=4, signed=False):
  """"mean ± sd" of the values that are not None; the value alone when
  there is one, "" when there is none; with `signed` a + before a mean that
  is not negative (for differences)."""
  values = [v for v in values if v is not None]
  if not values:
    return ""
  sign = "+" if signed else ""
  text = f"{statistics.mean(values):{sign}.{digits}f}"
  if len(values) == 1:
    return text
  return f"{text} ± {statistics.stdev(values):.{digits}f}"


@dataclasses.dataclass(frozen=True)
class PairedDifferences:
  """One setting's scores minus another's, seed by seed (paired_differences).

  Attributes:
    seeds: the seeds both settings have a score for, in order.
    differences: the difference at each of those seeds.
  """
  seeds: tuple
  differences: tuple

  @property
  def mean(self):
    """The mean difference; None without a pair."""
    return statistics.mean(self.differences) if self.differences else None

  @property
  def sd(self):
    """The differences' sample standard deviation (n − 1); None under two
    pairs."""
    return (statistics.stdev(self.differences)
            if len(self.differences) > 1 else None)

  def text(self, digits=4, per_seed_digits=None):
    """The table cell: signed "mean ± sd" (mean_sd), "" without a pair; with
    `per_seed_digits`, each difference in brackets after it."""
    text = mean_sd(self.differences, digits, signed=True)
    if per_seed_digits is None or not self.differences:
      return text
    return text + " (" + ", ".join(
        f"{d:+.{per_seed_digits}f}" for d in self.differences) + ")"


def paired_differences(values, minus):
  """`values` − `minus`, paired by seed.

  Args:
    values: {seed: score or None} of one setting.
    minus: {seed: score or None} of the setting it is compared with.

  Returns:
    PairedDifferences over the seeds where both have a score: a seed missing
    (or None) on either side is left out of the pairing.
  """
  seeds = tuple(sorted(seed for seed, value in values.items()
                       if value is not None and minus.get(seed) is not None))
  return PairedDifferences(seeds, tuple(values[s] - minus[s] for s in seeds))
