r"""Builds NUS-WIDE-21 image lists from the official NUS-WIDE release.

    python tools/prepare_nuswide.py --nuswide_dir=NUS-WIDE \
        --image_root=NUS-WIDE/Flickr --out_dir=data/nuswide_21
    python -m dhe_tf.train --flagfile=flags/nuswide_21_vgg16_32bits.flags \
        --data_dir=data/nuswide_21 --image_root=NUS-WIDE/Flickr

Reads ImageList/Imagelist.txt and Groundtruth/AllLabels/Labels_<concept>.txt
(and ConceptsList/Concepts81.txt when present) from --nuswide_dir, keeps the
21 most frequent concepts and the images carrying one of them, and draws
protocol --protocol with --split_seed: 100 queries and 500 training images
per concept, without repetition (concepts from the rarest; see
dhe_tf.data.splits.split_per_concept); database = all but the queries.
With --image_root, images missing or unreadable there are left out first.

Writes into --out_dir: test.txt (queries), train.txt, database.txt, lines
`actor/0001_2124494179.jpg l0 … l20` (DeepHash-pytorch's format, paths
relative to --image_root), concepts.txt (the label columns' names, most
frequent first) and protocol.json (protocol, seed, counts). Takes one to two
minutes for the full release, most of it checking the 270,000 images (about
4,000 a second on 2 cores, see dhe_tf.data.image_list).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow loads.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from dhe_tf.data import nuswide
from dhe_tf.data import protocols
from dhe_tf.core.errors import ConfigError

_NUSWIDE_DIR = flags.DEFINE_string(
    "nuswide_dir", None, "The unpacked NUS-WIDE release (ImageList/, "
    "Groundtruth/AllLabels/, ConceptsList/).", required=True)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where the lists are written.",
                               required=True)
_IMAGE_ROOT = flags.DEFINE_string(
    "image_root", None, "Folder the image paths are relative to (the "
    "release's Flickr/); if given, images missing there are left out.")
_PROTOCOL = flags.DEFINE_string(
    "protocol", "2k10k",
    f"One of {', '.join(sorted(protocols.NUSWIDE_PROTOCOLS))}: "
    + "; ".join(f"{name}: {p.description}"
                for name, p in sorted(protocols.NUSWIDE_PROTOCOLS.items())))
_SPLIT_SEED = flags.DEFINE_integer("split_seed", 0, "Seed of the draw.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  try:
    summary = nuswide.prepare_lists(
        _NUSWIDE_DIR.value, _OUT_DIR.value, protocol=_PROTOCOL.value,
        split_seed=_SPLIT_SEED.value, image_root=_IMAGE_ROOT.value)
  except (ConfigError, FileNotFoundError) as e:
    print(f"prepare_nuswide: error: {e}", file=sys.stderr)
    sys.exit(2)
  counts = summary["counts"]
  print(f"{summary['release_images']} images in the release, "
        f"{summary['without_concept']} without any of the "
        f"{len(summary['concepts'])} concepts"
        + (f", {summary['unusable_images']} missing or unreadable"
           if "unusable_images" in summary else "")
        + f"; {counts['query']} queries, {counts['train']} training, "
        f"{counts['database']} database → {_OUT_DIR.value}")
  print("concepts:", " ".join(summary["concepts"]))


if __name__ == "__main__":
  app.run(main)
