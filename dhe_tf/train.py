r"""Trains a hashing model (DHE or a baseline), saves it, reports retrieval mAP.

    python -m dhe_tf.train --bits=32                    # embedded data, ~2 min
    python -m dhe_tf.train --bits=12 --method=csq       # a baseline
    python -m dhe_tf.train --method_params=margin=0.5   # a loss setting
    python -m dhe_tf.train --flagfile=flags/cifar10_vgg16_32bits.flags
    tensorboard --logdir runs/

Writes into --model_dir (default: a new directory under runs/): flags.json,
split.npz, logs/ (TensorBoard), model.keras and metrics.json. Rerun with the
same --model_dir and flags to resume an interrupted run. Bad flags, missing
data or weights, and a loss that turns NaN are reported in one line, with
exit status 2. The flags are the fields of dhe_tf.runs.config.TrainConfig
(`--helpfull` lists them); the library function is dhe_tf.training.trainer.train.
"""

from absl import app
from absl import flags

from dhe_tf.runs import config as config_lib
from dhe_tf.core import errors
from dhe_tf.runs import run_dir
from dhe_tf.training import trainer

config_lib.define_flags()  # One flag per dhe_tf.runs.config.TrainConfig field.
flags.DEFINE_string("model_dir", None,
                    "Run directory; default: a new directory under runs/.")

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  with errors.reported_in_one_line("dhe_tf.train"):
    config = config_lib.from_flags()
    model_dir = FLAGS.model_dir or run_dir.default_path(config.dataset,
                                                        config.bits)
    results = trainer.train(config, model_dir)
  if results is None:  # A worker of a multi-worker run; the chief reports.
    print("dhe_tf.train: worker done; the chief writes the run.")
    return
  if "mAP" not in results:  # --evaluate_test=false: validation only.
    print(f"validation mAP = {results['validation_mAP']:.4f} "
          f"({results['bits']} bits, {results['dataset']}; queries not "
          f"scored) → {model_dir}")
    return
  print(f"mAP@{results['topk']} = {results['mAP']:.4f} "
        f"({results['bits']} bits, {results['dataset']}, "
        f"{results['num_queries']} queries × {results['num_database']} "
        f"database) → {model_dir}")


if __name__ == "__main__":
  app.run(main)
