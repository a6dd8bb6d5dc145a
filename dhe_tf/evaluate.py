r"""Evaluates a trained run: retrieval metrics and pictures.

    python -m dhe_tf.evaluate --model_dir=runs/embedded_32bits_...

Loads RUN/model.keras, rebuilds the run's dataset and split from
RUN/flags.json (checked against RUN/split.npz), encodes queries and database
and writes into RUN: metrics.json (mAP@k, P@H<=2, R@H<=2, P@N),
pr_curve.png and retrievals.png. `dhe_tf.train` runs the same evaluation at
the end of training.
"""

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow loads.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from dhe_tf import evaluation
from dhe_tf import training
from dhe_tf.errors import ConfigError
from dhe_tf.errors import DataUnavailableError

flags.DEFINE_string("model_dir", None, "Run directory written by dhe_tf.train.")
flags.DEFINE_string("data_dir", None,
                    "Where the dataset is now, if not where training found it.")
flags.DEFINE_integer("topk", 0, "k of mAP@k; 0 = the run's setting.")
flags.DEFINE_integer("eval_batch_size", 256,
                     "Images per batch when encoding queries and database.")
flags.mark_flag_as_required("model_dir")

FLAGS = flags.FLAGS


def evaluate_run_dir(model_dir, *, data_dir=None, topk=None, batch_size=256):
  """Evaluates the run in `model_dir`; returns the metrics it wrote."""
  model, config = training.load_run(model_dir)
  if data_dir:
    config = dataclasses.replace(config, data_dir=data_dir)
  data = training.load_data(config)
  evaluation.check_split(data, os.path.join(model_dir, "split.npz"))
  results, _ = evaluation.evaluate_run(model, data, model_dir,
                                       batch_size=batch_size,
                                       topk=topk or config.topk)
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  try:
    results = evaluate_run_dir(FLAGS.model_dir, data_dir=FLAGS.data_dir,
                               topk=FLAGS.topk or None,
                               batch_size=FLAGS.eval_batch_size)
  except (ConfigError, DataUnavailableError, FileNotFoundError) as e:
    print(f"dhe_tf.evaluate: error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"mAP@{results['topk']} = {results['mAP']:.4f}, "
        f"P@H<=2 = {results['P@H<=2']:.4f}, R@H<=2 = {results['R@H<=2']:.4f} "
        f"→ {FLAGS.model_dir}/metrics.json, pr_curve.png, retrievals.png")


if __name__ == "__main__":
  app.run(main)
