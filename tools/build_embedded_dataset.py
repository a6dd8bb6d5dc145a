"""Builds the embedded Fashion-MNIST sample that ships inside dhe_tf.

    apt-get install dataset-fashion-mnist
    python tools/build_embedded_dataset.py

Draws 1,000 images of each of the 10 classes (seed 0) from the 70,000 images
of Debian's `dataset-fashion-mnist` (IDX files) and writes them, compressed, to
dhe_tf/data/fashion_mnist_1k.npz (about 4.4 MB): uint8 images [10000, 28, 28, 1]
and uint8 labels [10000], in the order of the original files.
"""

import os

from absl import app
from absl import flags
import numpy as np

from dhe_tf.data import datasets
from dhe_tf.data import idx_files

_SOURCE = flags.DEFINE_string(
    "source", "/usr/share/datasets/fashion-mnist",
    "Directory with the Fashion-MNIST IDX files.")
_PER_CLASS = flags.DEFINE_integer("per_class", 1000, "Images of each class.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the draw.")
_OUTPUT = flags.DEFINE_string("output", datasets.EMBEDDED_PATH,
                              "Where to write the .npz file.")


def sample_per_class(class_ids, per_class, seed):
  """Returns sorted indices of `per_class` images drawn from each class."""
  rng = np.random.default_rng(seed)
  drawn = [rng.choice(np.flatnonzero(class_ids == c), per_class, replace=False)
           for c in np.unique(class_ids)]
  return np.sort(np.concatenate(drawn))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  images, class_ids = idx_files.load_idx_directory(_SOURCE.value)
  chosen = sample_per_class(class_ids, _PER_CLASS.value, _SEED.value)
  tmp = _OUTPUT.value + ".tmp.npz"
  np.savez_compressed(tmp, images=images[chosen],
                      labels=class_ids[chosen].astype(np.uint8))
  os.replace(tmp, _OUTPUT.value)
  print(f"Wrote {len(chosen)} images to {_OUTPUT.value} "
        f"({os.path.getsize(_OUTPUT.value) / 1e6:.1f} MB).")


if __name__ == "__main__":
  app.run(main)
