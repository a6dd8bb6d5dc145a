r"""DHE against the baseline hashing methods, side by side on equal terms.

Every method trains the same model (small CNN from scratch by default) on the
same data, split, epochs, batch size and optimiser, and is evaluated by the
same code (dhe_tf.trainer.train); only the loss on the hash layer differs.
Each method's settings come from its flagfile `FLAGS_DIR/<dataset>_<method>
.flags`, which `--tune` writes.

    # What we report: real Fashion-MNIST images (the embedded 10,000), 1k5k,
    # 6 methods × 4 code lengths × 3 seeds:
    python tools/benchmark_methods.py
    # Smoke check, ≤ 10 minutes on 2 cores (2 epochs, one seed):
    python tools/benchmark_methods.py --quick
    # Fair tuning: the same budget of settings per method, chosen by validation
    # mAP (the queries are never scored), written to the flagfiles:
    python tools/benchmark_methods.py --tune
    # All 70,000 Fashion-MNIST images (69,000 database):
    python tools/benchmark_methods.py --dataset=fashion_mnist \
        --data_dir=/usr/share/datasets/fashion-mnist

Writes into --out_dir: results.csv (one row per run), results.md (mean ± std
mAP and P@H≤2 per method and code length), map_vs_bits.png, and runs/ (the
run directory of every run). With --tune: tuning.csv, tuning.md and the
flagfiles.
"""

import csv
import dataclasses
import os
import shutil
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import keras

from dhe_tf import config as config_lib
from dhe_tf import errors
from dhe_tf import methods
from dhe_tf import trainer
from dhe_tf.errors import ConfigError

flags.DEFINE_string("dataset", "embedded", "Dataset of every run (embedded: "
                    "10,000 real Fashion-MNIST images inside the package).")
flags.DEFINE_string("protocol", "1k5k", "Split protocol of every run.")
flags.DEFINE_string("data_dir", None, "Where the dataset's files are.")
flags.DEFINE_list("methods", list(methods.METHODS), "Methods to compare.")
flags.DEFINE_list("bits", ["12", "24", "32", "48"], "Code lengths.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (weights and shuffling).")
flags.DEFINE_integer("epochs", 0, "Epochs of every run; 0 = the flagfiles'.")
flags.DEFINE_string("jit_compile", "", "auto|true|false for every run; "
                    "empty = the flagfiles' (true: XLA, also on CPU).")
flags.DEFINE_bool("quick", False, "Smoke check: 2 epochs, the first seed.")
flags.DEFINE_bool("tune", False, "Choose each method's settings from "
                  "each method's registry tuning_grid (dhe_tf.methods) by mean validation mAP over --tune_bits at "
                  "seed 0, and write them to the flagfiles.")
flags.DEFINE_list("tune_bits", ["12"], "Code lengths of the tuning runs "
                  "(mean validation mAP over them decides); 12: the shortest "
                  "codes, where methods differ most, for a small budget.")
flags.DEFINE_string("flags_dir", "flags", "Where the methods' flagfiles are.")
flags.DEFINE_string("out_dir", None, "Output directory; default "
                    "runs/benchmark_methods_<time>.")
FLAGS = flags.FLAGS

# The settings every method shares unless its flagfile says otherwise.
SHARED = dict(backbone="small_cnn", epochs=6, batch_size=128,
              learning_rate=1e-3, jit_compile="true", validation_fraction=0.1,
              validation_every=3)

# Fields a method's flagfile records: its own settings and the shared ones.
_RECORDED = ("method", "method_params", "learning_rate") + tuple(
    name for name in SHARED if name != "learning_rate")


def flagfile_path(flags_dir, dataset, method):
  return os.path.join(flags_dir, f"{dataset}_{method}.flags")


def write_flagfile(path, config, comment):
  """Writes `config`'s method settings and shared settings as a flagfile,
  under a header that gives the command that runs it and `comment`."""
  name = os.path.relpath(path) if not os.path.isabs(path) else path
  lines = [f"# python -m dhe_tf.train --flagfile={name} --bits=12 --seed=0"]
  lines += [f"# {line}" for line in comment.splitlines()]
  lines += config_lib.flagfile_lines(
      config, _RECORDED + ("dataset", "protocol"))
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  os.replace(tmp, path)


def base_config(method, *, use_flagfile=True):
  """The TrainConfig of `method` before bits and seed: flagfile or shared."""
  values = dict(SHARED, method=method)
  path = flagfile_path(FLAGS.flags_dir, FLAGS.dataset, method)
  if use_flagfile and os.path.exists(path):
    values.update(config_lib.read_flagfile(path))
  values.update(dataset=FLAGS.dataset, protocol=FLAGS.protocol,
                data_dir=FLAGS.data_dir, method=method)
  if FLAGS.quick:
    values["epochs"] = 2
  if FLAGS.epochs:
    values["epochs"] = FLAGS.epochs
  if FLAGS.jit_compile:
    values["jit_compile"] = FLAGS.jit_compile
  values["validation_every"] = min(values["validation_every"],
                                   values["epochs"])
  return config_lib.TrainConfig(**values)


def with_setting(config, setting):
  """`config` with one setting of a method's tuning grid applied."""
  setting = dict(setting)
  params = setting.pop("method_params", None)
  if params is not None:
    setting["method_params"] = methods.format_params(params)
  return dataclasses.replace(config, **setting)


def run_one(config, directory):
  """Trains and evaluates one configuration; returns its metrics dict."""
  keras.backend.clear_session()
  start = time.perf_counter()
  results = trainer.train(config, directory, verbose=0)
  results["wall_seconds"] = round(time.perf_counter() - start, 1)
  return results


def _row(config, results):
  return dict(method=config.method, bits=config.bits, seed=config.seed,
              mAP=results["mAP"], validation_mAP=results.get("validation_mAP"),
              p_h2=results["P@H<=2"], epochs=config.epochs,
              train_seconds=results["train_seconds"],
              wall_seconds=results["wall_seconds"],
              settings=describe(config))


def describe(config):
  """The settings that set a method apart, as one short string."""
  if not methods.hyper_parameters(config.method):
    return f"learning_rate={config.learning_rate}"
  return " ".join(config.method_params) or "defaults"


def write_csv(path, rows):
  with open(path + ".tmp", "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  os.replace(path + ".tmp", path)


def _mean_std(values):
  if len(values) == 1:
    return f"{values[0]:.4f}"
  return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def summary_table(rows):
  """Markdown: mAP (mean ± std over seeds) and P@H≤2 per method × bits."""
  bits = sorted({r["bits"] for r in rows})
  names = [m for m in methods.METHODS if any(r["method"] == m for r in rows)]
  best = {}
  for b in bits:
    means = {m: statistics.mean(r["mAP"] for r in rows
                                if r["method"] == m and r["bits"] == b)
             for m in names}
    best[b] = max(means, key=means.get)
  header = ("| method | " + " | ".join(f"mAP {b} bits" for b in bits) +
            " | " + " | ".join(f"P@H≤2 {b}" for b in bits) + " |")
  lines = [header, "|---" * (1 + 2 * len(bits)) + "|"]
  for m in names:
    cells = []
    for b in bits:
      runs = [r for r in rows if r["method"] == m and r["bits"] == b]
      cell = _mean_std([r["mAP"] for r in runs])
      cells.append(f"**{cell}**" if best[b] == m else cell)
    for b in bits:
      runs = [r for r in rows if r["method"] == m and r["bits"] == b]
      cells.append(f"{statistics.mean(r['p_h2'] for r in runs):.4f}")
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot(path, rows):
  """map_vs_bits.png: mean mAP against code length, one line per method."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, axes = pyplot.subplots(figsize=(6, 4))
  for m in [m for m in methods.METHODS if any(r["method"] == m for r in rows)]:
    bits = sorted({r["bits"] for r in rows if r["method"] == m})
    means = [statistics.mean(r["mAP"] for r in rows
                             if r["method"] == m and r["bits"] == b)
             for b in bits]
    axes.plot(bits, means, marker="o", label=m)
  axes.set_xlabel("bits")
  axes.set_ylabel("mAP")
  axes.set_xticks(sorted({r["bits"] for r in rows}))
  axes.grid(alpha=0.3)
  axes.legend()
  figure.tight_layout()
  figure.savefig(path + ".tmp.png", dpi=120)
  pyplot.close(figure)
  os.replace(path + ".tmp.png", path)


def read_rows(path):
  """The rows of an earlier results.csv, typed; [] when there is none."""
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  for row in rows:
    for key in ("bits", "seed", "epochs"):
      row[key] = int(row[key])
    for key in ("mAP", "p_h2", "train_seconds", "wall_seconds"):
      row[key] = float(row[key])
    row["validation_mAP"] = float(row["validation_mAP"] or "nan")
  return rows


def benchmark(out_dir, bits_list, seeds):
  """Runs every method × bits × seed not already in out_dir/results.csv.

  An interrupted benchmark continues where it stopped when run again with
  the same --out_dir; runs it had not finished start over.
  """
  rows = read_rows(os.path.join(out_dir, "results.csv"))
  done = {(r["method"], r["bits"], r["seed"]) for r in rows}
  for bits in bits_list:
    for seed in seeds:
      for method in FLAGS.methods:
        if (method, bits, seed) in done:
          continue
        config = dataclasses.replace(base_config(method), bits=bits, seed=seed)
        name = f"{method}_{bits}bits_seed{seed}"
        directory = os.path.join(out_dir, "runs", name)
        shutil.rmtree(directory, ignore_errors=True)  # An unfinished run.
        results = run_one(config, directory)
        rows.append(_row(config, results))
        print(f"{name}: mAP {results['mAP']:.4f} (validation "
              f"{results.get('validation_mAP', float('nan')):.4f}) in "
              f"{results['wall_seconds']} s", flush=True)
        write_csv(os.path.join(out_dir, "results.csv"), rows)
  rows = [r for r in rows if r["method"] in FLAGS.methods and
          r["bits"] in bits_list and r["seed"] in seeds]
  table = summary_table(rows)
  caption = (f"{FLAGS.dataset} {FLAGS.protocol}, mAP@all over "
             f"{len(seeds)} seed(s) (mean ± std), {rows[0]['epochs']} epochs"
             ". Bold: best mean per code length.\n\n")
  with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
    f.write(caption + table)
  plot(os.path.join(out_dir, "map_vs_bits.png"), rows)
  print(caption + table)


def tune(out_dir, bits_list):
  rows, best = [], {}
  for method in FLAGS.methods:
    grid = methods.METHODS[method].tuning_grid
    for trial, setting in enumerate(grid):
      config = dataclasses.replace(
          with_setting(base_config(method, use_flagfile=False), setting),
          seed=0, evaluate_test=False)
      row = dict(method=method, trial=trial, settings=describe(config))
      for bits in bits_list:
        name = f"{method}_trial{trial}_{bits}bits"
        results = run_one(dataclasses.replace(config, bits=bits),
                          os.path.join(out_dir, "runs", name))
        row[f"validation_mAP_{bits}"] = results["validation_mAP"]
        print(f"{name} {row['settings']}: validation mAP "
              f"{results['validation_mAP']:.4f}", flush=True)
      row["validation_mAP"] = statistics.mean(
          row[f"validation_mAP_{bits}"] for bits in bits_list)
      rows.append(row)
      write_csv(os.path.join(out_dir, "tuning.csv"), rows)
      if method not in best or row["validation_mAP"] > best[method][0]:
        best[method] = (row["validation_mAP"], config, trial)
  lines = ["| method | setting | " + " | ".join(
      f"validation mAP {bits} bits" for bits in bits_list) + " | mean |",
           "|---|---|" + "---|" * (len(bits_list) + 1)]
  for row in rows:
    mark = " (chosen)" if best[row["method"]][2] == row["trial"] else ""
    lines.append(f"| {row['method']} | {row['settings']}{mark} | " + " | ".join(
        f"{row[f'validation_mAP_{bits}']:.4f}" for bits in bits_list) +
                 f" | {row['validation_mAP']:.4f} |")
  with open(os.path.join(out_dir, "tuning.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))
  for method, (score, config, _) in best.items():
    write_flagfile(
        flagfile_path(FLAGS.flags_dir, FLAGS.dataset, method), config,
        f"{method} on {FLAGS.dataset} {FLAGS.protocol}, chosen by "
        f"tools/benchmark_methods.py --tune: mean validation mAP {score:.4f}"
        f"\nover {','.join(map(str, bits_list))} bits, seed 0, best of "
        f"{len(methods.METHODS[method].tuning_grid)} settings (README, 'The "
        "benchmark'). Runtime: ~1 min on 2\nCPU cores.")


def _integers(name, values):
  try:
    return [int(v) for v in values]
  except ValueError:
    raise ConfigError(f"--{name} takes integers. Received: "
                      f"{','.join(values)}") from None


def main(argv):
  del argv
  with errors.reported_in_one_line("benchmark_methods"):
    for method in FLAGS.methods:
      methods.check_method(method)
    bits_list = _integers("bits", FLAGS.bits)
    seeds = _integers("seeds", FLAGS.seeds)[:1 if FLAGS.quick else None]
    out_dir = FLAGS.out_dir or os.path.join(
        "runs", "benchmark_methods_" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    if FLAGS.tune:
      tune(out_dir, _integers("tune_bits", FLAGS.tune_bits))
    else:
      benchmark(out_dir, bits_list, seeds)


if __name__ == "__main__":
  app.run(main)
