"""tools/run_screen.py: every committed screen.toml loads; a screen runs from
its record (hand-made results, --report_only) and stops at a failure."""

import glob
import os
import subprocess
import sys
import time

import pytest

from dhe_tf.core.errors import ConfigError

pytest.importorskip("tomllib")  # Python 3.11 and later.
import compare_settings  # pylint: disable=g-import-not-at-top,g-bad-import-order
import run_screen  # pylint: disable=g-import-not-at-top,g-bad-import-order

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
_SCREENS = sorted(os.path.dirname(path) for path in glob.glob(
    os.path.join(_REPO, "tools", "results", "**", "screen.toml"),
    recursive=True))

_SCREEN = """\
# A hand-made screen: two variants of the tiny protocol.
[fragments]
BASE = "--dataset=embedded --protocol=$protocol --method=dhe"

[variants]
a = "$BASE"
"b_0.002" = "$BASE --learning_rate=0.002"

[[call]]
out_dir = "tiny"
fragments = {protocol = "tiny"}
bits = [6]
parallel = [[0], [1]]
test = true

[[call]]
out_dir = "tiny"
fragments = {protocol = "tiny"}
variants = ["b_0.002", "a"]
bits = [6]
seeds = [0, 1]
report_only = true
"""
_ARGS = "--dataset=embedded --protocol=tiny --method=dhe"


def test_every_committed_screen_loads_and_its_results_are_where_it_says():
  names = {os.path.relpath(path, os.path.join(_REPO, "tools", "results"))
           for path in _SCREENS}
  assert names == {"dhe_ablation", "own_images", *(f"dhe_research/{name}" for name in (
      "class_splits", "screen1", "screen2", "screen3", "screen4", "screen5",
      "screen6", "transfer", "one_dhe", "aux_baselines"))}
  for screen in _SCREENS:
    calls = run_screen.load_screen(screen)  # Unknown names raise.
    assert calls, screen
    for call in calls:
      # The results a call resumes are the committed ones, below the screen.
      assert os.path.exists(os.path.join(call.out_dir, "results.csv")), (
          call)
      assert os.path.commonpath([call.out_dir, screen]) == screen
      for variant in call.variants:
        label, args = compare_settings.parse_variant(variant)
        assert "$" not in " ".join(args), (screen, label)
  assert not glob.glob(os.path.join(_REPO, "tools", "results", "**",
                                    "command.sh"), recursive=True)


def _hand_made_screen(tmp_path):
  """The screen above, with results.csv rows of both variants at seeds 0, 1
  (validation: +0.05 and +0.03 for b_0.002)."""
  (tmp_path / "tiny").mkdir(parents=True)
  (tmp_path / "screen.toml").write_text(_SCREEN, encoding="utf-8")
  diagnostics = dict.fromkeys(compare_settings.DIAGNOSTICS, 1.0)
  rows = [dict(variant=label, bits=6, seed=seed, validation_mAP=validation,
               mAP=test, classifier_accuracy=None, **diagnostics,
               train_seconds=1.0, args=args)
          for label, args in (("a", _ARGS),
                              ("b_0.002", f"{_ARGS} --learning_rate=0.002"))
          for seed, validation, test in ((0, 0.50, 0.60), (1, 0.40, 0.70))]
  for row in rows[2:]:
    row["validation_mAP"] += 0.05 - 0.02 * row["seed"]
  compare_settings.write_rows(str(tmp_path / "tiny" / "results.csv"), rows)
  return tmp_path


def _line(table, label):
  (line,) = [l for l in table.splitlines() if l.startswith(f"| {label} |")]
  return [cell.strip() for cell in line.split("|")[1:-1]]


def test_report_only_prints_every_call_table_from_the_results(
    tmp_path, capsys):
  screen = _hand_made_screen(tmp_path)
  run_screen.run_screen(str(screen), report_only=True)
  tables = capsys.readouterr().out.strip().split("### 6 bits")[1:]
  # A table per parallel group (one after another: nothing trains), then
  # the report call's, whose reference is b_0.002.
  assert len(tables) == 3 and tables[0] == tables[1]
  assert _line(tables[0], "b_0.002")[1:4] == [
      "0,1", "0.4900 ± 0.0849", "+0.0400 ± 0.0141"]
  assert "− b_0.002 (paired)" in tables[2]
  assert _line(tables[2], "a")[3] == "-0.0400 ± 0.0141"
  assert (screen / "tiny" / "results.md").read_text(
      encoding="utf-8").strip() == "### 6 bits" + tables[2].rstrip()


def test_dry_run_prints_the_commands(tmp_path, capsys):
  screen = _hand_made_screen(tmp_path)
  run_screen.run_screen(str(screen), dry_run=True)
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 3
  assert [line.endswith(" &") for line in lines] == [True, True, False]
  assert "--seeds=0 --test &" in lines[0] and "--seeds=1 --test" in lines[1]
  assert f"'--variant=b_0.002: {_ARGS} --learning_rate=0.002'" in lines[2]
  assert lines[2].endswith("--bits=6 --seeds=0,1 --report_only")


def test_a_failing_call_stops_the_screen(tmp_path, capsys):
  screen = _hand_made_screen(tmp_path)
  text = _SCREEN.replace('"$BASE --learning_rate=0.002"',
                         '"$BASE --learning_rate=0.003"')
  (screen / "screen.toml").write_text(text, encoding="utf-8")
  with pytest.raises(ConfigError, match="b_0.002 was run with other flags"):
    run_screen.run_screen(str(screen), report_only=True)
  assert capsys.readouterr().out == ""  # Not the report call's table.


def test_processes_at_once_stop_at_the_first_failure():
  started = time.perf_counter()
  with pytest.raises(run_screen.CallFailed, match="exited with 3"):
    run_screen.run_at_once([
        [sys.executable, "-c", "import time; time.sleep(60)"],
        [sys.executable, "-c", "import sys; sys.exit(3)"]])
  assert time.perf_counter() - started < 30  # The sleeper was stopped.
  run_screen.run_at_once([[sys.executable, "-c", "pass"]] * 2)


@pytest.mark.parametrize("old, new, message", [
    ('["b_0.002", "a"]', '["b_0.002", "c"]', "unknown variant 'c'"),
    ('BASE = "', 'BASIS = "', r"unknown fragment \$BASE"),
    ("seeds = [0, 1]", "seeds = [0, 1]\nparallel = [[0]]",
     "gives seeds or parallel"),
    ("report_only = true", "report = true", "unknown key 'report'"),
    ('"b_0.002" =', "b_0.002 =", "b_0 is not a string of flags"),
    ("bits = [6]\nseeds", 'bits = ["6"]\nseeds', "bits is a list of integers"),
])
def test_a_screen_that_does_not_hold_together_is_refused(tmp_path, old, new,
                                                          message):
  assert old in _SCREEN
  (tmp_path / "screen.toml").write_text(_SCREEN.replace(old, new),
                                        encoding="utf-8")
  with pytest.raises(ConfigError, match=message):
    run_screen.load_screen(str(tmp_path))


def test_command_line_prints_the_tables_from_any_folder(tmp_path):
  screen = _hand_made_screen(tmp_path / "screen")
  result = subprocess.run(
      [sys.executable, os.path.join(_REPO, "tools", "run_screen.py"),
       str(screen), "--report_only"], capture_output=True, text=True,
      cwd=tmp_path, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.count("### 6 bits") == 3
  missing = subprocess.run(
      [sys.executable, os.path.join(_REPO, "tools", "run_screen.py"),
       str(tmp_path / "nothing")], capture_output=True, text=True,
      timeout=300)
  assert missing.returncode == 2
  assert missing.stderr.strip().splitlines()[-1] == (
      f"run_screen: error: No screen.toml in {tmp_path / 'nothing'}.")
