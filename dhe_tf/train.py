r"""Trains a hashing model (DHE or a baseline), saves it, reports retrieval mAP.

    python -m dhe_tf.train --bits=32                    # embedded data, ~2 min
    python -m dhe_tf.train --bits=12 --method=csq       # a baseline
    python -m dhe_tf.train --flagfile=flags/cifar10_vgg16_32bits.flags
    tensorboard --logdir runs/

Writes into --model_dir (default: a new directory under runs/): flags.json,
split.npz, logs/ (TensorBoard), model.keras and metrics.json. Rerun with the
same --model_dir and flags to resume an interrupted run. Bad flags, missing
data or weights, and a loss that turns NaN are reported in one line, with
exit status 2.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow loads.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from dhe_tf import methods
from dhe_tf import run_dir
from dhe_tf import training
from dhe_tf.errors import ConfigError
from dhe_tf.errors import DataUnavailableError
from dhe_tf.errors import TrainingDivergedError

_DEFAULTS = training.TrainConfig()

flags.DEFINE_integer("bits", _DEFAULTS.bits, "Code length K: units of the "
                     "hash layer.")
flags.DEFINE_string("dataset", _DEFAULTS.dataset,
                    "Dataset: embedded, fashion_mnist, mnist, cifar10 or "
                    "nuswide_21.")
flags.DEFINE_string("protocol", _DEFAULTS.protocol,
                    "Query/train/database split protocol (1k5k: 100 queries "
                    "and 500 training images per class, database = the rest; "
                    "10k50k for cifar10: official test set as queries, "
                    "training set as database, mAP@1000; 2k10k for "
                    "nuswide_21: the lists of tools/prepare_nuswide.py, "
                    "mAP@5000; tiny: trial runs). Empty: the dataset's "
                    "default (1k5k; 2k10k for nuswide_21).")
flags.DEFINE_integer("split_seed", _DEFAULTS.split_seed,
                     "Seed of the split; fixed so runs are comparable.")
flags.DEFINE_string("data_dir", _DEFAULTS.data_dir,
                    "Directory with the dataset: IDX files for (fashion_)mnist"
                    ", a tensorflow-datasets directory for cifar10, the "
                    "train/test/database.txt lists for nuswide_21.")
flags.DEFINE_string("image_root", _DEFAULTS.image_root,
                    "Directory the image paths of list files are relative "
                    "to (nuswide_21); default: --data_dir.")
flags.DEFINE_string("on_bad_image", _DEFAULTS.on_bad_image,
                    "Unusable list entries or image files: error (stop before "
                    "training, naming them) or skip (drop them, report "
                    "which).")
flags.DEFINE_string("data_cache", "", "Cache of decoded images of image-file "
                    "datasets: empty (none), 'memory' (training images and "
                    "queries), or a directory (every part, reused by later "
                    "runs).")
flags.DEFINE_string("backbone", _DEFAULTS.backbone,
                    "CNN: small_cnn, vgg16 (up to fc7) or resnet50 (pooled).")
flags.DEFINE_string("weights", "none",
                    "Backbone weights: imagenet, none, or a weights file.")
flags.DEFINE_integer("image_size", 0, "Side of the images the pretrained "
                     "backbones see (resized in the graph), and of the crops "
                     "of image-file datasets (nuswide_21); 0 = 224.")
flags.DEFINE_list("fc_units", [], "Sizes of ReLU layers between the backbone "
                  "and the hash layer, e.g. 512,256.")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Training epochs.")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size,
                     "Images per training batch (the loss uses all pairs).")
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Adam step size.")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of weights and shuffling.")
flags.DEFINE_string("method", _DEFAULTS.method,
                    "Hashing method, i.e. the loss on the hash layer: " +
                    "; ".join(f"{name}: {m.summary}"
                              for name, m in methods.METHODS.items()) + ".")
flags.DEFINE_list("method_params", [],
                  "key=value hyper-parameters of a baseline method's loss, "
                  "e.g. quantization_weight=0.05 for dpsh (DHE's have the "
                  "flags below).")
flags.DEFINE_float("hash_loss_warmup_epochs", 0.0,
                   "Epochs over which the weight of the hash loss grows "
                   "linearly from 0 to --hash_loss_weight (0: no warm-up).")
flags.DEFINE_float("hash_loss_weight", None,
                   "Weight of the method's loss on the hash layer; default: "
                   "the method's (1, or 0 for dlbhc).")
flags.DEFINE_float("classification_weight", None,
                   "Weight of the cross-entropy of the classifier on top of "
                   "the hash layer (0: no classification loss); default: the "
                   "method's (1 for dhe and dlbhc, 0 for the others).")
flags.DEFINE_float("margin", _DEFAULTS.margin, "DHE: fraction of the bits "
                   "that dissimilar pairs are pushed apart to.")
flags.DEFINE_float("similar_weight", _DEFAULTS.similar_weight,
                   "DHE: weight of the pull on similar pairs (the push has weight "
                   "--dissimilar_weight).")
flags.DEFINE_float("dissimilar_weight", _DEFAULTS.dissimilar_weight,
                   "DHE: weight of the push on dissimilar pairs.")
flags.DEFINE_float("quantization_weight", _DEFAULTS.quantization_weight,
                   "DHE: weight of the term driving activations to 0 or 1.")
flags.DEFINE_string("distance", _DEFAULTS.distance,
                    "DHE: relaxed Hamming distance of the loss: expected "
                    "(expected number of differing bits) or squared "
                    "(‖u_i − u_j‖², 0 between identical codes).")
flags.DEFINE_integer("topk", 0, "k of mAP@k; 0 = the dataset's default.")
flags.DEFINE_integer("eval_batch_size", _DEFAULTS.eval_batch_size,
                     "Images per batch when encoding queries and database.")
flags.DEFINE_float("validation_fraction", _DEFAULTS.validation_fraction,
                   "Share of the training images held out (never the "
                   "queries) to log validation mAP to TensorBoard; 0 = none.")
flags.DEFINE_integer("validation_every", _DEFAULTS.validation_every,
                     "Log validation mAP every this many epochs (and after "
                     "the last).")
flags.DEFINE_string("jit_compile", _DEFAULTS.jit_compile,
                    "XLA: auto (on GPU only), true or false.")
flags.DEFINE_bool("evaluate_test", _DEFAULTS.evaluate_test,
                  "Score the queries against the database after training. "
                  "Tuning runs turn it off, so hyper-parameters are chosen "
                  "on validation mAP alone and the queries stay unseen.")

# --- Scaling up: precision, fine-tuning a pretrained backbone, distribution
# (README, "Scaling up"). ---
flags.DEFINE_string("mixed_precision", _DEFAULTS.mixed_precision,
                    "Mixed precision: none (float32), auto (mixed_float16 on "
                    "GPUs with tensor cores, else none), mixed_float16 or "
                    "mixed_bfloat16. The hash layer, classifier, losses and "
                    "metrics stay float32.")
flags.DEFINE_float("backbone_lr_multiplier", _DEFAULTS.backbone_lr_multiplier,
                   "The backbone learns at this multiple of --learning_rate "
                   "(the new layers at --learning_rate), e.g. 0.1 when "
                   "fine-tuning ImageNet weights.")
flags.DEFINE_integer("freeze_backbone_epochs",
                     _DEFAULTS.freeze_backbone_epochs,
                     "Warm-up epochs in which only the new layers learn.")
flags.DEFINE_string("lr_schedule", _DEFAULTS.lr_schedule,
                    "Learning rate over training: constant, cosine (to 0 at "
                    "the last step) or step (× --lr_decay_factor after each "
                    "of --lr_decay_epochs).")
flags.DEFINE_integer("warmup_epochs", _DEFAULTS.warmup_epochs,
                     "Epochs of linear learning-rate warm-up before the "
                     "schedule.")
flags.DEFINE_list("lr_decay_epochs", [], "Epochs after which "
                  "--lr_schedule=step decays the learning rate, e.g. 20,25.")
flags.DEFINE_float("lr_decay_factor", _DEFAULTS.lr_decay_factor,
                   "Factor of each decay of --lr_schedule=step.")
flags.DEFINE_float("weight_decay", _DEFAULTS.weight_decay,
                   "Decoupled weight decay λ (AdamW): each step w ← w − λ·η·w "
                   "with the variable's own rate η; not on biases and "
                   "batch-norm parameters. 0 = Adam.")
flags.DEFINE_string("strategy", _DEFAULTS.strategy,
                    "tf.distribute strategy: default (one device), mirrored "
                    "(all GPUs of this machine) or multi_worker (several "
                    "machines, cluster in TF_CONFIG). --batch_size is the "
                    "global batch, split across replicas.")
# --- End of scaling up. ---

flags.DEFINE_string("model_dir", None,
                    "Run directory; default: a new directory under runs/.")

FLAGS = flags.FLAGS


def _parse_units(values, name="fc_units", example="512,256"):
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise ConfigError(f"{name} must be integers, e.g. {example}. "
                      f"Received: {name}={','.join(values)}") from None


def config_from_flags():
  """The TrainConfig the command line asks for."""
  return training.TrainConfig(
      bits=FLAGS.bits, dataset=FLAGS.dataset, protocol=FLAGS.protocol,
      split_seed=FLAGS.split_seed, data_dir=FLAGS.data_dir,
      image_root=FLAGS.image_root, on_bad_image=FLAGS.on_bad_image,
      data_cache=FLAGS.data_cache or None, backbone=FLAGS.backbone,
      weights=FLAGS.weights,
      image_size=FLAGS.image_size or None,
      fc_units=_parse_units(FLAGS.fc_units),
      epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
      learning_rate=FLAGS.learning_rate, seed=FLAGS.seed,
      method=FLAGS.method, method_params=tuple(FLAGS.method_params),
      hash_loss_weight=FLAGS.hash_loss_weight,
      hash_loss_warmup_epochs=FLAGS.hash_loss_warmup_epochs,
      classification_weight=FLAGS.classification_weight,
      margin=FLAGS.margin, similar_weight=FLAGS.similar_weight,
      dissimilar_weight=FLAGS.dissimilar_weight,
      quantization_weight=FLAGS.quantization_weight,
      distance=FLAGS.distance,
      topk=FLAGS.topk or None, eval_batch_size=FLAGS.eval_batch_size,
      validation_fraction=FLAGS.validation_fraction,
      validation_every=FLAGS.validation_every,
      jit_compile=FLAGS.jit_compile, evaluate_test=FLAGS.evaluate_test,
      mixed_precision=FLAGS.mixed_precision,
      backbone_lr_multiplier=FLAGS.backbone_lr_multiplier,
      freeze_backbone_epochs=FLAGS.freeze_backbone_epochs,
      lr_schedule=FLAGS.lr_schedule, warmup_epochs=FLAGS.warmup_epochs,
      lr_decay_epochs=_parse_units(FLAGS.lr_decay_epochs, "lr_decay_epochs",
                                   "20,25"),
      lr_decay_factor=FLAGS.lr_decay_factor,
      weight_decay=FLAGS.weight_decay, strategy=FLAGS.strategy)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  try:
    config = config_from_flags()
    model_dir = FLAGS.model_dir or run_dir.default_path(config.dataset,
                                                        config.bits)
    results = training.train(config, model_dir)
  except (ConfigError, DataUnavailableError, FileNotFoundError,
          TrainingDivergedError) as e:
    print(f"dhe_tf.train: error: {e}", file=sys.stderr)
    sys.exit(2)
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
