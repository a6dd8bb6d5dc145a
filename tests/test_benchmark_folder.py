"""tools/benchmark_folder.py on a class folder of 24 images that
tools/write_image_folder.py writes from a tiny synthetic IDX directory, one
pixel and one label of which are then changed: the tool finds the other
images equal, names the two changed, and prints every table."""

import gzip
import os
import subprocess
import sys

import numpy as np

_TOOLS = os.path.join(os.path.dirname(__file__), os.pardir, "tools")
# Fashion-MNIST's class names, as write_image_folder names their folders.
_FOLDERS = ("t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal",
            "shirt", "sneaker", "bag", "ankle boot")


def _write_idx(path, array):
  """An unsigned-byte IDX file, gzip-compressed (dhe_tf.data.idx_files)."""
  header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
      size.to_bytes(4, "big") for size in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _write_idx_directory(directory, images, labels, train=16):
  """images uint8 [N, 28, 28] and labels [N] as train and t10k IDX files."""
  os.makedirs(directory, exist_ok=True)
  for part, rows in (("train", slice(0, train)), ("t10k", slice(train, None))):
    _write_idx(os.path.join(directory, f"{part}-images-idx3-ubyte.gz"),
               images[rows])
    _write_idx(os.path.join(directory, f"{part}-labels-idx1-ubyte.gz"),
               labels[rows])


def _run(tool, *args):
  # Subprocesses, also for write_image_folder: its flags (--data_dir, ...)
  # would clash with those of dhe_tf modules other tests import.
  result = subprocess.run([sys.executable, os.path.join(_TOOLS, tool), *args],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def test_finds_the_changed_image_and_label_and_prints_every_table(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (24, 28, 28), dtype=np.uint8)
  labels = np.arange(24) % len(_FOLDERS)
  idx_dir, folder = tmp_path / "idx", tmp_path / "folder"
  _write_idx_directory(idx_dir, images, labels)
  _run("write_image_folder.py", f"--data_dir={idx_dir}",
       f"--out_dir={folder}")
  images[3, 0, 0] += 1  # uint8: wraps at 255, a difference of 1 or 255.
  labels[5] = (labels[5] + 1) % len(_FOLDERS)
  _write_idx_directory(idx_dir, images, labels)
  output = tmp_path / "results" / "results.md"

  stdout = _run("benchmark_folder.py", f"--folder={folder}",
                f"--idx_dir={idx_dir}", "--limit=20", "--rounds=1",
                "--batch_size=8", "--profile_limit=20", f"--output={output}")

  assert stdout.count("| 19 of 20 equal |") == 2  # Pixels, class folders.
  assert "- image 3: 1 pixels differ" in stdout
  assert (f"- image 5: in '{_FOLDERS[5]}', IDX label '{_FOLDERS[6]}'"
          in stdout)
  assert "files/s, 0 problems |" in stdout
  for row in ("| plain tf.data", "| dhe_tf fitted_parts", "| dhe_tf as the "
              "trainer", "| reader map: images.decode + fit_square"):
    assert row in stdout
  assert output.read_text(encoding="utf-8").strip() in stdout
