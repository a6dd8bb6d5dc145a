"""The service's engine in-process (dhe_tf.service.Service): a damaged index
is named, in the service and in dhe_tf.search alike; an exported SavedModel
and the Milvus backend give the same answers as the run and FAISS; uploads
of every image format are answered as dhe_tf.search answers for the files,
and other formats are named."""

import importlib.util
import io
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import image_samples
import index_samples
from dhe_tf.saved_model import exporter
from dhe_tf import index as index_lib
from dhe_tf.index import searcher
from dhe_tf.service import engine as service_lib
from dhe_tf.service import uploads
from dhe_tf.data import datasets
from dhe_tf.core.errors import ConfigError
from dhe_tf.core.errors import DamagedIndexError
from dhe_tf.service.uploads import RequestError

_REBUILD = ": rebuild the index with `python -m dhe_tf.search build`."


@pytest.fixture(scope="module")
def engine(small_run, tmp_path_factory):
  """(Service over an index of the small run's query part, index path,
  PNG bytes of 3 embedded images)."""
  model_dir, _ = small_run
  index = str(tmp_path_factory.mktemp("engine") / "index")
  # "faiss": the damaged-index cases below include its faiss.index.
  searcher.build_index(model_dir, index, part="query", backend="faiss")
  service = service_lib.Service(index, model_dir=model_dir)
  images, _ = datasets.load_embedded_arrays()
  pngs = [tf.io.encode_png(images[i]).numpy() for i in (3, 400, 9000)]
  yield service, index, pngs
  service.close()


def _copy(index, tmp_path):
  damaged = str(tmp_path / "copy")
  shutil.copytree(index, damaged)
  return damaged


def test_a_damaged_index_is_named_not_crashed_on(engine, tmp_path,
                                                 other_small_run):
  _, index, _ = engine
  cases = []
  truncated = _copy(index, tmp_path / "a")
  path = os.path.join(truncated, "faiss.index")
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size - 8)
  cases.append((truncated, f"The index file {path} is truncated "
                f"({size - 8:,} bytes, index.json records {size:,})"))
  corrupt = _copy(index, tmp_path / "b")
  path = os.path.join(corrupt, "codes.npy")
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    f.write(b"\x00\x01\x02")
  cases.append((corrupt, f"The index file {path} does not match its checksum "
                "in index.json (corrupt, or from another build)"))
  missing = _copy(index, tmp_path / "c")
  os.remove(os.path.join(missing, "codes.npy"))
  cases.append((missing, f"The index file {missing}/codes.npy is missing"))
  bad_json = _copy(index, tmp_path / "d")
  with open(os.path.join(bad_json, "index.json"), "w") as f:
    f.write('{"format": 3, "bits": ')
  cases.append((bad_json, f"The index file {bad_json}/index.json is corrupt "
                "(not valid JSON: "))
  # Two builds mixed: another model's codes.npy next to this faiss.index.
  mixed = _copy(index, tmp_path / "e")
  other = str(tmp_path / "other")
  searcher.build_index(other_small_run[0], other, part="query",
                       backend="faiss")
  shutil.copy(os.path.join(other, "codes.npy"), mixed)
  cases.append((mixed, f"The index file {mixed}/codes.npy does not match"))
  for path, message in cases:
    # dhe_tf.search query, and the service (at start and on reload).
    for open_it in (lambda p: searcher.query_index(p, codes=["0" * 12], k=3),
                    index_lib.read_manifest):
      with pytest.raises(DamagedIndexError) as raised:
        open_it(path)
      assert str(raised.value).startswith(message), str(raised.value)
      assert str(raised.value).endswith(_REBUILD)


def test_the_engine_answers_as_search_query_and_limits_requests(engine,
                                                                small_run,
                                                                tmp_path):
  service, index, pngs = engine
  paths = []
  for i, png in enumerate(pngs):
    paths.append(str(tmp_path / f"{i}.png"))
    with open(paths[-1], "wb") as f:
      f.write(png)
  want = searcher.query_index(index, model_dir=small_run[0], images=paths,
                              k=8)["results"]
  for png, expected in zip(pngs, want):
    found = service.search(image=png, k=8)
    assert found["results"] == expected["neighbors"]
  assert service.batcher.batch_sizes  # Images went through the batcher.
  with pytest.raises(RequestError, match="over the limit") as raised:
    service_lib.Service(index, model_dir=small_run[0],
                        max_upload_bytes=10).encode_image(pngs[0])
  assert raised.value.status == 413
  with pytest.raises(ConfigError, match=re.escape(
      "max_k must be a positive integer. Received: max_k=0")):
    service_lib.Service(index, model_dir=small_run[0], max_k=0)


def test_every_format_is_answered_as_search_query_and_others_are_named(
    engine, small_run, tmp_path):
  service, index, _ = engine
  paths = image_samples.write(str(tmp_path), image_samples.good_files(2))
  # `dhe_tf.search query --images=FOLDER`: the folder's files, by name.
  want = searcher.query_index(index, model_dir=small_run[0],
                              images=[str(tmp_path)], k=6)["results"]
  assert [result["query"] for result in want] == sorted(paths.values())
  for result in want:
    with open(result["query"], "rb") as f:
      found = service.search(image=f.read(), k=6)
    assert found["results"] == result["neighbors"], result["query"]
  send = ": send JPEG, PNG, GIF, BMP or WebP."
  png = image_samples.good_files()["png_rgb.png"][0]
  ppm = io.BytesIO()
  Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(ppm, format="PPM")
  # Formats TensorFlow does not decode: named, with what to send instead.
  cases = [(data, 415, what) for data, what in
           image_samples.refused_files().values()] + [
               (ppm.getvalue(), 415, "PPM is not decoded by TensorFlow" +
                send),
               (b"text", 415, "Not an image: the upload is not a JPEG, PNG, "
                "GIF, BMP or WebP file."),
               (png[:len(png) // 2], 400, "Not an image the model can read "
                "(truncated or corrupt): "),
               (tf.io.encode_png(np.zeros((3, 3, 1), np.uint8)).numpy(), 400,
                "The image is 3 × 3 pixels, under 8 on a side: too small "
                "to hash."),
               (image_samples.good_files()["gif_animated.gif"][0], 413,
                "The image is 28 × 28 × 2 frames = 1,568 pixels, over the "
                "limit of 1,000 (--max_pixels).")]
  small = service_lib.Service(index, model_dir=small_run[0], max_pixels=1000)
  try:
    for data, status, message in cases:
      with pytest.raises(RequestError) as raised:
        (small if status == 413 else service).search(image=data)
      assert raised.value.status == status, message
      assert str(raised.value).startswith(message), str(raised.value)
      assert str(raised.value).endswith(send) == (
          status == 415 and not message.startswith("Not an image"))
  finally:
    small.close()
  with pytest.raises(RequestError) as raised:
    service.search(image=image_samples.refused_files()["photo.tiff"][0])
  assert str(raised.value) == ("TIFF is not decoded by TensorFlow: send "
                               "JPEG, PNG, GIF, BMP or WebP.")


def test_thumbnails_of_every_format_show_their_pixels(tmp_path):
  thumbnails = uploads.Thumbnails(max_pixels=10_000)
  files = image_samples.good_files()
  paths = image_samples.write(str(tmp_path), files)
  for name, (_, grey, colour) in files.items():
    shown = np.asarray(Image.open(io.BytesIO(thumbnails.png(paths[name]))))
    if grey is not None:  # 16-bit levels too, not clipped to white.
      grey = grey if shown.ndim == 2 else np.repeat(grey[..., None], 3, -1)
      np.testing.assert_array_equal(shown, grey, err_msg=name)
    if colour is not None:
      np.testing.assert_array_equal(shown, colour, err_msg=name)


def test_info_names_the_files_and_the_log_says_where_they_are(
    engine, small_run, caplog):
  service, index, _ = engine
  info = service.info()
  assert (info["model"], info["index"]) == ("run", "index")
  assert info["fingerprint"] == index_lib.read_manifest(index)["fingerprint"]
  assert small_run[0] not in json.dumps(info) and index not in json.dumps(
      info)
  with caplog.at_level("INFO", logger="dhe_tf.service"):
    service_lib.Service(index, model_dir=small_run[0]).close()
  (started,) = [r.getMessage() for r in caplog.records
                if r.name == "dhe_tf.service"]
  assert started == (f"Serving the index {os.path.abspath(index)} (100 codes) "
                     f"with the model {os.path.abspath(small_run[0])}")


def test_another_models_index_is_refused(engine, other_small_run):
  _, index, _ = engine
  with pytest.raises(ConfigError, match="was built by another model"):
    service_lib.Service(index, model_dir=other_small_run[0])


def test_an_exported_model_serves_the_same_answers(engine, small_run,
                                                   tmp_path):
  service, index, pngs = engine
  version = exporter.export_run(small_run[0], str(tmp_path / "exported"))
  with open(os.path.join(version, "assets.extra", "dhe_tf.json")) as f:
    assert json.load(f)["center_crop"] is False
  exported = service_lib.Service(index, export_dir=version)
  try:
    assert exported.info()["fingerprint"] == service.info()["fingerprint"]
    assert exported.info()["model"] == "dhe/1"  # exported/dhe/1
    for png in pngs:
      assert (exported.search(image=png, k=5)["results"] ==
              service.search(image=png, k=5)["results"])
  finally:
    exported.close()


def test_milvus_behind_the_service_gives_the_same_answers(engine, small_run,
                                                          tmp_path):
  for module in ("pymilvus", "milvus_lite"):
    if importlib.util.find_spec(module) is None:
      pytest.skip(f"the milvus backend needs {module}")
  service, index, pngs = engine
  path = str(tmp_path / "milvus_index")
  with index_lib.open_index(index) as faiss_index:
    index_lib.build(path, faiss_index.packed, bits=faiss_index.bits,
                    fingerprint=faiss_index.fingerprint,
                    sources=[faiss_index.source(i)
                             for i in range(len(faiss_index))],
                    labels=faiss_index.labels_of(
                        np.arange(len(faiss_index))),
                    class_names=faiss_index.class_names, backend="milvus")
  milvus = service_lib.Service(path, model_dir=small_run[0])
  try:
    assert milvus.info()["backend"] == "milvus"
    for png in pngs:
      assert (milvus.search(image=png, k=9)["results"] ==
              service.search(image=png, k=9)["results"])
    code = service.search(image=pngs[0], k=1)["bits"]
    assert (milvus.search(code=code, radius=3)["results"] ==
            service.search(code=code, radius=3)["results"])
    milvus.reload()  # Milvus Lite released and opened again.
    assert np.array_equal(
        [hit["id"] for hit in milvus.search(code=code, k=4)["results"]],
        [hit["id"] for hit in service.search(code=code, k=4)["results"]])
  finally:
    milvus.close()


def test_the_app_closes_the_service_when_the_server_stops(engine, small_run):
  import asyncio  # pylint: disable=g-import-not-at-top
  pytest.importorskip("fastapi")  # The [serve] extra.
  from dhe_tf.service import http_api  # pylint: disable=g-import-not-at-top
  _, index, _ = engine
  service = service_lib.Service(index, model_dir=small_run[0])
  app = http_api.create_app(service)

  async def serve_then_stop():  # What uvicorn does around serving.
    async with app.router.lifespan_context(app):
      assert service._index is not None  # pylint: disable=protected-access

  asyncio.run(serve_then_stop())
  assert service._index is None  # pylint: disable=protected-access


def _call(app, method, path, client, payload=None):
  """(status, JSON answer) of one request to the ASGI app from `client`, a
  (host, port) or None, as uvicorn hands it over. Starlette's TestClient
  needs httpx, which the test extra does not install."""
  import asyncio  # pylint: disable=g-import-not-at-top
  body = b"" if payload is None else json.dumps(payload).encode()
  scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
           "method": method, "scheme": "http", "path": path,
           "raw_path": path.encode(), "root_path": "", "query_string": b"",
           "headers": [(b"host", b"service"),
                       (b"content-type", b"application/json"),
                       (b"content-length", str(len(body)).encode())],
           "client": client, "server": ("192.0.2.1", 8080)}
  messages, sent = [], [False]

  async def receive():
    if sent[0]:
      return {"type": "http.disconnect"}
    sent[0] = True
    return {"type": "http.request", "body": body, "more_body": False}

  async def send(message):
    messages.append(message)

  asyncio.run(app(scope, receive, send))
  return messages[0]["status"], json.loads(b"".join(
      message.get("body", b"") for message in messages[1:]))


def test_reload_answers_loopback_clients_only(engine):
  pytest.importorskip("fastapi")  # The [serve] extra.
  from dhe_tf.service import http_api  # pylint: disable=g-import-not-at-top
  service, _, _ = engine
  app = http_api.create_app(service)
  for client in (("127.0.0.1", 50000), ("127.8.9.10", 1), ("::1", 1),
                 ("::ffff:127.0.0.1", 1)):
    status, answer = _call(app, "POST", "/v1/reload", client)
    assert (status, answer["count"]) == (200, 100), client
  # Another machine, Starlette's TestClient ("testclient"), no address.
  for client in (("10.0.0.5", 1234), ("192.0.2.1", 1), ("::ffff:10.0.0.5", 1),
                 ("2001:db8::1", 1), ("testclient", 50000), None):
    status, answer = _call(app, "POST", "/v1/reload", client)
    assert (status, answer) == (403, {"error": http_api.RELOAD_REFUSED})
    # The service goes on serving that client.
    assert _call(app, "GET", "/healthz", client) == (
        200, {"status": "ok", "count": 100})
    status, found = _call(app, "POST", "/v1/search", client,
                          {"code": "0" * 12, "k": 3})
    assert status == 200 and len(found["results"]) == 3
  assert http_api.RELOAD_REFUSED == (
      "POST /v1/reload answers only clients on the service's machine "
      "(loopback): reload with `kill -HUP <pid>` of dhe_tf.serve or a "
      "request to 127.0.0.1, or start dhe_tf.serve with --remote_reload.")
  description = _call(app, "GET", "/openapi.json", None)[1]["paths"][
      "/v1/reload"]["post"]["description"]
  assert "Loopback only by default" in description
  assert "--remote_reload" in description


def test_remote_reload_opens_it_and_a_failed_reload_names_no_path(
    engine, small_run, tmp_path, caplog):
  pytest.importorskip("fastapi")  # The [serve] extra.
  from dhe_tf.service import http_api  # pylint: disable=g-import-not-at-top
  _, index, _ = engine
  copy = _copy(index, tmp_path)
  service = service_lib.Service(copy, model_dir=small_run[0],
                                remote_reload=True)
  try:
    app = http_api.create_app(service)
    remote = ("10.0.0.5", 1234)
    status, answer = _call(app, "POST", "/v1/reload", remote)
    assert (status, answer["count"]) == (200, 100)
    damaged = index_samples.damage(copy)
    with caplog.at_level("ERROR", logger="dhe_tf.service.http_api"):
      status, answer = _call(app, "POST", "/v1/reload", remote)
    assert (status, answer) == (400, {"error": (
        "The reload failed (DamagedIndexError): the old index is still "
        "served; the service log says why.")})
    # The paths of the index and the model go to the log only.
    (logged,) = [record.getMessage() for record in caplog.records
                 if record.name == "dhe_tf.service.http_api"]
    assert logged.startswith("POST /v1/reload failed: The index file "
                             f"{damaged} does not match its checksum")
    assert _call(app, "GET", "/healthz", remote)[0] == 200
  finally:
    service.close()
