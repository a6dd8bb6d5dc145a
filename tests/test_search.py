"""Search (dhe_tf.index.searcher, `python -m dhe_tf.search`): build an index of a
run's codes and query it."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import image_samples
from dhe_tf.core import codes as codes_lib
from dhe_tf.runs import config as config_lib
from dhe_tf import index as index_lib
from dhe_tf.evaluation import metrics
from dhe_tf.model import network as model_lib
from dhe_tf.runs import run_dir
from dhe_tf.index import searcher
from dhe_tf.data import datasets
from dhe_tf.core.errors import ConfigError


def _codes(model, images):
  return codes_lib.binarize(model_lib.encoder(model)(
      np.asarray(images, np.float32), training=False))


@pytest.fixture(scope="module")
def part_index(small_run, tmp_path_factory):
  """(index path, codes) of the small run's query part: 100 images, which
  encode in a fraction of the time of the 9,900 of its database part."""
  model_dir, _ = small_run
  path = str(tmp_path_factory.mktemp("index") / "query_part")
  manifest = searcher.build_index(model_dir, path, part="query")
  data = run_dir.load_data(config_lib.TrainConfig(bits=12, protocol="tiny"))
  images, _ = datasets.load_embedded_arrays()
  codes = _codes(small_run[1], images[data.split["query"]])
  assert manifest["count"] == len(codes) == 100
  return path, codes


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
  """A folder of 3 PNG pictures (embedded images 5, 6, 7) and a text file."""
  folder = tmp_path_factory.mktemp("pictures")
  images, _ = datasets.load_embedded_arrays()
  for i in (5, 6, 7):
    tf.io.write_file(str(folder / f"picture{i}.png"),
                     tf.io.encode_png(images[i]))
  (folder / "notes.txt").write_text("not a picture")
  return str(folder), images[5:8]


def test_index_of_a_part_holds_sources_and_labels(part_index):
  path, codes = part_index
  data = run_dir.load_data(config_lib.TrainConfig(bits=12, protocol="tiny"))
  with index_lib.open_index(path) as index:
    np.testing.assert_array_equal(index.packed, codes_lib.pack(codes))
    first = data.split["query"][0]
    assert index.source(0) == f"embedded[{first}]"
    _, class_ids = datasets.load_embedded_arrays()
    assert index.labels_of([0])[0].argmax() == class_ids[first]
    assert index.class_names == datasets.FASHION_MNIST_CLASSES


def test_query_codes_equal_the_evaluation_ranking(part_index):
  path, codes = part_index
  queries = codes[[3, 50, 70]]
  found = searcher.query_index(
      path, codes=["".join(map(str, row)) for row in queries], k=25)
  want_ids, want_distances = metrics.retrieve(queries, codes, 25)
  for result, ids, distances in zip(found["results"], want_ids,
                                    want_distances):
    assert [hit["id"] for hit in result["neighbors"]] == list(ids)
    assert [hit["distance"] for hit in result["neighbors"]] == list(distances)
  within = searcher.query_index(path, codes=[found["results"][0]["query"]],
                              radius=1)
  distances = metrics.hamming_distances(codes_lib.pack(queries[:1]),
                                        codes_lib.pack(codes))[0]
  assert ([hit["id"] for hit in within["results"][0]["neighbors"]] ==
          sorted(np.flatnonzero(distances <= 1),
                 key=lambda i: (distances[i], i)))


def test_query_with_pictures_gives_a_table_and_json(small_run, part_index,
                                                    pictures):
  model_dir, model = small_run
  path, codes = part_index
  folder, images = pictures
  found = searcher.query_index(
      path, model_dir=model_dir, k=4,
      images=[f"{folder}/picture5.png", f"{folder}/picture6.png"])
  want_ids, want_distances = metrics.retrieve(_codes(model, images[:2]),
                                              codes, 4)
  assert json.loads(json.dumps(found)) == found  # What --json writes.
  assert found["k"] == 4 and found["bits"] == 12
  lines = searcher.format_table(found).splitlines()
  assert lines[0].split() == ["query", "rank", "id", "distance", "source",
                              "labels"]
  assert len(lines) == 1 + 2 * 4
  for result_, ids, distances in zip(found["results"], want_ids,
                                     want_distances):
    assert [hit["id"] for hit in result_["neighbors"]] == list(ids)
    assert [hit["distance"] for hit in result_["neighbors"]] == list(
        distances)
  first = found["results"][0]["neighbors"][0]
  assert lines[1].split()[:5] == [f"{folder}/picture5.png", "1",
                                  str(first["id"]), str(first["distance"]),
                                  first["source"]]


def test_index_of_a_folder_finds_its_own_pictures(small_run, pictures,
                                                  tmp_path):
  model_dir, model = small_run
  folder, images = pictures
  path = str(tmp_path / "folder_index")
  with pytest.raises(ConfigError, match=re.escape(
      f"Not an image the model can read: cannot decode image "
      f"{folder}/notes.txt: Unknown image file format")):
    searcher.build_index(model_dir, path,
                       images=[folder, os.path.join(folder, "notes.txt")])
  assert not os.path.exists(path)
  manifest = searcher.build_index(model_dir, path, images=[folder])
  assert manifest["count"] == 3  # The folder's .png files only.
  found = searcher.query_index(path, model_dir=model_dir,
                             images=[os.path.join(folder, "picture6.png")],
                             k=3)
  (result,) = found["results"]
  assert result["neighbors"][0]["source"] == os.path.join(folder,
                                                          "picture6.png")
  assert result["neighbors"][0]["distance"] == 0
  codes = _codes(model, images)
  distances = metrics.hamming_distances(codes_lib.pack(codes[1:2]),
                                        codes_lib.pack(codes))[0]
  assert [hit["distance"] for hit in result["neighbors"]] == sorted(
      distances)


def test_a_folder_of_every_format_is_indexed_and_found(small_run, tmp_path):
  model_dir, _ = small_run
  folder = tmp_path / "formats"
  folder.mkdir()
  paths = sorted(image_samples.write(
      str(folder), image_samples.good_files(seed=4)).values())
  path = str(tmp_path / "index")
  manifest = searcher.build_index(model_dir, path, images=[str(folder)])
  assert manifest["count"] == len(paths) == 15
  found = searcher.query_index(path, model_dir=model_dir, images=paths, k=1)
  for query, result in zip(paths, found["results"]):
    (hit,) = result["neighbors"]
    assert hit["distance"] == 0, query  # Each file finds its own code.
  refused = image_samples.write(str(tmp_path), image_samples.refused_files())
  with pytest.raises(ConfigError, match=re.escape(
      f"Not an image the model can read: cannot use image "
      f"{refused['photo.tiff']}: TIFF is not decoded by TensorFlow: convert "
      "it to JPEG, PNG, GIF, BMP or WebP")):
    searcher.query_index(path, model_dir=model_dir,
                         images=[paths[0], refused["photo.tiff"]])


def test_bad_queries_are_named(part_index, other_small_run, small_run,
                               pictures):
  path, _ = part_index
  folder, _ = pictures
  picture = os.path.join(folder, "picture5.png")
  other_dir, _ = other_small_run
  with pytest.raises(ConfigError, match="was built by another model"):
    searcher.query_index(path, model_dir=other_dir, images=[picture])
  with pytest.raises(ConfigError, match=re.escape(
      "Code '0101' has 4 bits; 12-bit codes are expected.")):
    searcher.query_index(path, codes=["0101"])
  with pytest.raises(ConfigError, match=re.escape(
      "k must be a positive integer. Received: k=-1")):
    searcher.query_index(path, codes=["0" * 12], k=-1)
  with pytest.raises(ConfigError, match=re.escape(
      "k must be a positive integer. Received: k=0")):
    searcher.query_index(path, model_dir=small_run[0], images=[picture], k=0)
  with pytest.raises(ConfigError, match="--images or as --codes"):
    searcher.query_index(path, codes=["0" * 12], images=[picture])


def test_bad_input_is_one_line_with_status_2(part_index):
  # The one real process start of the command: what a user sees.
  path, _ = part_index
  result = subprocess.run(
      [sys.executable, "-m", "dhe_tf.search", "query", f"--index={path}",
       "--codes=0101"], capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "dhe_tf.search: error: Code '0101' has 4 bits; 12-bit codes are "
      "expected.")
  assert "Traceback" not in result.stderr
