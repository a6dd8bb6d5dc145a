r"""Which method to pick for queries of the training classes, of new classes,
or of either: the scenario table, and how well each validation rule ranks.

For every method of the benchmark (tools/benchmark_methods.py) and every
setting of a screen (tools/run_screen.py), at each code length:

- seen classes: `1k5k` validation mAP (held-out images of the training
  classes: the rule that may choose for seen classes) and test mAP, means
  over seeds;
- new classes: the new-class rule's validation mAP (protocol `unseen` with 2
  of its 7 training classes held out, --validation_by=classes) and the
  `unseen_splits` test mAP, means over the class splits (split s = seed s);
- gaps: each test mean minus the best row's, and the worse of the two — what
  picking that row costs when the user does not know which scenario comes.

Then each rule's agreement with its test: Spearman's ρ between the rows'
rule means and test means (1: the rule ranks them as the test does), for
the seen rule, the new-class rule, and the held-out images of the
`unseen_splits` runs themselves (the rule that fits seen classes, for new
ones). A cell with fewer runs than its column's fullest one is marked
"(n runs)" and left out of the best, the gaps and ρ.

    python tools/scenario_table.py \
      --benchmark=tools/results/benchmark_methods/results.csv \
      --rule=tools/results/benchmark_methods/validation_by_classes/results.csv \
      --screens=tools/results/dhe_research/one_dhe --bits=12,32

A screen folder holds compare_settings results under 1k5k/ (seen: validation
and test), unseen_classes/ (the new-class rule) and unseen/ (new-class test);
its rows are labelled FOLDER/VARIANT.
"""

import os
import statistics

from absl import app
from absl import flags

import results_table

# Columns: (key, header, lower is not better).
_SEEN_VALIDATION, _SEEN_TEST = "seen_validation", "seen_test"
_NEW_RULE, _NEW_TEST, _NEW_IMAGES = "new_rule", "new_test", "new_images"
_SCREEN_PARTS = {"1k5k": ((_SEEN_VALIDATION, "validation_mAP"),
                          (_SEEN_TEST, "mAP")),
                 "unseen_classes": ((_NEW_RULE, "validation_mAP"),),
                 "unseen": ((_NEW_TEST, "mAP"), (_NEW_IMAGES,
                                                  "validation_mAP"))}


def define_flags():
  """The command line's flags (only when run as a script)."""
  flags.DEFINE_string("benchmark", "tools/results/benchmark_methods/"
                      "results.csv", "benchmark_methods results.csv with the"
                      " 1k5k and unseen_splits rows.")
  flags.DEFINE_string("rule", "tools/results/benchmark_methods/"
                      "validation_by_classes/results.csv", "benchmark_methods"
                      " results.csv of unseen_splits runs with "
                      "--set=validation_by=classes (the new-class rule).")
  flags.DEFINE_list("screens", [], "run_screen folders whose 1k5k/, "
                    "unseen_classes/ and unseen/ results join the table.")
  flags.DEFINE_list("bits", ["12", "32"], "Code lengths.")
  flags.DEFINE_string("out", "", "Also write the table to this file.")


def _kind(column):
  if column in ("bits", "seed"):
    return int
  if column in ("mAP", "validation_mAP"):
    return float
  return None


def collect(benchmark, rule, screens):
  """{(label, bits): {column: [values over seeds]}} of every source."""
  cells = {}

  def add(label, bits, column, value):
    if value is not None:
      cells.setdefault((label, bits), {}).setdefault(column, []).append(value)

  for row in results_table.read_rows(benchmark, _kind):
    if row["protocol"] == "1k5k":
      add(row["method"], row["bits"], _SEEN_VALIDATION, row["validation_mAP"])
      add(row["method"], row["bits"], _SEEN_TEST, row["mAP"])
    elif row["protocol"] == "unseen_splits":
      add(row["method"], row["bits"], _NEW_TEST, row["mAP"])
      add(row["method"], row["bits"], _NEW_IMAGES, row["validation_mAP"])
  for row in results_table.read_rows(rule, _kind):
    if row["protocol"] == "unseen_splits":
      add(row["method"], row["bits"], _NEW_RULE, row["validation_mAP"])
  for folder in screens:
    name = os.path.basename(os.path.normpath(folder))
    for part, columns in _SCREEN_PARTS.items():
      path = os.path.join(folder, part, "results.csv")
      for row in results_table.read_rows(path, _kind):
        for column, key in columns:
          add(f"{name}/{row['variant']}", row["bits"], column, row[key])
  return cells


def ranks(values):
  """Ranks 1..n of `values` (1 = largest), ties given their mean rank."""
  order = sorted(range(len(values)), key=lambda i: -values[i])
  result = [0.0] * len(values)
  i = 0
  while i < len(order):
    j = i
    while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
      j += 1
    for k in range(i, j + 1):
      result[order[k]] = (i + j) / 2 + 1
    i = j + 1
  return result


def spearman(xs, ys):
  """Spearman's ρ of two equally long lists (None with fewer than 3, or
  when one list is constant)."""
  if len(xs) < 3:
    return None
  rx, ry = ranks(xs), ranks(ys)
  if len(set(rx)) == 1 or len(set(ry)) == 1:
    return None
  return statistics.correlation(rx, ry)


def full(cells, bits, column):
  """{label: mean} of the cells of `column` at `bits` with as many runs as
  the column's fullest cell."""
  found = {label: c[column] for (label, b), c in cells.items()
           if b == bits and column in c}
  if not found:
    return {}
  most = max(len(v) for v in found.values())
  return {label: statistics.mean(v) for label, v in found.items()
          if len(v) == most}


def table(cells, bits):
  """The markdown table and agreement lines at `bits`."""
  labels = sorted({label for label, b in cells if b == bits},
                  key=lambda l: (("/" in l), l))
  means = {column: full(cells, bits, column) for column in
           (_SEEN_VALIDATION, _SEEN_TEST, _NEW_RULE, _NEW_TEST, _NEW_IMAGES)}
  best_seen = max(means[_SEEN_TEST].values(), default=None)
  best_new = max(means[_NEW_TEST].values(), default=None)
  lines = [
      f"#### {bits} bits",
      "",
      "| method | seen: 1k5k validation | seen: 1k5k test | new: rule "
      "(validation_by=classes) | new: unseen_splits test | seen − best | "
      "new − best | worse gap |",
      "|---|---|---|---|---|---|---|---|"]
  for label in labels:
    cell = cells[(label, bits)]

    def text(column):
      values = cell.get(column, [])
      if not values:
        return "–"
      mark = "" if label in means[column] else f" ({len(values)} runs)"
      return results_table.mean_sd(values) + mark

    gaps = []
    for column, best in ((_SEEN_TEST, best_seen), (_NEW_TEST, best_new)):
      value = means[column].get(label)
      gaps.append(None if value is None or best is None else value - best)
    worse = min(gaps) if None not in gaps else None
    gap_text = [("–" if g is None else f"{g:+.4f}") for g in gaps + [worse]]
    lines.append(f"| {label} | {text(_SEEN_VALIDATION)} | {text(_SEEN_TEST)}"
                 f" | {text(_NEW_RULE)} | {text(_NEW_TEST)} | "
                 + " | ".join(gap_text) + " |")
  lines.append("")
  for rule, test, name in (
      (_SEEN_VALIDATION, _SEEN_TEST, "seen rule (1k5k held-out images) vs "
       "1k5k test"),
      (_NEW_RULE, _NEW_TEST, "new-class rule (validation_by=classes, over "
       "the splits) vs unseen_splits test"),
      (_NEW_IMAGES, _NEW_TEST, "held-out images of the unseen_splits runs "
       "vs their test")):
    both = sorted(set(means[rule]) & set(means[test]))
    rho = spearman([means[rule][l] for l in both],
                   [means[test][l] for l in both])
    value = "–" if rho is None else f"{rho:+.2f}"
    lines.append(f"- Spearman ρ, {name}: {value} over {len(both)} rows.")
  return "\n".join(lines) + "\n"


def report(benchmark, rule, screens, bits_list):
  cells = collect(benchmark, rule, screens)
  return "\n".join(table(cells, int(b)) for b in bits_list)


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  text = report(FLAGS.benchmark, FLAGS.rule, FLAGS.screens, FLAGS.bits)
  print(text)
  if FLAGS.out:
    with open(FLAGS.out + ".tmp", "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(FLAGS.out + ".tmp", FLAGS.out)


if __name__ == "__main__":
  define_flags()
  app.run(main)
