"""--dataset=list (dhe_tf.data.list_dataset): the field's list files with any
number of labels, given as three lists or one list split by a protocol."""

import os

import numpy as np
import pytest
from PIL import Image

from dhe_tf.core.errors import ConfigError
from dhe_tf.data import datasets

_CLASSES = ("bird", "cat", "dog")


def _images(root, per_class=12):
  """root/<class>/<i>.png; returns [(path, class id)]."""
  rng = np.random.default_rng(0)
  entries = []
  for c, name in enumerate(_CLASSES):
    os.makedirs(os.path.join(root, name))
    for i in range(per_class):
      pixels = (np.full((18, 14, 3), 70 * c, np.uint8) +
                rng.integers(0, 30, (18, 14, 3)).astype(np.uint8))
      Image.fromarray(pixels).save(os.path.join(root, name, f"{i}.png"))
      entries.append((f"{name}/{i}.png", c))
  return entries


def _write(path, rows):
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(f"{p} {' '.join(map(str, labels))}\n" for p, labels in rows))


def _one_hot(c):
  return [int(i == c) for i in range(len(_CLASSES))]


def _load(data_dir, image_root, **kwargs):
  kwargs = dict(dict(queries_per_class=2, train_per_class=4, image_size=16),
                **kwargs)
  return datasets.load_dataset("list", data_dir=str(data_dir),
                               image_root=str(image_root), **kwargs)


@pytest.fixture(name="collection")
def _collection(tmp_path):
  root = tmp_path / "images"
  entries = _images(str(root))
  lists = tmp_path / "lists"
  os.makedirs(lists)
  _write(lists / "images.txt", [(p, _one_hot(c)) for p, c in entries])
  (lists / "classes.txt").write_text("\n".join(_CLASSES) + "\n")
  return dict(root=root, lists=lists, entries=entries, tmp=tmp_path)


def test_one_list_is_split_per_class_with_the_counts_asked(collection):
  data = _load(collection["lists"], collection["root"])
  assert data.class_names == _CLASSES and not data.multi_label
  assert {p: len(data.split[p]) for p in ("query", "train", "database")} == {
      "query": 6, "train": 12, "database": 30}
  images, labels = next(iter(data.parts["train"].batch(100)))
  assert images.shape == (12, 16, 16, 3)
  classes = [p.split("/")[0] for p in data.split["train"]]
  np.testing.assert_array_equal(np.argmax(labels, 1),
                                [_CLASSES.index(c) for c in classes])
  unseen = _load(collection["lists"], collection["root"], protocol="unseen",
                 seen_classes=("bird", "dog"))
  np.testing.assert_array_equal(unseen.split["seen_classes"], [0, 2])
  assert {p.split("/")[0] for p in unseen.split["database"]} == {"cat"}


def test_three_given_lists_load_as_they_are(collection):
  given = collection["tmp"] / "given"
  os.makedirs(given)
  rows = [(p, _one_hot(c)) for p, c in collection["entries"]]
  _write(given / "test.txt", rows[::6])
  _write(given / "train.txt", [r for i, r in enumerate(rows) if i % 6 == 1])
  _write(given / "database.txt", [r for i, r in enumerate(rows) if i % 6])
  data = _load(given, collection["root"], protocol="lists")
  assert len(data.split["query"]) == 6 and len(data.split["train"]) == 6
  assert data.class_names == ("concept_0", "concept_1", "concept_2")
  with pytest.raises(ConfigError, match="pass --protocol=lists"):
    _load(given, collection["root"])


def test_multi_label_lists_are_split_per_label(collection):
  rows = [(p, [1, 1, 0] if i % 2 and c < 2 else _one_hot(c))
          for i, (p, c) in enumerate(collection["entries"])]
  _write(collection["lists"] / "images.txt", rows)
  data = _load(collection["lists"], collection["root"])
  assert data.multi_label
  assert len(data.split["query"]) == 6 and len(data.split["train"]) == 12
  with pytest.raises(ConfigError, match="multi-label lists cannot"):
    _load(collection["lists"], collection["root"], protocol="unseen")


@pytest.mark.parametrize("line,message", [
    ("bird/0.png 1 0", "expected a path and 3 labels, found 2"),
    ("bird/0.png 1 2 0", "labels must be 0 or 1"),
    ("bird/missing.png 1 0 0", "missing.png"),
])
def test_bad_lines_name_the_list_and_line(collection, line, message):
  with open(collection["lists"] / "images.txt", "a", encoding="utf-8") as f:
    f.write(line + "\n")
  with pytest.raises(ConfigError, match=r"images.txt:37: .*" + message):
    _load(collection["lists"], collection["root"])
  data = _load(collection["lists"], collection["root"], on_bad_image="skip")
  assert len(data.split["skipped"]) == 1


def test_missing_data_is_refused_in_one_line(tmp_path):
  with pytest.raises(ConfigError, match="pass --data_dir=DIR"):
    datasets.load_dataset("list")
  with pytest.raises(ConfigError, match="has neither images.txt"):
    datasets.load_dataset("list", data_dir=str(tmp_path))
