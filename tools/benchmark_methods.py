r"""DHE against the baseline hashing methods, side by side on equal terms.

Every method trains the same network (`--backbone=cnn`: conv 32-64-128,
dense 256, dropout) on the same images, split, schedule, batch size and
optimiser, and is evaluated by the same code (dhe_tf.training.trainer.train); only the
objective differs. Seeds are paired: a seed fixes the initial weights and
the batch order of every method. Each method's own settings come from its
flagfile `FLAGS_DIR/<dataset>_<method>.flags`, which `--tune` writes.

    # The benchmark of docs/benchmark.md: all 70,000 Fashion-MNIST images, 8 methods, on
    # 1k5k (3 seeds at 12 and 32 bits, 1 at 24 and 48) and on unseen classes
    # (3 seeds on one class split, and 5 class splits, at 12 and 32 bits):
    # ~190 runs of ~3 min on 2 cores. Resumable: run it again with the same
    # --out_dir to go on.
    python tools/benchmark_methods.py --out_dir=runs/benchmark
    # Fair tuning first (same budget per method, validation split only):
    python tools/benchmark_methods.py --tune --out_dir=runs/tuning
    # Smoke check (2 epochs, first seed, 12 bits, 1k5k):
    python tools/benchmark_methods.py --quick --grid=1k5k:12:0

A grid protocol PROTOCOL_splits runs PROTOCOL with a class split per seed
(--split_seed = --seed); plain PROTOCOL keeps split 0 for every seed, so its
seeds vary the initialisation only. Both kinds of rows live side by side in
results.csv under their grid name.

Writes into --out_dir: results.csv (one row per run), results.md (per
protocol: mean ± sd of mAP, P@H≤2, classifier accuracy, distinct database
codes; DHE minus each baseline per seed with mean ± sd), map_vs_bits.png,
convergence.png (validation mAP per epoch of every method, 12 bits, 1k5k)
and runs/ (the run directory of every run). With --tune: tuning.csv,
tuning.md and the flagfiles.
"""

import dataclasses
import json
import os
import shutil
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import keras

from dhe_tf.runs import config as config_lib
from dhe_tf.core import errors
from dhe_tf.data import datasets
from dhe_tf.evaluation import evaluator
from dhe_tf.training import methods
from dhe_tf.training import trainer
from dhe_tf.core.errors import ConfigError
import results_table

flags.DEFINE_string("dataset", "fashion_mnist", "Dataset of every run.")
flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist",
                    "Where the dataset's files are (Debian's "
                    "dataset-fashion-mnist by default).")
flags.DEFINE_list("methods", list(methods.METHODS), "Methods to compare.")
flags.DEFINE_multi_string(
    "grid", ["1k5k:12,32:0,1,2", "1k5k:24,48:0", "unseen:12,32:0,1,2",
             "unseen_splits:12,32:0,1,2,3,4"],
    "Runs, as PROTOCOL:BITS:SEEDS (comma-separated lists); repeat the flag "
    "for several. Every method runs every entry.")
flags.DEFINE_integer("epochs", 0, "Epochs of every run; 0 = the flagfiles'.")
flags.DEFINE_string("jit_compile", "", "auto|true|false for every run; "
                    "empty = the flagfiles'.")
flags.DEFINE_multi_string(
    "set", [], "FIELD=VALUE of dhe_tf.train set on every run, over the "
    "flagfiles' and shared settings, e.g. --set=lr_schedule=constant to "
    "compare recipes; repeat for several.")
flags.DEFINE_bool("quick", False, "Smoke check: 2 epochs, the first seed.")
flags.DEFINE_bool("tune", False, "Choose each method's settings: every "
                  "setting of its registry tuning_grid (dhe_tf.training.methods), then"
                  " the best one with class-balanced batches, by validation "
                  "mAP at --tune_bits on --tune_protocol, seed 0; write the "
                  "best to the flagfiles.")
flags.DEFINE_bool("report_only", False, "Run nothing: write the tables and "
                  "pictures of what --out_dir holds (after an interrupted "
                  "sitting).")
flags.DEFINE_bool("rescore_validation", False, "Run nothing: score the "
                  "validation split of every finished run in --out_dir again"
                  " by this version's definition (dhe_tf.evaluation.validation; the "
                  "queries stay unscored), then write the tables; with "
                  "--tune, choose the settings again and rewrite the "
                  "flagfiles.")
flags.DEFINE_string("tune_protocol", "1k5k", "Protocol of the tuning runs.")
flags.DEFINE_list("tune_bits", ["12"], "Code lengths of the tuning runs "
                  "(mean validation mAP over them decides).")
flags.DEFINE_string("flags_dir", "flags", "Where the methods' flagfiles are.")
flags.DEFINE_string("out_dir", None, "Output directory; default "
                    "runs/benchmark_methods_<time>.")
FLAGS = flags.FLAGS

# The settings every method shares unless its flagfile says otherwise: the
# recipe chosen from DLBHC's and every method's validation curves
# (docs/benchmark.md, "The recipe").
SHARED = dict(backbone="cnn", epochs=30, batch_size=128, learning_rate=1e-3,
              lr_schedule="cosine", augment="none", jit_compile="auto",
              validation_fraction=0.1, validation_every=3)
# The sampler choice tuning adds to every method's grid: P classes × 32.
BALANCED = dict(sampler="balanced", classes_per_batch=4)

# Fields a method's flagfile records: its own settings and the shared ones.
_RECORDED = ("method", "method_params", "sampler", "classes_per_batch",
             "learning_rate") + tuple(
                 name for name in SHARED if name != "learning_rate")

_COLUMNS = ("protocol", "method", "bits", "seed", "mAP", "validation_mAP",
            "p_h2", "classifier_accuracy", "distinct_database_codes",
            "epochs", "train_seconds", "wall_seconds", "settings",
            "validation_curve", "seen_classes")
# A grid protocol with this suffix draws a class split per seed.
SPLITS_SUFFIX = "_splits"


def split_protocol(name):
  """(the dataset protocol, whether the split follows the seed) of a grid
  protocol name: "unseen_splits" → ("unseen", True)."""
  if name.endswith(SPLITS_SUFFIX):
    return name[:-len(SPLITS_SUFFIX)], True
  return name, False


def flagfile_path(flags_dir, dataset, method):
  return os.path.join(flags_dir, f"{dataset}_{method}.flags")


def write_flagfile(path, config, comment):
  """Writes `config`'s method settings and shared settings as a flagfile,
  under a header that gives the command that runs it and `comment`."""
  name = os.path.relpath(path) if not os.path.isabs(path) else path
  lines = [f"# python -m dhe_tf.train --flagfile={name} --bits=12 --seed=0"]
  lines += [f"# {line}" for line in comment.splitlines()]
  lines += config_lib.flagfile_lines(
      config, _RECORDED + ("dataset", "data_dir", "protocol"))
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  os.replace(tmp, path)


def base_config(method, protocol, *, use_flagfile=True):
  """The TrainConfig of `method` before bits and seed: flagfile or shared."""
  values = dict(SHARED, method=method)
  path = flagfile_path(FLAGS.flags_dir, FLAGS.dataset, method)
  if use_flagfile and os.path.exists(path):
    values.update(config_lib.read_flagfile(path))
  values.update(dataset=FLAGS.dataset, protocol=split_protocol(protocol)[0],
                data_dir=FLAGS.data_dir, method=method)
  if FLAGS.quick:
    values["epochs"] = 2
  if FLAGS.epochs:
    values["epochs"] = FLAGS.epochs
  if FLAGS.jit_compile:
    values["jit_compile"] = FLAGS.jit_compile
  values.update(config_lib.parse_args([f"--{s}" for s in FLAGS.set],
                                      source="--set"))
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


def describe(config):
  """The settings that set a method apart, as one short string: its loss's
  hyper-parameters, and its learning rate where it has none or where the
  rate is not the shared one (so that a flagfile's new rate reruns the
  grid's runs)."""
  parts = list(config.method_params)
  if (not methods.hyper_parameters(config.method) or
      config.learning_rate != SHARED["learning_rate"]):
    parts.append(f"learning_rate={config.learning_rate}")
  if config.sampler != "shuffle":
    parts.append(f"{config.sampler}×{config.classes_per_batch}")
  return " ".join(parts) or "defaults"


def check_scored(runs):
  """Raises ConfigError when --set turns off the test the grid reports
  (before any run, rather than after the first one's training)."""
  method, protocol = FLAGS.methods[0], runs[0][0]
  if not base_config(method, protocol).evaluate_test:
    raise ConfigError("--set=evaluate_test=false: the grid reports every "
                      "run's test mAP; runs scored on validation alone are "
                      "--tune's.")


def run_config(method, protocol, bits, seed):
  """The TrainConfig of one grid run; a PROTOCOL_splits run's split seed is
  its seed."""
  config = dataclasses.replace(base_config(method, protocol), bits=bits,
                               seed=seed)
  if split_protocol(protocol)[1]:
    config = dataclasses.replace(config, split_seed=seed)
  return config


def seen_classes(config):
  """The class ids `config` trains on, space-separated; "" when its protocol
  holds no class out."""
  return " ".join(map(str, datasets.resolve_seen_classes(
      config.dataset, config.protocol, config.seen_classes,
      split_seed=config.split_seed, data_dir=config.data_dir)))


def _row(protocol, config, results):
  return dict(
      protocol=protocol, method=config.method, bits=config.bits,
      seed=config.seed, mAP=results["mAP"],
      validation_mAP=results.get("validation_mAP"), p_h2=results["P@H<=2"],
      classifier_accuracy=results.get("classifier_accuracy"),
      distinct_database_codes=results.get("distinct_database_codes"),
      epochs=config.epochs, train_seconds=results["train_seconds"],
      wall_seconds=results["wall_seconds"], settings=describe(config),
      validation_curve=results.get("validation_curve"),
      seen_classes=seen_classes(config))


_KINDS = {**dict.fromkeys(("bits", "seed", "epochs",
                            "distinct_database_codes"), int),
          **dict.fromkeys(("mAP", "p_h2", "train_seconds", "wall_seconds",
                           "validation_mAP", "classifier_accuracy"), float),
          "validation_curve": json.loads}


def read_rows(path):
  """The rows of an earlier results.csv, typed; [] when there is none."""
  return results_table.read_rows(path, _KINDS.get)


def parse_grid(entries):
  """[(protocol, bits, seed)] of --grid entries PROTOCOL:BITS:SEEDS."""
  runs = []
  for entry in entries:
    parts = entry.split(":")
    if len(parts) != 3:
      raise ConfigError(f"--grid entries are PROTOCOL:BITS:SEEDS, e.g. "
                        f"1k5k:12,32:0,1,2. Received: {entry!r}")
    protocol, bits, seeds = parts
    try:
      bits = [int(b) for b in bits.split(",")]
      seeds = [int(s) for s in seeds.split(",")]
    except ValueError:
      raise ConfigError(f"--grid bits and seeds are integers. Received: "
                        f"{entry!r}") from None
    if FLAGS.quick:
      seeds = seeds[:1]
    runs += [(protocol, b, s) for b in bits for s in seeds]
  return list(dict.fromkeys(runs))


def _names(rows):
  return [m for m in methods.METHODS if any(r["method"] == m for r in rows)]


def summary_table(rows):
  """Markdown: mAP (mean ± sd over seeds), P@H≤2, classifier accuracy and
  the fewest distinct database codes, per method × bits of one protocol."""
  bits = sorted({r["bits"] for r in rows})
  names = _names(rows)
  cell = {(m, b): [r for r in rows if r["method"] == m and r["bits"] == b]
          for m in names for b in bits}
  best = {b: max((m for m in names if cell[(m, b)]), key=lambda m: (
      statistics.mean(r["mAP"] for r in cell[(m, b)]))) for b in bits}
  lines = ["| method | " + " | ".join(f"mAP {b} bits" for b in bits) +
           " | " + " | ".join(f"P@H≤2 {b}" for b in bits) +
           " | classifier accuracy | fewest distinct codes |",
           "|---" * (3 + 2 * len(bits)) + "|"]
  for m in names:
    cells = []
    for b in bits:
      text = results_table.mean_sd([r["mAP"] for r in cell[(m, b)]]) or "–"
      cells.append(f"**{text}**" if best[b] == m else text)
    for b in bits:
      runs = cell[(m, b)]
      cells.append(f"{statistics.mean(r['p_h2'] for r in runs):.4f}"
                   if runs else "–")
    accuracy = [r["classifier_accuracy"] for r in rows if r["method"] == m
                and r["classifier_accuracy"] is not None]
    cells.append(results_table.mean_sd(accuracy, 3) if accuracy else "–")
    distinct = [r["distinct_database_codes"] for r in rows
                if r["method"] == m and r["distinct_database_codes"]]
    cells.append(str(min(distinct)) if distinct else "–")
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def differences_table(rows, reference="dhe"):
  """Markdown: reference − each other method, per bits, paired by seed."""
  bits = sorted({r["bits"] for r in rows})
  def scores(method, b):
    return {r["seed"]: r["mAP"] for r in rows
            if r["method"] == method and r["bits"] == b}
  lines = [f"| {reference} − | " + " | ".join(f"{b} bits" for b in bits) +
           " |", "|---" * (1 + len(bits)) + "|"]
  for m in _names(rows):
    if m == reference:
      continue
    cells = [results_table.paired_differences(
        scores(reference, b), minus=scores(m, b)).text(per_seed_digits=3)
             or "–" for b in bits]
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  return pyplot


def _save(figure, pyplot, path):
  figure.tight_layout()
  figure.savefig(path + ".tmp.png", dpi=110)
  pyplot.close(figure)
  os.replace(path + ".tmp.png", path)


def plot_map_vs_bits(path, rows):
  """map_vs_bits.png: mean mAP against code length, a panel per protocol."""
  pyplot = _pyplot()
  protocols = list(dict.fromkeys(r["protocol"] for r in rows))
  figure, axes = pyplot.subplots(1, len(protocols), squeeze=False,
                                 figsize=(5.5 * len(protocols), 4))
  for axis, protocol in zip(axes[0], protocols):
    part = [r for r in rows if r["protocol"] == protocol]
    for m in _names(part):
      bits = sorted({r["bits"] for r in part if r["method"] == m})
      means = [statistics.mean(r["mAP"] for r in part
                               if r["method"] == m and r["bits"] == b)
               for b in bits]
      axis.plot(bits, means, marker="o", label=m)
    axis.set_title(protocol)
    axis.set_xlabel("bits")
    axis.set_ylabel("mAP@all")
    axis.set_xticks(sorted({r["bits"] for r in part}))
    axis.grid(alpha=0.3)
  axes[0][0].legend(fontsize=8)
  _save(figure, pyplot, path)


def plot_convergence(path, curves, title):
  """convergence.png: validation mAP per epoch, one line per method (mean
  over the seeds given)."""
  pyplot = _pyplot()
  figure, axis = pyplot.subplots(figsize=(6, 4))
  for method, runs in curves.items():
    epochs = sorted(set.intersection(*(set(map(int, c)) for c in runs)))
    axis.plot(epochs, [statistics.mean(c[str(e)] for c in runs)
                       for e in epochs], marker=".", label=method)
  axis.set_title(title)
  axis.set_xlabel("epoch")
  axis.set_ylabel("validation mAP")
  axis.grid(alpha=0.3)
  axis.legend(fontsize=8)
  _save(figure, pyplot, path)


def run_name(protocol, method, bits, seed):
  return os.path.join(protocol, f"{method}_{bits}bits_seed{seed}")


def benchmark(out_dir, runs):
  """Runs every method × (protocol, bits, seed) not already in
  out_dir/results.csv, then writes the tables and pictures.

  An interrupted benchmark continues where it stopped when run again with
  the same --out_dir; runs it had not finished start over.
  """
  path = os.path.join(out_dir, "results.csv")
  rows = read_rows(path)
  if FLAGS.rescore_validation:
    for row in rows:
      row["validation_mAP"] = _rescore(os.path.join(
          out_dir, "runs", run_name(row["protocol"], row["method"],
                                    row["bits"], row["seed"])))
    results_table.write_rows(path, rows, _COLUMNS)
  # A run under other settings than its method's flagfile now holds (the
  # tuning chose again) is run again.
  settings = {(p, m): describe(base_config(m, p))
              for p in {r["protocol"] for r in rows} for m in FLAGS.methods}
  stale = [r for r in rows if settings.get((r["protocol"], r["method"]),
                                           r["settings"]) != r["settings"]]
  if stale and not (FLAGS.report_only or FLAGS.rescore_validation):
    print(f"{len(stale)} run(s) under earlier settings run again: " +
          ", ".join(sorted({f"{r['method']} ({r['settings']})"
                            for r in stale})), flush=True)
    rows = [r for r in rows if r not in stale]
  done = {(r["protocol"], r["method"], r["bits"], r["seed"]) for r in rows}
  todo = [(p, m, b, s) for p, b, s in runs for m in FLAGS.methods
          if (p, m, b, s) not in done and not FLAGS.report_only
          and not FLAGS.rescore_validation]
  for number, (protocol, method, bits, seed) in enumerate(todo):
    config = run_config(method, protocol, bits, seed)
    name = run_name(protocol, method, bits, seed)
    directory = os.path.join(out_dir, "runs", name)
    shutil.rmtree(directory, ignore_errors=True)  # An unfinished run.
    results = run_one(config, directory)
    rows.append(_row(protocol, config, results))
    results_table.write_rows(path, rows, _COLUMNS)
    seconds = statistics.mean(r["wall_seconds"] for r in rows)
    left = len(todo) - number - 1
    print(f"{name}: mAP {results['mAP']:.4f} (validation "
          f"{results.get('validation_mAP', float('nan')):.4f}) in "
          f"{results['wall_seconds']} s; {left} run(s) left, ~"
          f"{left * seconds / 3600:.1f} h", flush=True)
  wanted = {(p, b, s) for p, b, s in runs}
  rows = [r for r in rows if r["method"] in FLAGS.methods and
          (r["protocol"], r["bits"], r["seed"]) in wanted]
  report(out_dir, rows)


def _rescore(directory):
  """The validation mAP of a finished run, scored again (without the
  queries) by this version's dhe_tf.evaluation.validation."""
  keras.backend.clear_session()
  return evaluator.evaluate_run_dir(directory, test=False)["validation_mAP"]


def report(out_dir, rows):
  """results.md, map_vs_bits.png and convergence.png of `rows`."""
  sections = []
  for protocol in dict.fromkeys(r["protocol"] for r in rows):
    part = [r for r in rows if r["protocol"] == protocol]
    seeds = sorted({r["seed"] for r in part})
    minutes = statistics.mean(r["wall_seconds"] for r in part) / 60
    over = f"seeds {', '.join(map(str, seeds))}"
    if split_protocol(protocol)[1]:
      splits = {r["seed"]: r.get("seen_classes") for r in part}
      over = ("class splits (split s = seed s; seen class ids: " + "; ".join(
          f"{s}: {splits[s] or '?'}" for s in seeds) + ")")
    sections.append(
        f"### {FLAGS.dataset}, protocol {protocol}\n\nmAP@all, mean ± sd "
        f"over {over} where a cell has several; "
        f"{part[0]['epochs']} epochs, {len(part)} runs of {minutes:.1f} min "
        "on average. Bold: best mean per code length.\n\n" +
        summary_table(part) + "\nDHE minus each method, paired by seed "
        "(mean ± sd; per seed in brackets):\n\n" + differences_table(part))
  text = "\n".join(sections)
  with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
    f.write(text)
  plot_map_vs_bits(os.path.join(out_dir, "map_vs_bits.png"), rows)
  protocol = "1k5k" if any(r["protocol"] == "1k5k" for r in rows) else (
      rows[0]["protocol"])
  bits = min(r["bits"] for r in rows if r["protocol"] == protocol)
  curves = {}
  for r in rows:
    if r["protocol"] == protocol and r["bits"] == bits and (
        r["validation_curve"]):
      curves.setdefault(r["method"], []).append(r["validation_curve"])
  if curves:
    plot_convergence(os.path.join(out_dir, "convergence.png"), curves,
                     f"{FLAGS.dataset} {protocol}, {bits} bits")
  print(text)


def tune(out_dir, bits_list):
  """Every method's tuning grid, then its best setting with class-balanced
  batches; resumable (tuning.csv); writes the best to the flagfiles."""
  path = os.path.join(out_dir, "tuning.csv")
  rows = read_tuning(path)
  if FLAGS.rescore_validation:
    for row in rows:
      for bits in bits_list:
        row[f"validation_mAP_{bits}"] = _rescore(os.path.join(
            out_dir, "runs", f"{row['method']}_trial{row['trial']}_{bits}bits"))
      row["validation_mAP"] = statistics.mean(
          row[f"validation_mAP_{bits}"] for bits in bits_list)
    results_table.write_rows(path, rows)
  for method in ([] if FLAGS.report_only or FLAGS.rescore_validation
                 else FLAGS.methods):
    grid = list(methods.METHODS[method].tuning_grid)
    for trial in range(len(grid) + 1):
      if any(r["method"] == method and r["trial"] == trial for r in rows):
        continue
      if trial < len(grid):
        setting = grid[trial]
      else:  # The best setting so far, with class-balanced batches.
        best = max((r for r in rows if r["method"] == method),
                   key=lambda r: r["validation_mAP"])
        setting = dict(grid[best["trial"]], **BALANCED)
      config = dataclasses.replace(
          with_setting(base_config(method, FLAGS.tune_protocol,
                                   use_flagfile=False), setting),
          seed=0, evaluate_test=False)
      row = dict(method=method, trial=trial, settings=describe(config))
      for bits in bits_list:
        name = f"{method}_trial{trial}_{bits}bits"
        results = run_one(dataclasses.replace(config, bits=bits),
                          os.path.join(out_dir, "runs", name))
        row[f"validation_mAP_{bits}"] = results["validation_mAP"]
        row["wall_seconds"] = results["wall_seconds"]
        print(f"{name} {row['settings']}: validation mAP "
              f"{results['validation_mAP']:.4f} in "
              f"{results['wall_seconds']} s", flush=True)
      row["validation_mAP"] = statistics.mean(
          row[f"validation_mAP_{bits}"] for bits in bits_list)
      row["validation_curve"] = results.get("validation_curve")
      row["config"] = json.dumps(config_lib.to_json(config))
      rows.append(row)
      results_table.write_rows(path, rows)
      left = sum(len(methods.METHODS[m].tuning_grid) + 1
                 for m in FLAGS.methods) - sum(
                     r["method"] in FLAGS.methods for r in rows)
      seconds = statistics.mean(r["wall_seconds"] for r in rows)
      print(f"{left} setting(s) left, ~{left * seconds * len(bits_list) / 3600:.1f}"
            " h", flush=True)
  write_tuning(out_dir, rows, bits_list)


def _tuning_kind(column):
  if column.startswith("validation_mAP") or column == "wall_seconds":
    return float
  return dict(trial=int, validation_curve=json.loads).get(column)


def read_tuning(path):
  return results_table.read_rows(path, _tuning_kind)


def write_tuning(out_dir, rows, bits_list):
  """tuning.md, and the chosen setting of every method into its flagfile."""
  best = {}
  for row in rows:
    if (row["method"] not in best or
        row["validation_mAP"] > best[row["method"]]["validation_mAP"]):
      best[row["method"]] = row
  lines = ["| method | setting | " + " | ".join(
      f"validation mAP {bits} bits" for bits in bits_list) + " |",
           "|---|---|" + "---|" * len(bits_list)]
  complete = {m for m in best if sum(r["method"] == m for r in rows) >=
              len(methods.METHODS[m].tuning_grid) + 1}
  order = list(methods.METHODS)
  for row in sorted(rows, key=lambda r: (order.index(r["method"]),
                                         r["trial"])):
    mark = ""
    if best[row["method"]] is row:
      mark = (" **(chosen)**" if row["method"] in complete
              else " (best so far)")
    lines.append(f"| {row['method']} | {row['settings']}{mark} | " + " | ".join(
        f"{row[f'validation_mAP_{bits}']:.4f}" for bits in bits_list) + " |")
  with open(os.path.join(out_dir, "tuning.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  curves = {m: [r["validation_curve"]] for m, r in best.items()
            if r["validation_curve"]}
  if curves:
    plot_convergence(
        os.path.join(out_dir, "convergence.png"), curves,
        f"{FLAGS.dataset} {FLAGS.tune_protocol}, {bits_list[-1]} bits, "
        "chosen settings, seed 0")
  print("\n".join(lines))
  for method, row in best.items():
    trials = sum(r["method"] == method for r in rows)
    if trials < len(methods.METHODS[method].tuning_grid) + 1:
      continue  # Not tuned to the end yet: its flagfile stays as it is.
    config = config_lib.from_json(json.loads(row["config"]))
    write_flagfile(
        flagfile_path(FLAGS.flags_dir, FLAGS.dataset, method), config,
        f"{method} on {FLAGS.dataset} {FLAGS.tune_protocol}, chosen by "
        f"tools/benchmark_methods.py --tune: validation mAP "
        f"{row['validation_mAP']:.4f}\nat {','.join(map(str, bits_list))} "
        f"bits, seed 0, best of {trials} settings (docs/benchmark.md)."
        f"\nRuntime: ~{row['wall_seconds'] / 60:.0f} min on 2 CPU cores.")


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
    runs = parse_grid(FLAGS.grid)
    tune_bits = _integers("tune_bits", FLAGS.tune_bits)
    if not (FLAGS.tune or FLAGS.report_only or FLAGS.rescore_validation):
      check_scored(runs)
    out_dir = FLAGS.out_dir or os.path.join(
        "runs", "benchmark_methods_" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    if FLAGS.tune:
      tune(out_dir, tune_bits)
    else:
      benchmark(out_dir, runs)


if __name__ == "__main__":
  app.run(main)
