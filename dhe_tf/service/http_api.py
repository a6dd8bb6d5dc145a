"""The HTTP API and the web page of the search service (FastAPI).

    GET  /                 the page: drop an image, see its nearest images
    POST /v1/search        multipart "image" file, or JSON {"image_b64"} or
                           {"code"}; k or radius (form fields, JSON fields or
                           query parameters)
    GET  /v1/images/{id}   the thumbnail (PNG) of indexed code `id`
    GET  /v1/info          bits, model fingerprint, backend, number of codes
    POST /v1/reload        open the index again after a rebuild (loopback
                           clients only, unless --remote_reload)
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
import contextlib
import ipaddress
import json
import logging
import os

import fastapi
from fastapi import responses
import pydantic
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
RELOAD_REFUSED = ("POST /v1/reload answers only clients on the service's "
                  "machine (loopback): reload with `kill -HUP <pid>` of "
                  "dhe_tf.serve or a request to 127.0.0.1, or start "
                  "dhe_tf.serve with --remote_reload.")


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


class Neighbor(pydantic.BaseModel):
  """One result of a search."""
  rank: int
  id: int
  distance: int
  source: str
  labels: list[str]


class SearchResponse(pydantic.BaseModel):
  """The answer of POST /v1/search, ordered by (distance, id)."""
  bits: str = pydantic.Field(description="The query's code as 0/1 text.")
  k: int | None = None
  radius: int | None = None
  results: list[Neighbor]
  truncated: bool = pydantic.Field(
      description="Whether a radius search found more than --max_k codes.")
  took_ms: float


class ErrorResponse(pydantic.BaseModel):
  error: str


_MODE_FIELDS = {
    "k": {"type": "integer", "minimum": 1, "default": 10,
          "description": "How many nearest codes (at most --max_k)."},
    "radius": {"type": "integer", "minimum": 0,
               "description": "Every code within this Hamming distance "
                              "instead of the k nearest; not with k."}}
# The body is read by hand (streamed up to a limit, then parsed), so its two
# forms are declared here for the OpenAPI page rather than derived.
SEARCH_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["image"],
            "properties": {
                "image": {"type": "string", "format": "binary",
                          "description": "A JPEG, PNG, GIF, BMP or WebP file."},
                **_MODE_FIELDS}}},
        "application/json": {"schema": {
            "type": "object", "additionalProperties": False,
            "description": "One of image_b64 and code.",
            "properties": {
                "image_b64": {"type": "string", "format": "byte",
                              "description": "An image file, base64."},
                "code": {"type": "string", "pattern": "^[01]+$",
                         "description": "A code of K characters 0/1."},
                **_MODE_FIELDS},
            "oneOf": [{"required": ["image_b64"]}, {"required": ["code"]}]},
            "examples": {
                "code": {"value": {"code": "0110" * 8, "radius": 2}},
                "image": {"value": {"image_b64": "iVBORw0KGgo...", "k": 5}}}},
    }}
_ERRORS = {status: {"model": ErrorResponse, "description": why}
           for status, why in ((400, "Bad input"), (404, "Unknown id"),
                               (413, "Body or image too large"),
                               (415, "Not a supported content or image"))}


async def _search_request(request, body_limit, k, radius):
  """(image bytes or None, code or None, k, radius) of a search request.

  Form or JSON fields k / radius take precedence over the query's.
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
  if fields.get("k") is not None:
    k = _integer("k", fields.get("k"))
  if fields.get("radius") is not None:
    radius = _integer("radius", fields.get("radius"))
  return image, code, k, radius


def _add_error_handlers(app):
  """Every error as JSON {"error": message}: 4xx for bad input, 500 a bug."""

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


def _add_search(app, service):
  """POST /v1/search."""
  body_limit = (service.max_upload_bytes * 4) // 3 + _OVERHEAD

  @app.post("/v1/search", response_model=None,
            responses={200: {"model": SearchResponse}, **_ERRORS},
            openapi_extra={"requestBody": SEARCH_BODY})
  async def search(request: fastapi.Request, k: int | None = None,
                   radius: int | None = None):
    """The nearest codes to an image or a code, by (distance, id).

    Body: multipart/form-data with a file field "image" (and optional
    fields k, radius), or JSON {"image_b64": "...", "k": 10} or
    {"code": "0110...", "radius": 2}.
    """
    image, code, k, radius = await _search_request(request, body_limit, k,
                                                   radius)
    return await concurrency.run_in_threadpool(
        service.search, image=image, code=code, k=k, radius=radius)


def is_loopback(host):
  """Whether a client address is on this machine: 127.0.0.0/8, ::1 or
  127.x.y.z mapped into IPv6. A name ("testclient") or no address is not:
  the check fails closed."""
  try:
    address = ipaddress.ip_address(host)
  except ValueError:
    return False
  return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def _add_reload(app, service):
  """POST /v1/reload, for loopback clients unless service.remote_reload.

  Reloading re-reads and re-verifies the whole index, so a client elsewhere
  could keep the service busy with it; SIGHUP (dhe_tf.serve) always reloads.
  """
  @app.post("/v1/reload", responses={
      400: {"model": ErrorResponse,
            "description": "The new index is damaged or of another model"},
      403: {"model": ErrorResponse,
            "description": "Not a loopback client, without --remote_reload"}})
  def reload(request: fastapi.Request):
    """Opens the index again, after `dhe_tf.search build` replaced it.

    Loopback only by default: clients beyond 127.0.0.0/8 and ::1 get 403
    unless dhe_tf.serve runs with --remote_reload (SIGHUP reloads too). A
    damaged or mismatched new index is refused (400) and the old one goes on
    serving; the service log says why.
    """
    host = request.client.host if request.client else None
    if not (service.remote_reload or is_loopback(host)):
      _LOG.info("POST /v1/reload refused to %s: not loopback", host)
      raise RequestError(RELOAD_REFUSED, 403)
    try:
      return service.reload()
    except ConfigError as e:
      # The message names the index's and the model's paths: logged only.
      _LOG.error("POST /v1/reload failed: %s", e)
      served = ("the old index is still served" if service.loaded
                else "no index is loaded")
      raise RequestError(f"The reload failed ({type(e).__name__}): {served}; "
                         "the service log says why.", 400) from e


def create_app(service):
  """The FastAPI application over a dhe_tf.service.engine.Service.

  Its settings (the upload limit, remote_reload) are the service's, as
  dhe_tf.serve's flags set them. The service is closed (its batcher joined,
  its index closed) when the server shuts down: uvicorn re-raises SIGTERM
  once it has stopped, so code after `uvicorn.run` would never run.
  """
  @contextlib.asynccontextmanager
  async def lifespan(_):
    yield
    service.close()

  app = fastapi.FastAPI(
      title="dhe_tf visual search",
      description="Nearest images by Hamming distance of their binary codes.",
      version="1", lifespan=lifespan)
  _add_error_handlers(app)
  _add_search(app, service)
  _add_reload(app, service)

  @app.get("/", include_in_schema=False)
  def page():
    return responses.FileResponse(os.path.join(STATIC_DIR, "index.html"))

  @app.get("/healthz")
  def healthz():
    return {"status": "ok", "count": service.info()["count"]}

  @app.get("/v1/info")
  def info():
    """Bits, model fingerprint, backend and number of codes of the index."""
    return service.info()

  @app.get("/v1/images/{id}",
           responses={200: {"content": {"image/png": {}}}, 404: _ERRORS[404]})
  def image(item: int = fastapi.Path(alias="id")):
    """The thumbnail (PNG) of indexed code `id`, by id only."""
    return responses.Response(service.image(item), media_type="image/png",
                              headers={"Cache-Control": "max-age=60"})

  return app
