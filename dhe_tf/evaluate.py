r"""Evaluates a trained run: retrieval metrics and pictures.

    python -m dhe_tf.evaluate --model_dir=runs/embedded_32bits_...

Loads RUN/model.keras, rebuilds the run's dataset and split from
RUN/flags.json (checked against RUN/split.npz), scores the validation split
again (validation_mAP, by this version's definition), encodes queries and
database and writes into RUN: metrics.json (mAP@k, P@H<=2, R@H<=2, P@N),
pr_curve.png and retrievals.png. With --notest only the validation split is
scored: the way to bring a tuning run up to date without seeing the queries. `dhe_tf.train` runs the same evaluation at
the end of training. The library function is
dhe_tf.evaluation.evaluator.evaluate_run_dir.
"""

from absl import app
from absl import flags

from dhe_tf.core import errors
from dhe_tf.evaluation import evaluator

flags.DEFINE_string("model_dir", None, "Run directory written by dhe_tf.train.")
flags.DEFINE_string("data_dir", None,
                    "Where the dataset is now, if not where training found it.")
flags.DEFINE_integer("topk", 0, "k of mAP@k; 0 = the run's setting.")
flags.DEFINE_integer("eval_batch_size", 256,
                     "Images per batch when encoding queries and database.")
flags.DEFINE_bool("test", True, "Score the test queries; --notest scores "
                  "only the validation split (choosing settings).")
flags.mark_flag_as_required("model_dir")

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  with errors.reported_in_one_line("dhe_tf.evaluate"):
    results = evaluator.evaluate_run_dir(
        FLAGS.model_dir, data_dir=FLAGS.data_dir, topk=FLAGS.topk or None,
        batch_size=FLAGS.eval_batch_size, test=FLAGS.test)
  if "validation_mAP" in results:
    print(f"validation mAP = {results['validation_mAP']:.4f}")
  if FLAGS.test:
    print(f"mAP@{results['topk']} = {results['mAP']:.4f}, "
          f"P@H<=2 = {results['P@H<=2']:.4f}, "
          f"R@H<=2 = {results['R@H<=2']:.4f} "
          f"→ {FLAGS.model_dir}/metrics.json, pr_curve.png, retrievals.png")


if __name__ == "__main__":
  app.run(main)
