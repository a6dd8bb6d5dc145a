"""The results.csv files of the benchmark tools (benchmark_methods,
compare_settings): rows written atomically, so an interrupted sitting never
leaves half a file, read back typed, and their mean ± sd cells."""

import csv
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
