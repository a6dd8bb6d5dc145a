r"""Settings side by side on the validation split, with paired seeds.

The research tool behind the DHE loss (docs/research.md): each
--variant is a label and dhe_tf.train flags, applied after --common; every
variant runs at every --bits and --seed (the same seed gives every variant
the same initialisation and batch order), and the table shows validation
mAP (mean ± sd over seeds), each variant minus the first one paired by seed,
and the diagnostics that say why (dhe_tf.evaluation.diagnostics): the distance between
the classes' majority codes, the spread within a class, distinct codes,
saturated activations. The test queries are scored only with --test (for a
final table such as the ablation), never to choose. "{seed}" in a
variant's flags is replaced by each run's seed, so that a screen can draw
another class split per seed (--split_seed={seed}). Resumable: the runs in
--out_dir/results.csv are kept, and a label run before with other flags is
refused. Two processes may share one --out_dir (one core each on a 2-core
machine) when each is given its own --seeds or --bits: every finished run
is added to results.csv as it is on disk then, under a lock.

    python tools/compare_settings.py --out_dir=runs/codewords \
      --common="--flagfile=flags/fashion_mnist_dhe.flags" \
      --variant="today:" \
      --variant="codewords: --method_params=margin=0.5,quantization_weight=0,codeword_weight=1" \
      --bits=12 --seeds=0,1
"""

import fcntl
import os
import shlex
import statistics
import time

from absl import app
from absl import flags
import keras

from dhe_tf.runs import config as config_lib
from dhe_tf.core import errors
from dhe_tf.evaluation import evaluator
from dhe_tf.training import trainer
from dhe_tf.core.errors import ConfigError
import results_table


DIAGNOSTICS = ("precision_h2", "class_code_min_distance",
               "within_class_spread", "distinct_codes", "saturated")
_COLUMNS = ("variant", "bits", "seed", "validation_mAP", "mAP",
            "classifier_accuracy", *DIAGNOSTICS, "train_seconds", "args")


def define_flags():
  """The command line's flags (only when run as a script, so that tests can
  import the tool next to other tools that define flags of the same name)."""
  flags.DEFINE_multi_string("variant", [], "LABEL: dhe_tf.train flags, e.g. "
                            "'wide: --method_params=margin=0.6'. The first "
                            "variant is the reference of the differences.")
  flags.DEFINE_string("common", "", "dhe_tf.train flags of every variant, "
                      "before the variant's own (e.g. a --flagfile).")
  flags.DEFINE_list("bits", ["12"], "Code lengths.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, paired across variants.")
  flags.DEFINE_bool("test", False, "Also score the test queries (for a final "
                    "table; settings are chosen on validation mAP).")
  flags.DEFINE_bool("report_only", False, "Run nothing; write the table of "
                    "what --out_dir holds.")
  flags.DEFINE_bool("rescore_validation", False, "Run nothing: score the "
                    "validation split of every run in --out_dir again by "
                    "this version's definition (dhe_tf.evaluation.validation), then "
                    "write the table.")
  flags.DEFINE_string("out_dir", None, "Output directory (results.csv, "
                      "results.md, runs/).")
  flags.mark_flag_as_required("out_dir")


def parse_variant(text):
  """(label, [flags]) from "LABEL: --flag=value ..."."""
  label, sep, args = text.partition(":")
  if not sep or not label.strip():
    raise ConfigError(f"--variant is 'LABEL: flags'. Received: {text!r}")
  return label.strip(), shlex.split(args)


def make_config(args, bits, seed, test):
  """The TrainConfig of a variant's flags at `bits` and `seed` ("{seed}"
  in a flag stands for the seed)."""
  args = [arg.replace("{seed}", str(seed)) for arg in args]
  values = config_lib.parse_args(
      [*args, f"--bits={bits}", f"--seed={seed}",
       f"--evaluate_test={str(test).lower()}"], source="--variant")
  return config_lib.TrainConfig(**values)


def read_rows(path):
  return results_table.read_rows(path, lambda column: dict(
      bits=int, seed=int).get(column, float if column in _COLUMNS[3:-1]
                              else None))


def write_rows(path, rows):
  results_table.write_rows(path, rows, _COLUMNS)


def append_row(path, row):
  """Adds `row` to the CSV `path` as it is on disk now (another process may
  have added rows since this one read it), under an exclusive lock; returns
  every row."""
  with open(path + ".lock", "w", encoding="utf-8") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    rows = read_rows(path) + [row]
    write_rows(path, rows)
  return rows


def _run_dir(out_dir, label, bits, seed):
  return os.path.join(out_dir, "runs", f"{label}_{bits}bits_s{seed}")


def run(label, args, bits, seed, out_dir, test=False):
  """Trains one variant at `bits` and `seed`; returns its results row."""
  config = make_config(args, bits, seed, test)
  keras.backend.clear_session()
  results = trainer.train(config, _run_dir(out_dir, label, bits, seed),
                          verbose=0)
  diagnostics = results.get("validation_diagnostics", {})
  return dict(variant=label, bits=bits, seed=seed,
              validation_mAP=results.get("validation_mAP"),
              mAP=results.get("mAP"),
              classifier_accuracy=results.get("classifier_accuracy"),
              **{key: diagnostics.get(key) for key in DIAGNOSTICS},
              train_seconds=results.get("train_seconds"),
              args=" ".join(args))


def _mean(key, values):
  # A diagnostic's mean over seeds: counts of bits and codes to 0.1.
  values = [v for v in values if v is not None]
  if not values:
    return ""
  digits = 1 if key in ("class_code_min_distance", "distinct_codes") else 3
  return f"{statistics.mean(values):.{digits}f}"


def _paired(key, rows, first):
  # Mean ± sd of the rows' `key` minus the first variant's, seed by seed.
  return results_table.paired_differences(
      {r["seed"]: r[key] for r in rows},
      minus={seed: r[key] for seed, r in first.items()}).text()


def report(rows, labels):
  """Markdown: per code length, every variant's validation mAP (and test
  mAP with --test), their paired differences to the first variant, and the
  mean diagnostics."""
  lines = []
  for bits in sorted({r["bits"] for r in rows}):
    part = [r for r in rows if r["bits"] == bits]
    first = {r["seed"]: r for r in part if r["variant"] == labels[0]}
    lines += [f"### {bits} bits", "",
              f"| variant | seeds | validation mAP | − {labels[0]} (paired) "
              f"| test mAP | − {labels[0]} (test, paired) | P@H≤2 "
              "| min class distance | within-class spread | distinct codes "
              "| saturated |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label in labels:
      mine = sorted((r for r in part if r["variant"] == label),
                    key=lambda r: r["seed"])
      if not mine:
        continue
      deltas = [_paired(key, mine, first) if label != labels[0] else ""
                for key in ("validation_mAP", "mAP")]
      means = [_mean(key, [r[key] for r in mine]) for key in DIAGNOSTICS]
      lines.append(
          f"| {label} | {','.join(str(r['seed']) for r in mine)} | "
          f"{results_table.mean_sd([r['validation_mAP'] for r in mine])} | "
          f"{deltas[0]} | {results_table.mean_sd([r['mAP'] for r in mine])} "
          f"| {deltas[1]} | " + " | ".join(means) + " |")
    lines.append("")
  return "\n".join(lines)


def compare(out_dir, variants, common="", bits=("12",), seeds=("0", "1", "2"),
            test=False, report_only=False, rescore_validation=False):
  """Runs what `out_dir`/results.csv lacks of every variant ("LABEL: flags")
  at every code length and seed, and writes results.md; returns its text.
  Raises ConfigError, before any run, for a variant whose flags do not
  parse or a label run before with other flags. With rescore_validation
  nothing runs: the runs' validation splits are scored again
  (dhe_tf.evaluation.validation) and their rows updated."""
  variants = [parse_variant(v) for v in variants]
  if not variants:
    raise ConfigError("Give at least one --variant.")
  labels = [label for label, _ in variants]
  if len(set(labels)) != len(labels):
    raise ConfigError(f"--variant labels must differ. Received: {labels}")
  common = shlex.split(common)
  try:
    bits_list = [int(b) for b in bits]
    seeds = [int(s) for s in seeds]
  except ValueError:
    raise ConfigError("--bits and --seeds are integers. Received: "
                      f"{list(bits)}, {list(seeds)}") from None
  for _, args in variants:  # Every variant's flags parse before any run.
    make_config(common + args, bits_list[0], seeds[0], test)
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, "results.csv")
  rows = read_rows(path)
  for label, args in variants:
    done = {r["args"] for r in rows if r["variant"] == label}
    if done - {" ".join(common + args)}:
      raise ConfigError(f"{label} was run with other flags ({done.pop()}); "
                        "give the new flags a new label.")
  if rescore_validation:
    for row in rows:
      keras.backend.clear_session()
      results = evaluator.evaluate_run_dir(
          _run_dir(out_dir, row["variant"], row["bits"], row["seed"]),
          test=False)
      diagnostics = results["validation_diagnostics"]
      row.update(validation_mAP=results["validation_mAP"],
                 **{key: diagnostics.get(key) for key in DIAGNOSTICS})
    write_rows(path, rows)
  todo = [(label, args, b, seed) for seed in seeds for b in bits_list
          for label, args in variants
          if not any(r["variant"] == label and r["bits"] == b and
                     r["seed"] == seed for r in rows)]
  for number, (label, args, b, seed) in enumerate(
      [] if report_only or rescore_validation else todo):
    start = time.perf_counter()
    rows = append_row(path, run(label, common + args, b, seed, out_dir,
                                test))
    print(f"{label} {b} bits seed {seed}: validation mAP "
          f"{rows[-1]['validation_mAP']:.4f} in "
          f"{time.perf_counter() - start:.0f} s; "
          f"{len(todo) - number - 1} run(s) left", flush=True)
  table = report(rows, labels)
  with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
    f.write(table)
  return table


def main(argv):
  del argv
  flag_values = flags.FLAGS
  with errors.reported_in_one_line("compare_settings"):
    print(compare(flag_values.out_dir, flag_values.variant,
                  flag_values.common, flag_values.bits, flag_values.seeds,
                  flag_values.test, flag_values.report_only,
                  flag_values.rescore_validation))


if __name__ == "__main__":
  define_flags()
  app.run(main)
