r"""Scores runs trained on the IDX files on the queries of runs trained on a
class folder of the same images, to tell a pipeline's effect from a split's.

    python tools/cross_split_map.py --runs=tools/results/own_images/runs \
        --idx_dir=/usr/share/datasets/fashion-mnist

tools/results/own_images (the screen of issue 25) trains the same recipe on
the 70,000 Fashion-MNIST images as IDX arrays (`<method>_idx_*`) and as PNG
files in class folders (`<method>_folder_*`, tools/write_image_folder.py: a
file is named by its IDX index). The two datasets draw their 1,000 queries
from different orders, so their test mAPs differ by the draw as well as by
anything the folder pipeline changes. This tool encodes all 70,000 IDX
images with each IDX run's model and scores it on its own split and on the
folder run's split (queries and database mapped to IDX indices by file
name): when an IDX-trained model loses as much on the folder's queries as
the folder-trained model scores below it, the difference is the draw.
Prints one row per (method, seed).
"""

import glob
import os

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from dhe_tf.data import idx_files
from dhe_tf.evaluation import metrics
from dhe_tf.model import inference
from dhe_tf.runs import run_dir

_RUNS = flags.DEFINE_string("runs", "tools/results/own_images/runs",
                            "Directory of <method>_{idx,folder}_<K>bits_s<seed> "
                            "runs.")
_IDX_DIR = flags.DEFINE_string("idx_dir", "/usr/share/datasets/fashion-mnist",
                               "The IDX files both datasets come from.")


def _index(path):
  return int(os.path.splitext(os.path.basename(str(path)))[0])


def _split(run_path, as_indices):
  with np.load(os.path.join(run_path, "split.npz")) as split:
    return {part: (np.array([_index(p) for p in split[part]]) if as_indices
                   else split[part]) for part in ("query", "database")}


def _map(codes, labels, split):
  query, database = split["query"], split["database"]
  return metrics.mean_average_precision(codes[query], labels[query],
                                        codes[database], labels[database])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  images, labels = idx_files.load_idx_directory(_IDX_DIR.value)
  dataset = tf.data.Dataset.from_tensor_slices(
      (images, np.eye(10, dtype=np.float32)[labels]))
  print("| run (IDX-trained) | own split | folder run's split | difference | "
        "the folder run's test mAP |")
  print("|---|---|---|---|---|")
  for idx_path in sorted(glob.glob(os.path.join(_RUNS.value, "*_idx_*"))):
    folder_path = idx_path.replace("_idx_", "_folder_")
    if not os.path.isdir(folder_path):
      continue
    codes = inference.encode(run_dir.load_run(idx_path).model, dataset,
                             batch_size=1024)[0]
    own = _map(codes, labels, _split(idx_path, as_indices=False))
    other = _map(codes, labels, _split(folder_path, as_indices=True))
    folder_map = run_dir.read_json(os.path.join(folder_path,
                                                "metrics.json"))["mAP"]
    print(f"| {os.path.basename(idx_path)} | {own:.4f} | {other:.4f} | "
          f"{other - own:+.4f} | {folder_map:.4f} |")


if __name__ == "__main__":
  app.run(main)
