"""The search service: `python -m dhe_tf.serve` as a real process (one, shared:
`search_service` in conftest.py), its answers checked against
`dhe_tf.search query`'s (dhe_tf.index.searcher.query_index) for the same images."""

import base64
import concurrent.futures
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
import tensorflow as tf
from PIL import Image

import image_samples
import index_samples
from dhe_tf.core import codes as codes_lib
from dhe_tf import index as index_lib
from dhe_tf.runs import run_dir
from dhe_tf.index import searcher
from dhe_tf.data import datasets

http_api = pytest.importorskip("dhe_tf.service.http_api")  # The serve extra.


def _png(pixels):
  return tf.io.encode_png(pixels).numpy()


@pytest.fixture(scope="module")
def served(search_service, tmp_path_factory):
  """The service, and PNG files of indexed images 0, 7, 42 (query part) and
  of a training image, which is not indexed."""
  run = run_dir.load_run(search_service["model_dir"])
  data = run_dir.load_data(run.config)
  images, _ = datasets.load_embedded_arrays()
  folder = tmp_path_factory.mktemp("queries")
  files = []
  for name, item in (("id0", data.split["query"][0]),
                     ("id7", data.split["query"][7]),
                     ("id42", data.split["query"][42]),
                     ("train", data.split["train"][0])):
    path = str(folder / f"{name}.png")
    with open(path, "wb") as f:
      f.write(_png(images[item]))
    files.append(path)
  return dict(search_service, files=files, images=images,
              query_split=data.split["query"])


def _post(url, **kwargs):
  return requests.post(f"{url}/v1/search", timeout=60, **kwargs)


def test_info_health_and_openapi(served):
  url = served["url"]
  assert requests.get(f"{url}/healthz", timeout=10).json() == {
      "status": "ok", "count": 100}
  info = requests.get(f"{url}/v1/info", timeout=10).json()
  manifest = index_lib.read_manifest(served["index"])
  assert (info["bits"], info["count"], info["backend"]) == (
      12, 100, index_lib.DEFAULT_BACKEND)
  assert info["fingerprint"] == manifest["fingerprint"]
  assert info["class_names"] == list(datasets.FASHION_MNIST_CLASSES)
  # Names, never where the files are: those go to the service's log.
  assert (info["model"], info["index"]) == (
      os.path.basename(served["model_dir"]), os.path.basename(served["index"]))
  assert os.sep not in info["model"] + info["index"]
  assert served["index"] not in str(info) and served["model_dir"] not in str(
      info)
  schema = requests.get(f"{url}/openapi.json", timeout=10).json()
  paths = schema["paths"]
  assert {"/v1/search", "/v1/images/{id}", "/v1/info", "/v1/reload",
          "/healthz"} <= set(paths)
  # The search body's two forms and the answer are on the /docs page.
  search = paths["/v1/search"]["post"]
  body = search["requestBody"]["content"]
  assert body["multipart/form-data"]["schema"]["required"] == ["image"]
  assert body["multipart/form-data"]["schema"]["properties"]["image"][
      "format"] == "binary"
  assert set(body["application/json"]["schema"]["properties"]) == {
      "image_b64", "code", "k", "radius"}
  answer = search["responses"]["200"]["content"]["application/json"]
  assert answer["schema"]["$ref"].endswith("/SearchResponse")
  assert set(schema["components"]["schemas"]["Neighbor"]["properties"]) == {
      "rank", "id", "distance", "source", "labels"}
  assert {"400", "413", "415"} <= set(search["responses"])
  found = _post(url, json={"code": "0" * 12, "k": 3}).json()
  http_api.SearchResponse.model_validate(found)  # The schema is the answer's.
  assert "<title>dhe_tf visual search</title>" in requests.get(
      url, timeout=10).text


def test_image_search_equals_search_query(served):
  url, files = served["url"], served["files"]
  want = searcher.query_index(served["index"],
                              model_dir=served["model_dir"], images=files,
                              k=7)
  for path, expected in zip(files, want["results"]):
    with open(path, "rb") as f:
      data = f.read()
    uploaded = _post(url, files={"image": ("q.png", data, "image/png")},
                     data={"k": "7"})
    assert uploaded.status_code == 200, uploaded.text
    as_json = _post(url, json={"image_b64": base64.b64encode(data).decode(),
                               "k": 7})
    for found in (uploaded.json(), as_json.json()):
      assert found["k"] == 7 and found["results"] == expected["neighbors"]
      assert found["took_ms"] > 0
  # The query's bits are its own code: an indexed image finds itself at 0.
  found = _post(url, files={"image": open(files[1], "rb")}).json()
  with index_lib.open_index(served["index"]) as index:
    assert found["bits"] == codes_lib.to_strings(index.packed[7:8], 12)[0]
  assert 7 in [hit["id"] for hit in found["results"] if hit["distance"] == 0]
  assert len(found["results"]) == 10  # The default k.


def test_gif_bmp_cmyk_jpeg_and_webp_uploads_are_answered(served, tmp_path):
  # The grey model's service called them corrupt (GIF, BMP, CMYK JPEG) or
  # refused them (WebP).
  good = image_samples.good_files(seed=3)
  paths = image_samples.write(str(tmp_path), {
      name: good[name] for name in ("gif_palette.gif", "bmp_rgb.bmp",
                                    "jpeg_cmyk.jpg", "webp_rgb.webp")})
  want = searcher.query_index(served["index"], model_dir=served["model_dir"],
                              images=list(paths.values()), k=5)
  for (name, path), expected in zip(paths.items(), want["results"]):
    with open(path, "rb") as f:
      response = _post(served["url"], files={"image": (name, f.read())},
                       data={"k": "5"})
    assert response.status_code == 200, response.text
    assert response.json()["results"] == expected["neighbors"], name


def test_code_search_equals_search_query(served):
  url = served["url"]
  for code in ("010011001010", "111111111111"):
    for mode in ({"k": 20}, {"radius": 2}):
      want = searcher.query_index(served["index"], codes=[code], **mode)
      found = _post(url, json={"code": code, **mode}).json()
      assert found["bits"] == code
      assert found["results"] == want["results"][0]["neighbors"]
      assert [(hit["distance"], hit["id"]) for hit in found["results"]] == (
          sorted((hit["distance"], hit["id"]) for hit in found["results"]))
  found = _post(f"{url}", params={"radius": 12},
                json={"code": "0" * 12}).json()
  assert found["truncated"] and len(found["results"]) == 50  # --max_k=50


def test_thumbnails_are_the_indexed_images(served):
  url = served["url"]
  for item in (0, 42, 99):
    response = requests.get(f"{url}/v1/images/{item}", timeout=10)
    assert response.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(response.content)))
    np.testing.assert_array_equal(
        pixels, served["images"][served["query_split"][item]][..., 0])


def test_bad_input_gets_a_4xx_json_error_and_the_service_goes_on(served):
  url = served["url"]
  with open(served["files"][0], "rb") as f:
    png = f.read()
  jpeg = io.BytesIO()
  Image.fromarray(np.random.default_rng(0).integers(
      0, 256, (64, 64, 3), dtype=np.uint8)).save(jpeg, format="JPEG")
  cases = [
      (dict(files={"image": ("notes.txt", b"not an image", "text/plain")}),
       415, "Not an image"),
      (dict(files={"image": ("scan.tiff", image_samples.refused_files()[
          "photo.tiff"][0])}), 415,
       "TIFF is not decoded by TensorFlow: send JPEG, PNG, GIF, BMP or WebP"),
      (dict(files={"image": ("cut.png", png[:len(png) // 2])}), 400,
       "truncated or corrupt"),
      (dict(files={"image": ("cut.jpg", jpeg.getvalue()[:2000])}), 400,
       "truncated or corrupt"),
      (dict(files={"image": ("empty.png", b"")}), 400, "empty"),
      (dict(data=b""), 400, "body is empty"),
      (dict(files={"image": ("big.png", png + b"\0" * 1_000_000)}), 413,
       "over the limit of 1,000,000"),
      (dict(files={"image": ("bomb.png",
                             image_samples.png_header(2000, 2000))}), 413,
       "4,000,000 pixels, over the limit of 1,000,000"),
      (dict(files={"other": ("q.png", png)}), 400, 'file field "image"'),
      (dict(json={"code": "0101"}), 400,
       "Code '0101' has 4 bits; 12-bit codes are expected."),
      (dict(json={"code": "01010101010x"}), 400, "string of 0 and 1"),
      (dict(json={"code": "0" * 12, "k": 0}), 400,
       "k must be a positive integer. Received: k=0"),
      (dict(json={"code": "0" * 12, "k": -3}), 400, "Received: k=-3"),
      (dict(json={"code": "0" * 12, "k": 51}), 400, "k must be at most 50"),
      (dict(json={"code": "0" * 12, "k": "many"}), 400,
       "k must be an integer"),
      (dict(json={"code": "0" * 12, "k": 2, "radius": 1}), 400,
       "k or radius, not both"),
      (dict(json={"code": "0" * 12, "image_b64": "AAAA"}), 400,
       "an image or a code"),
      (dict(json={"image_b64": "%%%"}), 400, "not valid base64"),
      (dict(json={"path": "/etc/passwd"}), 400, "Unknown field 'path'"),
      (dict(data=b"{not json", headers={"content-type": "application/json"}),
       400, "not valid JSON"),
      (dict(data=b"abc", headers={"content-type": "text/plain"}), 415,
       "Unsupported content type"),
  ]
  for kwargs, status, message in cases:
    response = _post(url, **kwargs)
    assert response.status_code == status, (kwargs, response.text)
    assert message in response.json()["error"], (kwargs, response.text)
    assert "Traceback" not in response.text
  for path, status in (("/v1/images/100", 404), ("/v1/images/-1", 404),
                       ("/v1/images/abc", 400), ("/v1/nothing", 404)):
    response = requests.get(f"{url}{path}", timeout=10)
    assert response.status_code == status, (path, response.text)
    assert response.json()["error"]
  assert _post(url, json={"code": "0" * 12, "k": 3}).status_code == 200
  assert served["process"].poll() is None


def test_concurrent_requests_get_their_own_answers(served):
  url, files = served["url"], served["files"]
  want = searcher.query_index(served["index"],
                              model_dir=served["model_dir"], images=files,
                              k=5)["results"]
  datas = [open(path, "rb").read() for path in files]

  def search(i):
    response = _post(url, files={"image": ("q.png", datas[i % 4])},
                     data={"k": "5"})
    return i, response.json()["results"]

  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    for i, results in pool.map(search, range(48)):
      assert results == want[i % 4]["neighbors"]


def test_another_models_index_and_a_damaged_one_are_one_line(
    served, other_small_run, tmp_path):
  # The two real process starts of the error paths a user meets first:
  # dhe_tf.serve over an index of another model, dhe_tf.search query over a
  # truncated faiss.index (today's FAISS RuntimeError traceback).
  damaged = str(tmp_path / "damaged")
  searcher.build_index(served["model_dir"], damaged, images=served["files"],
                       backend="faiss")
  faiss_file = os.path.join(damaged, "faiss.index")
  with open(faiss_file, "r+b") as f:
    f.truncate(os.path.getsize(faiss_file) - 5)
  commands = {
      "serve": [sys.executable, "-m", "dhe_tf.serve",
                f"--model_dir={other_small_run[0]}",
                f"--index={served['index']}", "--port=1"],
      "search": [sys.executable, "-m", "dhe_tf.search", "query",
                 f"--index={damaged}", "--codes=000000000000"]}
  running = {name: subprocess.Popen(command, stderr=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
             for name, command in commands.items()}
  results = {name: process.communicate(timeout=300)
             for name, process in running.items()}
  for name, process in running.items():
    assert process.returncode == 2, results[name]
    assert "Traceback" not in results[name][1]
  assert results["serve"][1].strip().splitlines()[-1].startswith(
      f"dhe_tf.serve: error: The index at {served['index']} was built by "
      "another model")
  assert results["search"][1].strip().splitlines()[-1] == (
      f"dhe_tf.search: error: The index file {faiss_file} is truncated "
      f"({os.path.getsize(faiss_file):,} bytes, index.json records "
      f"{os.path.getsize(faiss_file) + 5:,}): rebuild the index with "
      "`python -m dhe_tf.search build`.")


def _count(url):
  return requests.get(f"{url}/v1/info", timeout=10).json()["count"]


def test_a_rebuilt_index_is_served_without_a_restart(served):
  # Last in this module: it rebuilds the served index (and restores it).
  url, index, model_dir = served["url"], served["index"], served["model_dir"]
  statuses, stop = [], [False]
  code = {"code": "010011001010", "k": 3}

  def keep_searching():
    while not stop[0]:
      statuses.append(_post(url, json=code).status_code)

  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    for _ in range(4):
      pool.submit(keep_searching)
    searcher.build_index(model_dir, index, images=served["files"])
    assert _count(url) == 100  # Still the old one, until reloaded.
    # From 127.0.0.1: a loopback client may reload.
    reloaded = requests.post(f"{url}/v1/reload", timeout=60)
    assert reloaded.status_code == 200 and reloaded.json()["count"] == 4
    # A damaged rebuild is refused; the index loaded goes on serving. The
    # answer names no path: the log has the full message.
    damaged = index_samples.damage(index)
    refused = requests.post(f"{url}/v1/reload", timeout=60)
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        "The reload failed (DamagedIndexError): the old index is still "
        "served; the service log says why.")
    assert os.sep not in refused.text and index not in refused.text
    with open(served["log"], encoding="utf-8") as f:
      assert (f"The index file {damaged} does not match its checksum in "
              "index.json (corrupt, or from another build)") in f.read()
    assert _count(url) == 4
    stop[0] = True
  assert statuses and set(statuses) == {200}, set(statuses)
  # SIGHUP reloads too; back to the query part for the other tests.
  searcher.build_index(model_dir, index, part="query")
  served["process"].send_signal(signal.SIGHUP)
  deadline = time.monotonic() + 60
  while _count(url) != 100:
    assert time.monotonic() < deadline, "SIGHUP did not reload the index"
    time.sleep(0.1)
