"""Class folders (dhe_tf.data.folders) and the tool that writes them from IDX
files (tools/write_image_folder.py)."""

import os

import numpy as np
import pytest

from dhe_tf.core.errors import ConfigError
from dhe_tf.data import folders

def _touch(path, data=b"x"):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


def test_classes_are_the_sorted_folders_and_non_images_are_counted(tmp_path):
  for path in ("b/1.png", "b/sub/2.JPG", "a/3.webp", "a/4.gif", "a/5.bmp",
               "a/notes.txt", "a/.DS_Store", "b/.hidden/6.png", "README",
               "a/frühling.jpeg"):
    _touch(str(tmp_path / path))
  found = folders.scan(str(tmp_path))
  assert found.class_names == ("a", "b")
  assert list(found.paths) == ["a/3.webp", "a/4.gif", "a/5.bmp",
                               "a/frühling.jpeg", "b/1.png", "b/sub/2.JPG"]
  np.testing.assert_array_equal(found.class_ids, [0, 0, 0, 0, 1, 1])
  assert found.ignored == {"not an image (.txt)": 1, "hidden file": 1,
                           "hidden folder": 1,
                           "file beside the class folders": 1}


@pytest.mark.parametrize("layout,message", [
    ((), "has no class folder"),
    (("only/1.png",), "has only the class folder 'only'"),
    (("a/1.png", "b/notes.txt"), r"class folder .*b has no image"),
])
def test_unusable_folders_are_refused_in_one_line(tmp_path, layout, message):
  for path in layout:
    _touch(str(tmp_path / path))
  with pytest.raises(ConfigError, match=message):
    folders.scan(str(tmp_path))


def test_missing_data_dir_and_symlink_loop_are_refused(tmp_path):
  with pytest.raises(ConfigError, match="pass --data_dir"):
    folders.scan("")
  with pytest.raises(ConfigError, match="is not a directory"):
    folders.scan(str(tmp_path / "missing"))
  _touch(str(tmp_path / "a" / "1.png"))
  _touch(str(tmp_path / "b" / "1.png"))
  os.symlink(str(tmp_path / "b"), str(tmp_path / "b" / "loop"))
  with pytest.raises(ConfigError, match="symbolic link that loops"):
    folders.scan(str(tmp_path))


def test_written_folder_holds_the_idx_pixels_under_their_indices(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (7, 5, 4, 1), dtype=np.uint8)
  class_ids = np.array([2, 0, 2, 1, 0, 0, 1])
  out = str(tmp_path / "out")
  counts = folders.write(images, class_ids,
                                      ("t-shirt/top", "bag", "coat"), out)
  assert counts == {"t-shirt_top": 3, "bag": 2, "coat": 2}
  found = folders.scan(out)
  assert found.class_names == ("bag", "coat", "t-shirt_top")
  for path, class_id in zip(found.paths, found.class_ids):
    index = int(os.path.splitext(os.path.basename(path))[0])
    pixels = tf.io.decode_png(tf.io.read_file(os.path.join(out, path)))
    np.testing.assert_array_equal(pixels.numpy(), images[index])
    assert found.class_names[class_id] == {0: "t-shirt_top", 1: "bag",
                                           2: "coat"}[class_ids[index]]
  with pytest.raises(ConfigError, match="exists: pass a new --out_dir"):
    folders.write(images, class_ids, ("a", "b", "c"), out)
  assert sorted(os.listdir(tmp_path)) == ["out"]  # No half-written folder.


def _photos(root, classes=("cat", "dog", "bird"), per_class=12, size=(20, 16)):
  """Class folders of small RGB pictures in every format, one shade a class."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  formats = ("png", "jpg", "bmp", "gif", "webp")
  for c, name in enumerate(classes):
    os.makedirs(os.path.join(root, name))
    for i in range(per_class):
      pixels = (np.full(size + (3,), 60 * c, np.uint8) +
                rng.integers(0, 30, size + (3,)).astype(np.uint8))
      Image.fromarray(pixels).save(
          os.path.join(root, name, f"{i}.{formats[i % len(formats)]}"))
  return root


def _load(root, **kwargs):
  from dhe_tf.data import datasets  # pylint: disable=g-import-not-at-top
  kwargs = dict(dict(queries_per_class=2, train_per_class=4, image_size=16),
                **kwargs)
  return datasets.load_dataset("folder", data_dir=str(root), **kwargs)


def test_folder_dataset_splits_each_class_by_the_counts_asked(tmp_path):
  data = _load(_photos(str(tmp_path / "photos")), color_mode="grayscale")
  assert data.class_names == ("bird", "cat", "dog")
  assert data.image_shape == (16, 16, 1)
  assert {part: len(data.split[part]) for part in
          ("query", "train", "database")} == {"query": 6, "train": 12,
                                               "database": 30}
  assert not set(data.split["query"]) & set(data.split["database"])
  images, labels = next(iter(data.parts["train"].batch(100)))
  assert images.shape == (12, 16, 16, 1) and labels.shape == (12, 3)
  # The i-th training image is split["train"][i], in a seeded order.
  first = [str(p) for p in data.split["train"]]
  assert first == [str(p) for p in _load(str(tmp_path / "photos"),
                                         color_mode="grayscale"
                                         ).split["train"]]
  assert first != sorted(first)
  classes = [p.split("/")[0] for p in first]
  np.testing.assert_array_equal(
      np.argmax(labels, 1), [data.class_names.index(c) for c in classes])


def test_folder_unseen_takes_seen_classes_by_name(tmp_path):
  data = _load(_photos(str(tmp_path / "photos")), protocol="unseen",
               seen_classes=("dog", "cat"))
  np.testing.assert_array_equal(data.split["seen_classes"], [1, 2])
  assert {p.split("/")[0] for p in data.split["train"]} == {"cat", "dog"}
  assert {p.split("/")[0] for p in data.split["database"]} == {"bird"}
  with pytest.raises(ConfigError, match="Unknown class 'cow' in seen_classes."
                     " Available: bird, cat, dog"):
    _load(str(tmp_path / "photos"), protocol="unseen", seen_classes=("cow",))


def test_a_class_too_small_for_the_counts_is_named(tmp_path):
  with pytest.raises(ConfigError, match=r"Class 'bird' has 12 images but the "
                     r"split needs 14 \(5 queries \+ 9 training\)"):
    _load(_photos(str(tmp_path / "photos")), queries_per_class=5,
          train_per_class=9)


def test_bad_files_are_named_or_skipped(tmp_path):
  root = _photos(str(tmp_path / "photos"))
  with open(os.path.join(root, "cat", "0.png"), "rb") as f:
    head = f.read(40)
  _touch(os.path.join(root, "cat", "truncated.png"), head)
  _touch(os.path.join(root, "dog", "empty.jpg"), b"")
  _touch(os.path.join(root, "dog", "text.png"), b"not an image at all")
  with pytest.raises(ConfigError, match=r"3 unusable image files in .*"
                     r"cat/truncated.png.*--on_bad_image=skip"):
    _load(root)
  data = _load(root, on_bad_image="skip")
  assert len(data.split["skipped"]) == 3
  assert all(("truncated.png" in s) or ("empty.jpg" in s) or ("text.png" in s)
             for s in data.split["skipped"])
  assert len(data.split["database"]) == 30


def test_train_on_a_folder_then_every_reader_sees_the_same_images(tmp_path):
  from dhe_tf.runs import config as config_lib  # pylint: disable=g-import-not-at-top
  from dhe_tf.runs import run_dir  # pylint: disable=g-import-not-at-top
  from dhe_tf.training import trainer  # pylint: disable=g-import-not-at-top
  root = _photos(str(tmp_path / "photos"))
  config = config_lib.TrainConfig(
      dataset="folder", data_dir=root, queries_per_class=2, train_per_class=6,
      image_size=16, bits=8, epochs=1, batch_size=4,
      validation_fraction=0.2, eval_batch_size=16)
  metrics = trainer.train(config, str(tmp_path / "run"), verbose=0)
  assert metrics["dataset"] == "folder" and 0 < metrics["mAP"] <= 1
  run = run_dir.load_run(str(tmp_path / "run"))
  assert not run.center_crop  # Fitted whole, in the export and service too.
  assert len(run.data().split["database"]) == 30  # Checked vs split.npz.


def test_cli_refuses_bad_data_in_one_line_and_writes_nothing(tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = _photos(str(tmp_path / "photos"), per_class=3)
  run = str(tmp_path / "run")
  result = subprocess.run(
      [sys.executable, "-m", "dhe_tf.train", "--dataset=folder",
       f"--data_dir={root}", "--image_size=16", f"--model_dir={run}"],
      capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "dhe_tf.train: error: Class 'bird' has 3 images but the split needs 600 "
      "(100 queries + 500 training).")
  assert not os.path.exists(run)
