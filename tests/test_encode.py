"""Encoding with Apache Beam (dhe_tf.encoding.pipeline, `python -m
dhe_tf.encode`) on the DirectRunner, and indexes of its code shards
(`python -m dhe_tf.search build --from_codes`)."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

pytest.importorskip("apache_beam")

# pylint: disable=g-import-not-at-top,wrong-import-position
import image_samples
from dhe_tf.data import folders
from dhe_tf.encoding import shards as code_shards
from dhe_tf.encoding import pipeline as encoding_pipeline
from dhe_tf.saved_model import exporter
from dhe_tf import index as index_lib
from dhe_tf.model import inference
from dhe_tf.index import searcher
from dhe_tf.data import datasets
from dhe_tf.core.errors import ConfigError

NUM_IMAGES = 240
# Lines of the list that name bad images: a TIFF, a truncated PNG, a missing
# file, an animated WebP.
TIFF, CORRUPT, MISSING, ANIMATED = 30, 80, 170, 200
BAD = {TIFF: "scan.tif", CORRUPT: "corrupt.png", MISSING: "missing.png",
       ANIMATED: "animated.webp"}
# The good images' formats, by i % 10: JPEG (RGB and CMYK), GIF, BMP, WebP
# and PNG.
FORMATS = {0: ("jpg", None), 5: ("jpg", "CMYK"), 1: ("gif", None),
           3: ("bmp", None), 7: ("webp", None)}


@pytest.fixture(scope="module")
def export(small_run, tmp_path_factory):
  """(version directory, model_dir, model) of the small run's export."""
  model_dir, model = small_run
  path = exporter.export_saved_model(
      model, str(tmp_path_factory.mktemp("encode_export")))
  return path, model_dir, model


@pytest.fixture(scope="module")
def image_list(tmp_path_factory):
  """An image list of NUM_IMAGES + 4 lines: files of the embedded images in
  every format (FORMATS) with one-hot labels, and at the lines of BAD
  (0-based) a TIFF, a truncated PNG, a missing file and an animated WebP.
  Returns (list path, the good images' paths, their ids, their labels)."""
  folder = tmp_path_factory.mktemp("encode_images")
  images, class_ids = datasets.load_embedded_arrays()
  lines, good, ids, labels = [], [], [], []
  for i in range(NUM_IMAGES):
    if len(lines) in BAD:
      lines.append(f"{BAD[len(lines)]} " + " ".join(["0"] * 9 + ["1"]))
    extension, mode = FORMATS.get(i % 10, ("png", None))
    name = f"im{i:04d}.{extension}"
    image = Image.fromarray(images[i][..., 0])
    image.convert(mode or image.mode).save(folder / name)
    one_hot = np.eye(10, dtype=np.uint8)[class_ids[i]]
    ids.append(len(lines))
    lines.append(f"{name} " + " ".join(map(str, one_hot)))
    good.append(str(folder / name))
    labels.append(one_hot)
  png = tf.io.encode_png(images[0]).numpy()
  (folder / "corrupt.png").write_bytes(png[:len(png) // 2])
  refused = image_samples.refused_files()
  (folder / "scan.tif").write_bytes(refused["photo.tiff"][0])
  (folder / "animated.webp").write_bytes(refused["animated.webp"][0])
  (folder / "list.txt").write_text("\n".join(lines) + "\n")
  return str(folder / "list.txt"), good, np.array(ids), np.array(labels)


@pytest.fixture(scope="module")
def encoded(export, image_list, tmp_path_factory):
  """(codes directory, manifest) of one DirectRunner run over the list."""
  path, _, _ = export
  output = str(tmp_path_factory.mktemp("encoded") / "codes")
  manifest = encoding_pipeline.encode(path, image_list[0], output,
                                      batch_size=64, num_shards=3)
  return output, manifest


def test_codes_equal_the_codes_of_search_build(export, image_list, encoded,
                                               tmp_path):
  _, model_dir, model = export
  _, good, want_ids, want_labels = image_list
  output, manifest = encoded
  manifest_read, ids, sources, packed, labels = code_shards.read_codes(
      output)
  assert manifest_read == manifest
  assert manifest["count"] == NUM_IMAGES and manifest["rejects"] == 4
  assert manifest["bits"] == 12 and len(manifest["shards"]) == 3
  assert manifest["fingerprint"] == inference.model_fingerprint(model)
  assert sum(shard["rows"] for shard in manifest["shards"]) == NUM_IMAGES
  assert manifest["metrics"]["images_encoded"] == NUM_IMAGES
  assert manifest["metrics"]["images_rejected"] == 4
  np.testing.assert_array_equal(ids, want_ids)
  assert list(sources) == good
  np.testing.assert_array_equal(labels, want_labels)
  index = str(tmp_path / "from_images")
  searcher.build_index(model_dir, index, images=good)
  with index_lib.open_index(index) as built:
    np.testing.assert_array_equal(packed, built.packed)
    assert len(set(map(bytes, packed))) > 20  # The codes differ.


def test_rejects_are_listed_with_their_reasons(image_list, encoded):
  list_path, _, _, _ = image_list
  folder = os.path.dirname(list_path)
  rejects = code_shards.read_rejects(encoded[0])
  assert [row["id"] for row in rejects] == sorted(BAD)
  assert [row["source"] for row in rejects] == [
      os.path.join(folder, BAD[line]) for line in sorted(BAD)]
  tiff, corrupt, missing, animated = (row["reason"] for row in rejects)
  # Refused from their headers, with the line of dhe_tf.search and training.
  assert tiff == (f"cannot use image {folder}/scan.tif: TIFF is not decoded "
                  "by TensorFlow: convert it to JPEG, PNG, GIF, BMP or WebP")
  assert animated.startswith(f"cannot use image {folder}/animated.webp: An "
                             "animated WebP is not decoded by TensorFlow")
  assert corrupt.startswith("cannot decode image: "), corrupt  # Decoding.
  assert missing.startswith(
      f"cannot read {os.path.join(folder, 'missing.png')}")
  metrics = encoded[1]["metrics"]
  assert metrics["rejected_unsupported_format"] == 2
  assert metrics["rejected_undecodable"] == 1
  assert metrics["rejected_unreadable"] == 1


def test_index_from_codes_answers_like_the_index_from_images(
    export, image_list, encoded, other_small_run, tmp_path):
  _, model_dir, _ = export
  good = image_list[1]
  from_images, from_codes = str(tmp_path / "images"), str(tmp_path / "codes")
  searcher.build_index(model_dir, from_images, images=good)
  manifest = searcher.build_index(None, from_codes, from_codes=encoded[0])
  assert manifest["count"] == NUM_IMAGES
  queries = good[:: 37]
  want = searcher.query_index(from_images, model_dir=model_dir,
                              images=queries, k=15)
  found = searcher.query_index(from_codes, model_dir=model_dir,
                               images=queries, k=15)
  for result, expected in zip(found["results"], want["results"]):
    assert [(hit["id"], hit["distance"], hit["source"]) for hit in
            result["neighbors"]] == [(hit["id"], hit["distance"],
                                      hit["source"])
                                     for hit in expected["neighbors"]]
  assert found["results"][0]["neighbors"][0]["labels"]  # Labels kept.
  with pytest.raises(ConfigError, match="made by another model"):
    searcher.build_index(other_small_run[0], str(tmp_path / "other"),
                         from_codes=encoded[0])


def test_rerun_refuses_and_shards_of_two_runs_never_mix(export, image_list,
                                                        encoded, tmp_path):
  output, manifest = encoded
  with pytest.raises(ConfigError, match="already holds"):
    encoding_pipeline.encode(export[0], image_list[0], output)
  mixed = str(tmp_path / "mixed")
  shutil.copytree(output, mixed)
  first = manifest["shards"][0]["file"]
  shutil.copy(os.path.join(mixed, first),
              os.path.join(mixed, "codes-00000-of-00001.parquet"))
  with pytest.raises(ConfigError, match="not listed: codes-00000-of-00001"):
    code_shards.read_codes(mixed)
  os.remove(os.path.join(mixed, code_shards.MANIFEST))
  with pytest.raises(ConfigError, match="manifest.json is missing"):
    code_shards.read_codes(mixed)


def test_command_line_reports_a_bad_export_in_one_line(image_list, tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "dhe_tf.encode", f"--export_dir={tmp_path}",
       f"--input={image_list[0]}", f"--output={tmp_path / 'codes'}"],
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1] == (
      f"dhe_tf.encode: error: {tmp_path} is not a SavedModel of "
      "dhe_tf.export (no assets.extra/dhe_tf.json): pass a version "
      "directory, --export_dir=EXPORTED/dhe/N.")


def test_a_folder_encodes_like_the_list_of_its_images(export, image_list,
                                                      encoded, tmp_path):
  # A new user's case: one command over a folder of pictures. Its ids are
  # the ranks of the sorted names of its image files; one that cannot be
  # used is a reject; the list file and the .tif beside them are not image
  # files and not read.
  list_path, good, _, _ = image_list
  folder = os.path.dirname(list_path)
  manifest = encoding_pipeline.encode(export[0], folder,
                                      str(tmp_path / "codes"))
  _, ids, sources, packed, _ = code_shards.read_codes(str(tmp_path / "codes"))
  names = sorted(f for f in os.listdir(folder)
                 if f.endswith(folders.IMAGE_EXTENSIONS))
  assert manifest["count"] == NUM_IMAGES and manifest["rejects"] == 2
  assert [os.path.basename(s) for s in sources] == [
      n for n in names if n not in ("corrupt.png", "animated.webp")]
  np.testing.assert_array_equal(
      ids, [names.index(os.path.basename(s)) for s in sources])
  _, _, list_sources, list_packed, _ = code_shards.read_codes(encoded[0])
  by_source = dict(zip(map(os.path.basename, list_sources),
                       map(bytes, list_packed)))
  assert [bytes(p) for p in packed] == [
      by_source[os.path.basename(s)] for s in sources]
