"""Class folders (dhe_tf.data.folders) and the tool that writes them from IDX
files (tools/write_image_folder.py)."""

import functools
import importlib.util
import os

import numpy as np
import pytest

from dhe_tf.core.errors import ConfigError
from dhe_tf.data import folders

_TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "tools", "write_image_folder.py")


@functools.cache
def _tool():
  """The tool as a module (once: its absl flags are defined on import)."""
  spec = importlib.util.spec_from_file_location("write_image_folder", _TOOL)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


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
  counts = _tool().write_image_folder(images, class_ids,
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
  with pytest.raises(FileExistsError):
    _tool().write_image_folder(images, class_ids, ("a", "b", "c"), out)
  assert sorted(os.listdir(tmp_path)) == ["out"]  # No half-written folder.
