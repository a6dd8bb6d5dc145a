"""NUS-WIDE-21 lists drawn from a miniature of the official release."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dhe_tf.data import image_list
from dhe_tf.data import nuswide
from dhe_tf.core.errors import ConfigError

_CONCEPTS = [f"k{i:02d}" for i in range(24)]  # 21 kept, 3 rarest dropped.
_TOOL = os.path.join(os.path.dirname(__file__), "..", "tools",
                     "prepare_nuswide.py")


def _write_release(root, num_images=3000, seed=0):
  """ImageList, Concepts81 and Labels_<c>.txt files like the release's.

  Concept k{i} labels an image with probability falling with i; images
  0..9 carry only one of the three rarest concepts, so they are dropped.
  """
  rng = np.random.default_rng(seed)
  labels = rng.random((num_images, len(_CONCEPTS))) < np.linspace(
      0.2, 0.04, len(_CONCEPTS))
  rest = np.arange(10, num_images)
  labels[rest, rest % 21] = True  # At least one of the 21 kept concepts.
  labels[:10] = False
  labels[:10, -1] = True
  folders = ["actor", "zebra"]
  paths = [f"{folders[i % 2]}\\{i:04d}_{1000 + i}.jpg"
           for i in range(num_images)]
  os.makedirs(os.path.join(root, "ImageList"))
  os.makedirs(os.path.join(root, "ConceptsList"))
  os.makedirs(os.path.join(root, "Groundtruth", "AllLabels"))
  with open(os.path.join(root, "ImageList", "Imagelist.txt"), "w") as f:
    f.write("\r\n".join(paths) + "\r\n")
  with open(os.path.join(root, "ConceptsList", "Concepts81.txt"), "w") as f:
    f.write("\n".join(_CONCEPTS) + "\n")
  for c, concept in enumerate(_CONCEPTS):
    with open(os.path.join(root, "Groundtruth", "AllLabels",
                           f"Labels_{concept}.txt"), "w") as f:
      f.write("".join(f"{int(v)}\n" for v in labels[:, c]))
  return labels


@pytest.fixture(scope="module")
def release(tmp_path_factory):
  """(directory, labels) of a 3,000-image release, shared: tests only read."""
  directory = str(tmp_path_factory.mktemp("nuswide") / "release")
  return directory, _write_release(directory)


def test_lists_follow_the_protocol_and_load_as_nuswide_21(release, tmp_path):
  release_dir, labels = release
  out = str(tmp_path / "lists")
  summary = nuswide.prepare_lists(release_dir, out, protocol="tiny",
                                  split_seed=5)
  kept = np.argsort(-labels.sum(0), kind="stable")[:21]
  assert summary["concepts"] == [_CONCEPTS[c] for c in kept]
  assert summary["without_concept"] == 10
  assert summary["counts"]["query"] == 210
  assert summary["counts"]["train"] == 1050
  with open(os.path.join(out, "protocol.json")) as f:
    assert json.load(f)["split_seed"] == 5
  assert image_list.read_protocol(out) == "tiny"
  assert image_list.read_class_names(out, 21) == tuple(summary["concepts"])
  parsed = {}
  for part, file in image_list.LIST_FILES.items():
    parsed[part], bad = image_list.parse_list(os.path.join(out, file),
                                              num_classes=21)
    assert not bad
  assert parsed["query"].paths[0].startswith(("actor/", "zebra/"))
  assert np.all(parsed["query"].labels.sum(0) >= 10)
  assert np.all(parsed["train"].labels.sum(0) >= 50)
  assert not set(parsed["query"].paths) & set(parsed["train"].paths)
  assert not set(parsed["query"].paths) & set(parsed["database"].paths)
  assert len(parsed["database"].paths) == 2990 - 210
  # Row i of the lists carries the release labels of its image.
  index = int(parsed["train"].paths[0].split("/")[1][:4])
  np.testing.assert_array_equal(parsed["train"].labels[0], labels[index, kept])
  again = nuswide.prepare_lists(release_dir, str(tmp_path / "again"),
                                protocol="tiny", split_seed=5)
  assert again == summary
  with open(os.path.join(tmp_path / "again", "test.txt")) as f:
    assert f.read().split()[::22] == list(parsed["query"].paths)


def test_images_missing_under_image_root_are_left_out(release, tmp_path):
  release_dir, _ = release
  out = str(tmp_path / "lists")
  jpeg = tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy()
  flickr = tmp_path / "Flickr"
  for folder in ("actor", "zebra"):
    os.makedirs(flickr / folder)
  for i in range(1500):  # Images 1500 and on are missing; image 20 empty.
    with open(flickr / ("actor", "zebra")[i % 2] / f"{i:04d}_{1000 + i}.jpg",
              "wb") as f:
      f.write(jpeg if i != 20 else b"")
  summary = nuswide.prepare_lists(release_dir, out, protocol="tiny",
                                  image_root=str(flickr))
  # Of the 2,990 images with a concept (10 to 2999), 1,489 are usable.
  assert summary["unusable_images"] == 1500 + 1
  assert summary["counts"]["database"] == 1489 - 210


def test_release_errors_name_the_file_and_line(tmp_path):
  release = str(tmp_path / "release")
  _write_release(release, num_images=50)
  labels_file = os.path.join(release, "Groundtruth", "AllLabels",
                             "Labels_k03.txt")
  with open(labels_file, "w") as f:
    f.write("0\n1\nyes\n" + "0\n" * 47)
  with pytest.raises(ConfigError, match=f"{labels_file}:3: label is 'yes'"):
    nuswide.read_release(release)
  with open(labels_file, "w") as f:
    f.write("0\n" * 49)
  with pytest.raises(ConfigError, match="Labels_k03.txt has 49 lines but .*"
                     "lists 50 images"):
    nuswide.read_release(release)
  with pytest.raises(FileNotFoundError, match="No image list in /nope"):
    nuswide.read_release("/nope")


def test_windows_paths_of_the_release_become_relative():
  assert nuswide.image_path("actor\\0001_2124494179.jpg") == (
      "actor/0001_2124494179.jpg")
  assert nuswide.image_path("C:\\ImageData\\Flickr\\actor\\0001_21.jpg") == (
      "actor/0001_21.jpg")


def test_tool_reports_a_missing_release_in_one_line(tmp_path):
  # The one run of the command: what it draws is tested through
  # nuswide.prepare_lists, the function it calls, above.
  result = subprocess.run(
      [sys.executable, _TOOL, f"--nuswide_dir={tmp_path}/nope",
       f"--out_dir={tmp_path}/lists"],
      capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1] == (
      f"prepare_nuswide: error: No image list in {tmp_path}/nope (looked for "
      "ImageList/Imagelist.txt, ImageList/ImageList.txt, Imagelist.txt): pass "
      "--nuswide_dir pointing to the unpacked NUS-WIDE release.")
  assert not os.path.exists(tmp_path / "lists")
