"""tools/benchmark_methods.py: its --quick path writes the table it promises."""

import contextlib
import csv
import dataclasses
import io
import json
import os

from absl import flags
import pytest
import tool_modules

_BENCHMARK = tool_modules.load("benchmark_methods")  # Defines its flags.


def _run_in_process(*args):
  """The tool's main with `args` parsed, in this process; its stdout."""
  out = io.StringIO()
  flags.FLAGS(["benchmark_methods", *args])
  try:
    with contextlib.redirect_stdout(out):
      _BENCHMARK.main(["benchmark_methods"])
  finally:
    flags.FLAGS.unparse_flags()
  return out.getvalue()


def test_quick_benchmark_writes_csv_markdown_and_chart(tmp_path):
  out = tmp_path / "out"
  (tmp_path / "flags").mkdir()
  args = ["--quick", "--dataset=embedded", "--grid=tiny:6:4,5",
          "--methods=dhe,hashnet", "--epochs=1", "--jit_compile=false",
          "--set=backbone=small_cnn", "--set=fc_units=8",
          f"--flags_dir={tmp_path / 'flags'}", f"--out_dir={out}"]
  stdout = _run_in_process(*args)
  assert stdout.count(" run(s) left, ~") == 2  # One line per run.

  with open(out / "results.csv", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [(r["protocol"], r["method"], r["bits"], r["seed"]) for r in rows
         ] == [("tiny", m, "6", "4") for m in ("dhe", "hashnet")
              ]  # --quick: first seed only.
  for row in rows:
    assert 0 < float(row["mAP"]) <= 1 and 0 <= float(row["p_h2"]) <= 1
    assert 1 <= int(row["distinct_database_codes"]) <= 2**6
  # DHE has a classifier, HashNet none.
  assert 0 <= float(rows[0]["classifier_accuracy"]) <= 1
  assert rows[1]["classifier_accuracy"] == ""

  table = (out / "results.md").read_text(encoding="utf-8")
  assert ("| method | mAP 6 bits | P@H≤2 6 | classifier accuracy | fewest "
          "distinct codes |") in table
  summary, differences = table.split("DHE minus each method")
  for row in rows:
    (line,) = [l for l in summary.splitlines()
               if l.startswith(f"| {row['method']} |")]
    assert f"{float(row['mAP']):.4f}" in line
  for row in rows[1:]:  # DHE − the method, seed 4.
    (line,) = [l for l in differences.splitlines()
               if l.startswith(f"| {row['method']} |")]
    assert f"({float(rows[0]['mAP']) - float(row['mAP']):+.3f})" in line

  for picture in ("map_vs_bits.png", "convergence.png"):
    assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

  # Each method ran its own objective: DHE its loss and classification,
  # HashNet its pairwise loss alone.
  def run_flags(name):
    with open(out / "runs" / "tiny" / name / "flags.json",
              encoding="utf-8") as f:
      return json.load(f)
  dhe, hashnet = run_flags("dhe_6bits_seed4"), run_flags(
      "hashnet_6bits_seed4")
  assert (dhe["hash_loss_weight"], dhe["classification_weight"]) == (1, 1)
  assert (hashnet["hash_loss_weight"],
          hashnet["classification_weight"]) == (1, 0)
  # --set reaches every run, over the shared settings.
  for run in (dhe, hashnet):
    assert (run["backbone"], run["fc_units"]) == ("small_cnn", [8])

  # Run again: every run is in results.csv already, so none is repeated.
  before = (out / "results.csv").read_text(encoding="utf-8")
  assert _run_in_process(*args).count(" run(s) left") == 0
  assert (out / "results.csv").read_text(encoding="utf-8") == before
  assert (out / "results.md").read_text(encoding="utf-8") == table

  # --rescore_validation scores each finished run's validation split again
  # (training scored it by the same definition) and runs nothing.
  with open(out / "results.csv", encoding="utf-8") as f:
    lines = f.read().splitlines()
  column = lines[0].split(",").index("validation_mAP")
  for number, line in enumerate(lines[1:3], start=1):
    cells = line.split(",")
    cells[column] = "0.0"
    lines[number] = ",".join(cells)
  (out / "results.csv").write_text("\n".join(lines) + "\n",
                                   encoding="utf-8")
  assert _run_in_process(*args, "--rescore_validation").count(
      " run(s) left") == 0
  with open(out / "results.csv", encoding="utf-8") as f:
    for row, again in zip(rows, csv.DictReader(f)):
      assert float(again["validation_mAP"]) == pytest.approx(
          float(row["validation_mAP"]), abs=1e-9)

  # A method's flagfile changed (the tuning chose again): its runs under the
  # earlier settings run again, the other method's stay.
  (tmp_path / "flags" / "embedded_hashnet.flags").write_text(
      "--method=hashnet\n--method_params=scale=2.5\n", encoding="utf-8")
  stdout = _run_in_process(*args)
  assert "1 run(s) under earlier settings run again: hashnet (defaults)" in (
      stdout)
  assert stdout.count(" run(s) left") == 1
  with open(out / "results.csv", encoding="utf-8") as f:
    assert [r["settings"] for r in csv.DictReader(f)] == [
        rows[0]["settings"], "scale=2.5"]


def test_unknown_method_is_one_line(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    _run_in_process("--methods=dhe,lsh", f"--out_dir={tmp_path / 'out'}")
  assert exit_info.value.code == 2
  from dhe_tf.training import methods  # pylint: disable=g-import-not-at-top
  assert capsys.readouterr().err.strip().splitlines()[-1] == (
      "benchmark_methods: error: Unknown method 'lsh'. Available: " +
      ", ".join(methods.METHODS))
  assert not os.path.exists(tmp_path / "out")


def test_a_grid_without_its_test_is_refused_before_any_run(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    _run_in_process("--dataset=embedded", "--grid=tiny:6:4",
                    "--methods=dhe", "--set=evaluate_test=false",
                    f"--flags_dir={tmp_path}", f"--out_dir={tmp_path / 'out'}")
  assert exit_info.value.code == 2
  assert capsys.readouterr().err.strip().splitlines()[-1] == (
      "benchmark_methods: error: --set=evaluate_test=false: the grid reports "
      "every run's test mAP; runs scored on validation alone are --tune's.")
  assert not os.path.exists(tmp_path / "out")


def test_every_tuning_setting_applies_and_the_chosen_one_reads_back(
    tmp_path):
  from dhe_tf.runs import config as config_lib  # pylint: disable=g-import-not-at-top
  from dhe_tf.training import methods  # pylint: disable=g-import-not-at-top
  base = config_lib.TrainConfig(bits=12, protocol="tiny")
  for name, method in methods.METHODS.items():
    for setting in method.tuning_grid:
      config = config_lib.validate(_BENCHMARK.with_setting(
          config_lib.TrainConfig(method=name, protocol="tiny"), setting))
      used = methods.parse_params(name, config.method_params)
      for key, value in setting.get("method_params", {}).items():
        assert used[key] == value, (name, key)
      path = str(tmp_path / f"{name}.flags")
      _BENCHMARK.write_flagfile(path, config, "chosen\nby a test")
      with open(path, encoding="utf-8") as f:
        assert f.readline().startswith("# python -m dhe_tf.train --flagfile=")
      again = config_lib.TrainConfig(**{**config_lib.to_json(base), **(
          config_lib.read_flagfile(path))})
      assert config_lib.validate(again).method_params == config.method_params
      assert again.learning_rate == config.learning_rate


def test_a_rate_off_the_shared_one_is_part_of_the_settings():
  """A flagfile whose rate changed reruns the grid's runs (benchmark() reruns
  a method's runs whose settings string differs from its flagfile's)."""
  from dhe_tf.runs import config as config_lib  # pylint: disable=g-import-not-at-top
  shared = _BENCHMARK.SHARED["learning_rate"]
  dhe = config_lib.TrainConfig(method="dhe", learning_rate=shared,
                               method_params=["margin=0.5"])
  assert _BENCHMARK.describe(dhe) == "margin=0.5"
  assert _BENCHMARK.describe(dataclasses.replace(
      dhe, learning_rate=0.002)) == "margin=0.5 learning_rate=0.002"
  dlbhc = config_lib.TrainConfig(method="dlbhc", learning_rate=shared)
  assert _BENCHMARK.describe(dlbhc) == f"learning_rate={shared}"


def test_a_splits_protocol_draws_a_class_split_per_seed(tmp_path):
  flags.FLAGS(["benchmark_methods", "--dataset=fashion_mnist",
               f"--data_dir={tmp_path}", f"--flags_dir={tmp_path}"])
  try:
    assert _BENCHMARK.split_protocol("unseen_splits") == ("unseen", True)
    assert _BENCHMARK.split_protocol("unseen") == ("unseen", False)
    configs = {seed: _BENCHMARK.run_config("dhe", "unseen_splits", 12, seed)
               for seed in range(5)}
    splits = {seed: _BENCHMARK.seen_classes(config)
              for seed, config in configs.items()}
    assert all(c.protocol == "unseen" and c.split_seed == c.seed == seed
               for seed, c in configs.items())
    # Five different splits of 7 seen classes out of 10; split 0 is the
    # plain protocol's, whatever its seed.
    assert len(set(splits.values())) == 5
    assert all(len(s.split()) == 7 for s in splits.values())
    plain = _BENCHMARK.run_config("dhe", "unseen", 12, 3)
    assert plain.split_seed == 0
    assert _BENCHMARK.seen_classes(plain) == splits[0] == "2 3 4 5 6 7 9"
  finally:
    flags.FLAGS.unparse_flags()
