"""Image lists (NUS-WIDE format), image checks, and the nuswide_21 dataset."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.runs import config as config_lib
from dhe_tf.training import trainer
from dhe_tf.data import datasets
from dhe_tf.data import image_checks
from dhe_tf.data import image_list
from dhe_tf.data import images
from dhe_tf.data import pipeline
from dhe_tf.core.errors import ConfigError

C = datasets.NUSWIDE_21_NUM_CLASSES


def _jpeg(height=20, width=30, seed=0):
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
  return tf.io.encode_jpeg(pixels, quality=90).numpy()


def _line(path, concepts):
  labels = ["1" if c in concepts else "0" for c in range(C)]
  return f"{path} {' '.join(labels)}\n"


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb" if isinstance(data, bytes) else "w") as f:
    f.write(data)


@pytest.fixture
def lists_dir(tmp_path):
  """21-concept lists of 4 queries, 6 training and 12 database images.

  Images are 20 x 30 JPEGs in tmp/images/imgs/; lists in tmp/lists/, the
  paths in them relative to tmp/images. Image k carries concepts k % 21 and
  (k + 1) % 21 when k is even.
  """
  root = tmp_path / "images"
  names = {"query": range(0, 4), "train": range(4, 10),
           "database": range(4, 16)}
  for k in range(16):
    _write(str(root / "imgs" / f"{k:03d}.jpg"), _jpeg(seed=k))
  for part, file in image_list.LIST_FILES.items():
    _write(str(tmp_path / "lists" / file), "".join(
        _line(f"imgs/{k:03d}.jpg", {k % C} | ({(k + 1) % C} if k % 2 == 0
                                              else set()))
        for k in names[part]))
  return str(tmp_path / "lists"), str(root)


def _load(lists, root, **kwargs):
  kwargs.setdefault("image_size", 16)
  kwargs.setdefault("protocol", "2k10k")
  return datasets.load_dataset("nuswide_21", data_dir=lists, image_root=root,
                               **kwargs)


def test_nuswide_parts_shapes_labels_and_split(lists_dir):
  lists, root = lists_dir
  data = _load(lists, root)
  assert data.multi_label and data.num_classes == C and data.topk == 5000
  assert data.image_shape == (16, 16, 3)
  assert data.class_names[0] == "concept_0"
  assert list(data.split["query"]) == [f"imgs/{k:03d}.jpg" for k in range(4)]
  assert sorted(data.split["train"]) == [
      f"imgs/{k:03d}.jpg" for k in range(4, 10)]
  assert len(data.split["database"]) == 12
  assert not set(data.split["query"]) & set(data.split["train"])
  for part in ("query", "train", "database"):
    items = list(data.parts[part])
    assert len(items) == len(data.split[part])
    for (image, label), path in zip(items, data.split[part]):
      assert image.dtype == tf.uint8 and tuple(image.shape) == (16, 16, 3)
      k = int(os.path.basename(path)[:3])
      expected = np.zeros(C, np.float32)
      expected[k % C] = 1
      if k % 2 == 0:
        expected[(k + 1) % C] = 1
      np.testing.assert_array_equal(label.numpy(), expected)


def test_training_order_is_seeded_and_crops_change_every_epoch(lists_dir):
  lists, root = lists_dir
  first, again, other = (_load(lists, root, seed=s) for s in (1, 1, 2))
  np.testing.assert_array_equal(first.split["train"], again.split["train"])
  assert not np.array_equal(first.split["train"], other.split["train"])
  epoch = lambda data: np.stack([x.numpy() for x, _ in data.parts["train"]])
  np.testing.assert_array_equal(epoch(first), epoch(again))
  assert not np.array_equal(epoch(first), epoch(first))  # New crops/flips.
  query = lambda data: np.stack([x.numpy() for x, _ in data.parts["query"]])
  np.testing.assert_array_equal(query(first), query(first))  # Center crop.


def test_center_crop_of_resized_image():
  image = tf.constant(np.arange(20 * 30 * 3, dtype=np.int64).reshape(
      20, 30, 3) % 256, tf.uint8)
  resized = images.resize_shorter_side(image, 18)
  assert tuple(resized.shape) == (18, 27, 3)
  crop = images.center_crop(resized, 16)
  np.testing.assert_array_equal(crop.numpy(), resized.numpy()[1:17, 5:21])
  assert images.resize_side(224) == 256


@pytest.mark.parametrize("encode, size", [
    (tf.io.encode_jpeg, 16), (tf.io.encode_png, 16), (tf.io.encode_jpeg, 40)])
def test_cropping_first_matches_resizing_then_cropping(encode, size):
  rows, cols = np.mgrid[0:60, 0:90]
  smooth = np.stack([rows * 4, cols * 2, (rows + cols) * 1.5], -1)
  contents = encode(tf.constant(smooth, tf.uint8))
  fast = images.decode_crop_resize(contents, tf.constant([0.5, 0.5]), size)
  reference = images.center_crop(
      images.resize_shorter_side(images.decode(contents),
                                 images.resize_side(size)), size)
  assert fast.dtype == tf.uint8 and tuple(fast.shape) == (size, size, 3)
  difference = np.abs(fast.numpy().astype(int) - reference.numpy())
  assert difference.mean() < 3, difference.mean()
  window = images.crop_window(tf.constant([60, 90]), tf.constant([1.0, 0.0]))
  np.testing.assert_array_equal(window, [60 - 52, 0, 52, 52])


def test_concepts_file_names_the_classes(lists_dir):
  lists, root = lists_dir
  _write(os.path.join(lists, "concepts.txt"),
         "".join(f"c{i}\n" for i in range(C)))
  assert _load(lists, root).class_names[:2] == ("c0", "c1")


def test_memory_and_directory_caches_give_the_same_images(lists_dir, tmp_path):
  lists, root = lists_dir
  database = lambda data: np.stack(
      [x.numpy() for x, _ in data.parts["database"]])
  expected = database(_load(lists, root))
  cache_dir = str(tmp_path / "cache")
  for cache in ("memory", cache_dir):
    cached = _load(lists, root, cache=cache)
    for _ in range(2):  # Fills the cache, then reads it.
      np.testing.assert_array_equal(database(cached), expected)
      assert len(list(cached.parts["train"])) == 6
  assert any(name.startswith("nuswide_21_database_16px_")
             for name in os.listdir(cache_dir))


def test_parse_list_names_each_bad_line(tmp_path):
  path = str(tmp_path / "train.txt")
  _write(path, "".join([
      _line("a.jpg", {0}),                            # 1: good
      "b.jpg " + " ".join(["0"] * (C - 1)) + " 1 0\n",  # 2: 22 labels
      "\n",                                           # 3: blank, ignored
      _line("c.jpg", {1}).replace(" 1", " 2", 1),     # 4: label '2'
      _line("d.jpg", set()),                          # 5: no label
      _line("e.jpg", {3, 4}),                         # 6: good
  ]))
  good, bad = image_list.parse_list(path, num_classes=C)
  assert list(good.paths) == ["a.jpg", "e.jpg"] and list(good.lines) == [1, 6]
  assert good.labels.shape == (2, C) and good.labels[1].sum() == 2
  assert [entry.line for entry in bad] == [2, 4, 5]
  assert f"{path}:2: expected a path and 21 labels, found 22" in str(bad[0])
  assert "label 1 is '2'; labels must be 0 or 1" in str(bad[1])
  assert "d.jpg has no label (all 21 are 0)" in str(bad[2])


def test_empty_list_is_an_error(tmp_path):
  path = str(tmp_path / "test.txt")
  _write(path, "\n\n")
  with pytest.raises(ConfigError, match=f"Image list {path} is empty"):
    image_list.parse_list(path, num_classes=C)


def test_image_problems_are_found_cheaply_and_named(tmp_path):
  good = _jpeg()
  # 80 KB of metadata (two APP1 segments) before the frame header, past the
  # 64 KiB whose header is read first: the file is decoded whole, and fine.
  metadata = 2 * (b"\xff\xe1" + (40_002).to_bytes(2, "big") + bytes(40_000))
  cases = {
      "good.jpg": good,
      "metadata.jpg": good[:2] + metadata + good[2:],
      "trailing.jpg": good + b"\x00" * 7,  # Bytes after the end marker: fine.
      "truncated.jpg": good[:len(good) // 2],
      "header.jpg": good[:40],
      "random.jpg": bytes(range(200)),
      "empty.jpg": b"",
      "image.png": tf.io.encode_png(np.zeros((8, 9, 3), np.uint8)).numpy(),
  }
  for name, data in cases.items():
    _write(str(tmp_path / name), data)
  problem = lambda name: image_checks.image_problem(str(tmp_path / name))
  assert problem("good.jpg") is None and problem("trailing.jpg") is None
  assert problem("metadata.jpg") is None
  assert problem("image.png") is None
  assert "cannot decode image" in problem("truncated.jpg")
  assert "JPEG header" in problem("header.jpg")
  assert "Unknown image file format" in problem("random.jpg")
  assert problem("empty.jpg").startswith("image file is empty")
  assert problem("missing.jpg") == f"image not found: {tmp_path}/missing.jpg"


def _break_lists(lists, root):
  """Adds a missing image, a corrupt JPEG and a bad label line to train.txt."""
  _write(os.path.join(root, "imgs", "corrupt.jpg"), _jpeg()[:300])
  with open(os.path.join(lists, "train.txt"), "a") as f:
    f.write(_line("imgs/missing.jpg", {0}))   # line 7
    f.write(_line("imgs/corrupt.jpg", {0}))   # line 8
    f.write("imgs/000.jpg 1 0\n")             # line 9


def test_bad_entries_stop_before_training_naming_file_and_line(lists_dir):
  lists, root = lists_dir
  _break_lists(lists, root)
  train_list = os.path.join(lists, "train.txt")
  with pytest.raises(image_list.BadEntriesError) as error:
    _load(lists, root)
  message = str(error.value)
  assert message.startswith("3 bad entries in the image lists: ")
  assert f"{train_list}:7: image not found: {root}/imgs/missing.jpg" in message
  assert f"{train_list}:8: " in message and "corrupt.jpg" in message
  assert f"{train_list}:9: expected a path and 21 labels, found 2" in message
  assert "--on_bad_image=skip" in message and "\n" not in message


def test_skip_drops_bad_entries_and_records_which(lists_dir):
  lists, root = lists_dir
  _break_lists(lists, root)
  data = _load(lists, root, on_bad_image="skip")
  assert len(data.split["train"]) == 6
  assert len(list(data.parts["train"])) == 6
  skipped = list(data.split["skipped"])
  assert [s.split(": ")[0].rsplit(":", 1)[1] for s in skipped] == [
      "7", "8", "9"]


def test_unknown_policy_and_protocol_are_named(lists_dir):
  lists, root = lists_dir
  with pytest.raises(ConfigError, match="Unknown on_bad_image 'ignore'. "
                     "Available: error, skip"):
    _load(lists, root, on_bad_image="ignore")
  with pytest.raises(ConfigError, match="Unknown protocol '1k5k' for dataset "
                     "'nuswide_21'. Available: 2k10k, tiny"):
    datasets.load_dataset("nuswide_21", protocol="1k5k", data_dir=lists)


def test_lists_drawn_for_another_protocol_are_refused(lists_dir):
  lists, root = lists_dir
  _write(os.path.join(lists, "protocol.json"), json.dumps({"protocol": "tiny"}))
  with pytest.raises(ConfigError, match="drawn for protocol 'tiny'.*"
                     "pass --protocol=tiny"):
    _load(lists, root)
  assert _load(lists, root, protocol="tiny").topk == 500


def test_query_also_in_training_is_refused(lists_dir):
  lists, root = lists_dir
  with open(os.path.join(lists, "train.txt"), "a") as f:
    f.write(_line("imgs/001.jpg", {1}))
  with pytest.raises(ConfigError, match="1 images are both queries .* e.g. "
                     "imgs/001.jpg: queries must be held out"):
    _load(lists, root)


def test_missing_inputs_are_named(lists_dir, tmp_path):
  lists, root = lists_dir
  with pytest.raises(ConfigError, match="pass --data_dir=DIR"):
    datasets.load_dataset("nuswide_21", protocol="2k10k")
  with pytest.raises(FileNotFoundError, match="Image root not found: /nope"):
    _load(lists, "/nope")
  os.remove(os.path.join(lists, "database.txt"))
  with pytest.raises(FileNotFoundError, match="Image list not found: .*"
                     "database.txt"):
    _load(lists, root)
  with pytest.raises(ConfigError, match="image_root applies to image-list"):
    datasets.load_dataset("embedded", image_root=root)


def test_shuffle_buffer_is_capped_by_memory():
  spec = lambda shape: (tf.TensorSpec(shape, tf.uint8),)
  assert pipeline.shuffle_buffer_size(spec((28, 28, 1))) == 10_000
  assert pipeline.shuffle_buffer_size(spec((224, 224, 3))) == 3566


def _config(lists, root, **kwargs):
  return config_lib.TrainConfig(
      dataset="nuswide_21", protocol="2k10k", data_dir=lists, image_root=root,
      image_size=16, bits=8, epochs=1, batch_size=3, jit_compile="false",
      validation_fraction=0.4, **kwargs)


def test_trains_on_image_lists_and_records_paths(lists_dir, tmp_path):
  lists, root = lists_dir
  _break_lists(lists, root)
  model_dir = str(tmp_path / "run")
  results = trainer.train(_config(lists, root, on_bad_image="skip"),
                          model_dir, verbose=0)
  assert (results["num_queries"], results["num_database"]) == (4, 12)
  assert results["topk"] == 5000
  with np.load(os.path.join(model_dir, "split.npz")) as split:
    assert list(split["query"]) == [f"imgs/{k:03d}.jpg" for k in range(4)]
    assert len(split["skipped"]) == 3


def test_trainer_stops_on_bad_entries_before_writing(lists_dir, tmp_path):
  # A ConfigError: `python -m dhe_tf.train` prints it as its one-line error
  # with exit status 2 (tests/test_train.py runs that command).
  lists, root = lists_dir
  _break_lists(lists, root)
  model_dir = str(tmp_path / "run")
  with pytest.raises(ConfigError) as error:
    trainer.train(_config(lists, root), model_dir, verbose=0)
  assert isinstance(error.value, image_list.BadEntriesError)
  assert str(error.value).startswith("3 bad entries in the image lists: ")
  assert "train.txt:7: image not found" in str(error.value)
  assert not os.path.exists(model_dir)
