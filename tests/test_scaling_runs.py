"""Real runs of docs/scaling.md on a CPU: resume after a kill, NaN stop, two-worker
MultiWorkerMirroredStrategy on 127.0.0.1, and tools/gpu_check.sh --quick."""

import contextlib
import glob
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.runs import config as config_lib
from dhe_tf.training import trainer
from dhe_tf.core import errors
from dhe_tf.core.errors import TrainingDivergedError

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Validation mAP only: the queries' evaluation is tested with the shared run.
_TINY = dict(protocol="tiny", epochs=3, batch_size=50, bits=12,
             validation_every=2, evaluate_test=False)


@contextlib.contextmanager
def absl_logs():
  """Captures what the library logs through absl at INFO and above."""
  logged = io.StringIO()
  handler = logging.StreamHandler(logged)
  logger = logging.getLogger("absl")
  level = logger.level
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  try:
    yield logged
  finally:
    logger.removeHandler(handler)
    logger.setLevel(level)


class _Interrupted(Exception):
  pass


class _InterruptAfter(keras.callbacks.Callback):
  """Stops fit() like a kill, after `epochs` epochs (their backup written)."""

  def __init__(self, epochs):
    super().__init__()
    self.epochs = epochs
    self.losses = []

  def on_epoch_end(self, epoch, logs=None):
    self.losses.append(logs["loss"])
    if epoch + 1 == self.epochs:  # Never when epochs=0.
      raise _Interrupted()


def _steps(log_dir, tag, paths=None):
  steps = []
  for path in paths or glob.glob(os.path.join(log_dir, "events.out.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      steps += [event.step for value in event.summary.value
                if value.tag == tag]
  return sorted(steps)


def test_killed_run_resumes_from_its_last_epoch_with_continuing_curves(
    tmp_path):
  model_dir = str(tmp_path / "run")
  interrupt = _InterruptAfter(2)
  with pytest.raises(_Interrupted):
    trainer.train(config_lib.TrainConfig(**_TINY), model_dir, verbose=0,
                   callbacks=[interrupt])
  with open(os.path.join(model_dir, "backup", "training_metadata.json")) as f:
    assert json.load(f)["epoch"] == 2
  assert not os.path.exists(os.path.join(model_dir, "model.keras"))
  with open(os.path.join(model_dir, "flags.json")) as f:
    flags_before = json.load(f)
  train_logs = os.path.join(model_dir, "logs", "train")
  first_files = set(glob.glob(os.path.join(train_logs, "events.out.*")))

  seen = _InterruptAfter(0)  # Records the epochs of the rerun.
  with absl_logs() as logged:
    trainer.train(config_lib.TrainConfig(**_TINY), model_dir, verbose=0,
                   callbacks=[seen])
  assert "Resuming the unfinished run" in logged.getvalue()
  assert len(seen.losses) == 1  # Only the missing third epoch.
  assert seen.losses[0] < interrupt.losses[0]  # Weights were restored.
  with open(os.path.join(model_dir, "flags.json")) as f:
    assert json.load(f) == flags_before
  assert os.path.isfile(os.path.join(model_dir, "model.keras"))
  assert os.path.isfile(os.path.join(model_dir, "metrics.json"))
  assert not os.path.exists(os.path.join(model_dir, "backup"))
  # TensorBoard continues at epoch 3 (step 2) instead of starting again.
  new_files = set(glob.glob(os.path.join(train_logs, "events.out.*")))
  assert _steps(train_logs, "epoch_loss", new_files - first_files) == [2]
  assert set(_steps(train_logs, "epoch_loss")) <= {0, 1, 2}
  assert _steps(os.path.join(model_dir, "logs", "validation"),
                "epoch_mAP") == [1, 2]  # After epoch 2 and the last.


class _PoisonAfterFirstEpoch(keras.callbacks.Callback):

  def on_epoch_end(self, epoch, logs=None):
    if epoch == 0:
      kernel = self.model.get_layer("hash").kernel
      kernel.assign(kernel * np.nan)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_epoch(tmp_path):
  model_dir = str(tmp_path / "run")
  config = config_lib.TrainConfig(**dict(_TINY, validation_fraction=0,
                                         evaluate_test=True))
  with pytest.raises(TrainingDivergedError, match=re.escape(
      "loss is nan at epoch 2, batch 1: training stopped; the weights after "
      "epoch 1 are kept in")):
    trainer.train(config, model_dir, verbose=0,
                   callbacks=[_PoisonAfterFirstEpoch()])
  assert not os.path.exists(os.path.join(model_dir, "model.keras"))
  with open(os.path.join(model_dir, "backup", "training_metadata.json")) as f:
    assert json.load(f)["epoch"] == 1
  with h5py.File(os.path.join(model_dir, "backup", "latest.weights.h5")) as f:
    arrays = []
    f.visititems(lambda name, item: arrays.append(item[()])
                 if isinstance(item, h5py.Dataset) else None)
  assert arrays and all(np.all(np.isfinite(a)) for a in arrays)


def test_divergence_is_reported_in_one_line_with_status_2(capsys):
  # What every command does with a user error (here the one train raises).
  with pytest.raises(SystemExit) as exit_info:
    with errors.reported_in_one_line("dhe_tf.train"):
      raise TrainingDivergedError("loss is nan at epoch 2, batch 1: stopped")
  assert exit_info.value.code == 2
  assert capsys.readouterr().err == (
      "dhe_tf.train: error: loss is nan at epoch 2, batch 1: stopped\n")
  with pytest.raises(ZeroDivisionError):  # A bug keeps its traceback.
    with errors.reported_in_one_line("dhe_tf.train"):
      1 / 0  # pylint: disable=pointless-statement


_WORKER = """
import sys
import keras
import numpy as np
from dhe_tf.runs import config as config_lib
from dhe_tf.training import trainer

class SaveWeights(keras.callbacks.Callback):
  def on_train_end(self, logs=None):
    np.savez(sys.argv[2], *[v.numpy() for v in self.model.trainable_variables])

config = config_lib.TrainConfig(protocol="tiny", epochs=1, batch_size=50,
                              bits=12, validation_fraction=0,
                              strategy="multi_worker")
trainer.train(config, sys.argv[1], verbose=0, callbacks=[SaveWeights()])
"""


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_two_workers_on_localhost_train_the_same_weights(tmp_path):
  model_dir = str(tmp_path / "run")  # Shared, as on a shared file system.
  cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
  workers = []
  for index in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}}))
    workers.append(subprocess.Popen(
        [sys.executable, "-c", _WORKER, model_dir,
         str(tmp_path / f"weights_{index}.npz")], cwd=_REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  try:
    outputs = [worker.communicate(timeout=300) for worker in workers]
  finally:
    for worker in workers:
      if worker.poll() is None:  # One waits forever if the other failed.
        worker.kill()
  for worker, (_, err) in zip(workers, outputs):
    assert worker.returncode == 0, err[-3000:]
  with open(os.path.join(model_dir, "metrics.json")) as f:
    metrics = json.load(f)
  assert metrics["replicas"] == 2 and metrics["xla"] is False
  assert sorted(os.listdir(model_dir)) == [
      "flags.json", "logs", "metrics.json", "model.keras", "pr_curve.png",
      "retrievals.png", "split.npz"]  # Nothing of the other worker's.
  chief, other = (np.load(str(tmp_path / f"weights_{i}.npz")) for i in (0, 1))
  assert len(chief.files) == len(other.files) > 0
  for name in chief.files:
    np.testing.assert_allclose(other[name], chief[name], rtol=1e-6,
                               atol=1e-7)


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")),
                    reason="on a GPU the check is ResNet50: run it by hand")
def test_gpu_check_quick_runs_its_cpu_path():
  # This interpreter, activated or not: the script's python3 may be another.
  result = subprocess.run(["bash", "tools/gpu_check.sh", "--quick"],
                          capture_output=True, text=True, cwd=_REPO,
                          env=dict(os.environ, PYTHON=sys.executable),
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  rates = {}
  for variant in ("plain", "dhe"):
    found = re.search(rf"\| {variant} \| off \| \d+ \| (\d+) \| ([\d.]+) \|",
                      result.stdout)
    assert found, result.stdout
    rates[variant] = int(found.group(1)), float(found.group(2))
  # The ratio column is dhe's rate over plain's.
  assert rates["dhe"][1] == pytest.approx(
      rates["dhe"][0] / rates["plain"][0], abs=0.01)
