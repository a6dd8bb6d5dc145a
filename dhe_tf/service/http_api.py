"""The HTTP API and the web page of the search service (FastAPI).

    GET  /                 the page: drop an image, see its nearest images
    POST /v1/search        multipart "image" file, or JSON {"image_b64"} or
                           {"code"}; k or radius (form fields, JSON fields or
                           query parameters)
    GET  /v1/images/{id}   the thumbnail (PNG) of indexed code `id`
    GET  /v1/info          bits, model fingerprint, backend, number of codes
    POST /v1/reload        open the index again after a rebuild
    GET  /healthz          200 while an index is loaded
    GET  /openapi.json, /docs

Every error is JSON {"error": message} with a 4xx status for bad input (a
5xx only for a bug, without its traceback, which is logged); the service
goes on serving. The body is read up to a limit (--max_upload_bytes, plus
the base64 and multipart overhead) and refused with 413 beyond it, before
any of it is parsed.
"""

import base64
import binascii
import json
import logging
import os

import fastapi
from fastapi import responses
from starlette import concurrency
from starlette import exceptions as starlette_exceptions
from starlette import requests as starlette_requests

from dhe_tf.core.errors import ConfigError
from dhe_tf.service.uploads import RequestError

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "static")
_LOG = logging.getLogger("dhe_tf.service.http_api")
# Room for the multipart headers and the JSON fields around an image.
_OVERHEAD = 64 * 1024


def _error(status, message):
  return responses.JSONResponse({"error": message}, status_code=status)


async def _read_body(request, limit):
  """The request body, or RequestError 413 once it grows past `limit`."""
  length = request.headers.get("content-length")
  if length and length.isdigit() and int(length) > limit:
    raise RequestError(f"The request body is {int(length):,} bytes, over the "
                       f"limit of {limit:,} (--max_upload_bytes).", 413)
  chunks, size = [], 0
  async for chunk in request.stream():
    size += len(chunk)
    if size > limit:
      raise RequestError(f"The request body is over the limit of {limit:,} "
                         "bytes (--max_upload_bytes).", 413)
    chunks.append(chunk)
  return b"".join(chunks)


def _integer(name, value):
  if value is None or value == "":
    return None
  if isinstance(value, int) and not isinstance(value, bool):
    return value
  if isinstance(value, str) and value.strip().lstrip("-").isdigit():
    return int(value)
  raise RequestError(f"{name} must be an integer. Received: {name}={value!r}")


async def _multipart(request, body):
  """(image bytes, fields) of a multipart/form-data body."""
  sent = False

  async def receive():
    nonlocal sent
    if sent:
      return {"type": "http.disconnect"}
    sent = True
    return {"type": "http.request", "body": body, "more_body": False}

  replay = starlette_requests.Request(request.scope, receive)
  try:
    form = await replay.form(max_files=1, max_fields=8)
  except Exception as e:  # pylint: disable=broad-except
    # python-multipart's and Starlette's parse errors vary by version.
    raise RequestError(f"Malformed multipart body: {e}") from e
  upload = form.get("image")
  if upload is None or isinstance(upload, str):
    raise RequestError('A multipart upload needs a file field "image".')
  return await upload.read(), form


def _json(body):
  try:
    payload = json.loads(body)
  except (ValueError, UnicodeDecodeError) as e:
    raise RequestError(f"The body is not valid JSON: {e}") from e
  if not isinstance(payload, dict):
    raise RequestError("The JSON body must be an object: {\"image_b64\": ...}"
                       " or {\"code\": ...}, with k or radius.")
  unknown = sorted(set(payload) - {"image_b64", "code", "k", "radius"})
  if unknown:
    raise RequestError(f"Unknown field {unknown[0]!r}. Available: image_b64, "
                       "code, k, radius")
  image = payload.get("image_b64")
  if image is not None:
    if not isinstance(image, str):
      raise RequestError("image_b64 must be a base64 string.")
    try:
      image = base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError) as e:
      raise RequestError(f"image_b64 is not valid base64: {e}") from e
  return image, payload


def create_app(service):
  """The FastAPI application over a dhe_tf.service.Service."""
  app = fastapi.FastAPI(
      title="dhe_tf visual search",
      description="Nearest images by Hamming distance of their binary codes.",
      version="1")
  body_limit = (service.max_upload_bytes * 4) // 3 + _OVERHEAD

  @app.exception_handler(RequestError)
  async def request_error(_, e):
    return _error(e.status, str(e))

  @app.exception_handler(ConfigError)
  async def config_error(_, e):
    return _error(400, str(e))

  @app.exception_handler(starlette_exceptions.HTTPException)
  async def http_error(_, e):
    return _error(e.status_code, str(e.detail))

  @app.exception_handler(fastapi.exceptions.RequestValidationError)
  async def validation_error(_, e):
    return _error(400, "; ".join(
        f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
        for error in e.errors()))

  @app.exception_handler(Exception)
  async def bug(request, e):
    _LOG.exception("%s %s failed", request.method, request.url.path)
    return _error(500, f"Internal error ({type(e).__name__}); the service "
                  "log has its details.")

  @app.get("/", include_in_schema=False)
  def page():
    return responses.FileResponse(os.path.join(STATIC_DIR, "index.html"))

  @app.get("/healthz")
  def healthz():
    info = service.info()
    return {"status": "ok", "count": info["count"]}

  @app.get("/v1/info")
  def info():
    """Bits, model fingerprint, backend and number of codes of the index."""
    return service.info()

  @app.post("/v1/search")
  async def search(request: fastapi.Request, k: int | None = None,
                   radius: int | None = None):
    """The nearest codes to an image or a code, by (distance, id).

    Body: multipart/form-data with a file field "image" (and optional
    fields k, radius), or JSON {"image_b64": "...", "k": 10} or
    {"code": "0110...", "radius": 2}.
    """
    body = await _read_body(request, body_limit)
    if not body:
      raise RequestError("The request body is empty: send an image (multipart "
                         "field \"image\") or JSON {\"image_b64\"} or "
                         "{\"code\"}.")
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    code = None
    if kind == "multipart/form-data":
      image, fields = await _multipart(request, body)
    elif kind in ("application/json", ""):
      image, fields = _json(body)
      code = fields.get("code")
    else:
      raise RequestError(f"Unsupported content type {kind!r}: send "
                         "multipart/form-data or application/json.", 415)
    k = _integer("k", fields.get("k")) if fields.get("k") is not None else k
    radius = (_integer("radius", fields.get("radius"))
              if fields.get("radius") is not None else radius)
    return await concurrency.run_in_threadpool(
        service.search, image=image, code=code, k=k, radius=radius)

  @app.get("/v1/images/{id}", responses={200: {"content": {"image/png": {}}}})
  def image(item: int = fastapi.Path(alias="id")):
    """The thumbnail (PNG) of indexed code `id`, by id only."""
    return responses.Response(service.image(item), media_type="image/png",
                              headers={"Cache-Control": "max-age=60"})

  @app.post("/v1/reload")
  def reload():
    """Opens the index again, after `dhe_tf.search build` replaced it."""
    return service.reload()

  return app
