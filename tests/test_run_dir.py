"""A finished run read once (dhe_tf.runs.run_dir.load_run): the Run that every
reader is handed, its fingerprint computed once, its data checked against the
split the run recorded."""

import os
import shutil
import stat

import numpy as np
import pytest

from dhe_tf.core.errors import ConfigError
from dhe_tf.index import searcher
from dhe_tf.model import inference
from dhe_tf.runs import run_dir


@pytest.fixture
def counted(monkeypatch):
  """Counts of the expensive reads: model fingerprints and dataset loads."""
  calls = {"fingerprint": 0, "data": 0}

  def count(name, function):
    def counting(*args, **kwargs):
      calls[name] += 1
      return function(*args, **kwargs)
    return counting

  monkeypatch.setattr(inference, "model_fingerprint",
                      count("fingerprint", inference.model_fingerprint))
  monkeypatch.setattr(run_dir, "load_data", count("data", run_dir.load_data))
  return calls


def test_a_run_computes_its_fingerprint_once(small_run, counted):
  run = run_dir.load_run(small_run[0])
  assert counted == {"fingerprint": 0, "data": 0}  # Nothing until asked.
  assert run.fingerprint == run.fingerprint
  assert counted["fingerprint"] == 1
  assert (run.name, run.bits, run.center_crop) == ("run", 12, False)
  assert run_dir.load_run(run) is run  # A Run is handed on, not read again.


def test_search_build_reads_the_run_and_its_data_once(small_run, counted,
                                                      tmp_path):
  manifest = searcher.build_index(small_run[0], str(tmp_path / "index"),
                                  part="query")
  assert counted == {"fingerprint": 1, "data": 1}
  assert manifest["fingerprint"] == run_dir.load_run(small_run[0]).fingerprint


def test_data_is_checked_against_the_recorded_split(small_run, tmp_path):
  copy = shutil.copytree(small_run[0], tmp_path / "run")
  run = run_dir.load_run(str(copy))
  data = run.data()  # No split.npz (a run not written by dhe_tf.train).
  split = dict(data.split, query=data.split["query"][::-1])
  run_dir.write_split(str(copy / "split.npz"), split)
  with pytest.raises(ConfigError, match=(
      "The query images of embedded differ from those in .*split.npz: the "
      "data or its split changed since training.")):
    run.data(("query", "database"))
  # A reader of another part is not stopped by it.
  assert len(run.data(("database",)).split["database"]) == 9900


def test_held_out_images_are_checked_against_the_recorded_split(small_run,
                                                                tmp_path):
  copy = shutil.copytree(small_run[0], tmp_path / "run")
  run = run_dir.load_run(str(copy))
  data = run.data()
  _, _, split = run_dir.split_training_part(run.config, data)
  run_dir.write_split(str(copy / "split.npz"), split)
  assert run.held_out(data).cardinality() == 50  # 10 % of 500 images.
  split["validation"] = split["validation"][::-1]
  run_dir.write_split(str(copy / "split.npz"), split)
  with pytest.raises(ConfigError, match="The validation images of embedded "
                     "differ"):
    run.held_out(data)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_get_the_mode_a_plain_open_gives(tmp_path, umask):
  """Not mkstemp's 0600: a service running as another user reads them."""
  old_umask = os.umask(umask)
  try:
    with open(tmp_path / "plain.txt", "w", encoding="utf-8") as f:
      f.write("{}")
    run_dir.write_json(str(tmp_path / "flags.json"), {"bits": 12})
    run_dir.write_split(str(tmp_path / "split.npz"),
                        {"query": np.arange(3)})
  finally:
    os.umask(old_umask)
  modes = {path.name: stat.S_IMODE(os.stat(path).st_mode)
           for path in tmp_path.iterdir()}
  assert modes == dict.fromkeys(["plain.txt", "flags.json", "split.npz"],
                                0o666 & ~umask)
  assert run_dir.read_json(str(tmp_path / "flags.json")) == {"bits": 12}
