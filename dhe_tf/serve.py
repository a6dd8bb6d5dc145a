r"""Serves an index over HTTP: a JSON API and a web page to search by image.

    pip install -e ".[serve]"
    python -m dhe_tf.serve --model_dir=runs/fmnist32 --index=indexes/fmnist32
    # or over an exported SavedModel, without the training run:
    python -m dhe_tf.serve --export_dir=exported/dhe/1 --index=indexes/fmnist32
    # then open http://127.0.0.1:8080/ , or
    curl -F image=@my_trousers.png "http://127.0.0.1:8080/v1/search?k=5"

It binds to 127.0.0.1 unless --host says otherwise, loads the model and the
index once (refusing an index of another model or a damaged one, one line,
exit status 2), and never writes to the index. After `dhe_tf.search build`
has rebuilt the index, `curl -X POST http://127.0.0.1:8080/v1/reload` or
`kill -HUP <pid>` makes it serve the new one without dropping a request.
The reload endpoint answers only clients on this machine (loopback) unless
--remote_reload says otherwise: a reload re-reads and re-verifies the whole
index, which no client elsewhere should be able to repeat at will.
The API is in dhe_tf.service.http_api (and at /docs); the engine, which tests call
in-process, in dhe_tf.service.
"""

import logging
import signal
import threading

from absl import app
from absl import flags

from dhe_tf.core import errors
from dhe_tf.service import engine as service_lib

flags.DEFINE_string("index", None, "The index directory (dhe_tf.search "
                    "build) to serve.")
flags.DEFINE_string("model_dir", None, "Run directory of dhe_tf.train whose "
                    "model built the index.")
flags.DEFINE_string("export_dir", None, "Instead of --model_dir: a "
                    "SavedModel version directory of dhe_tf.export "
                    "(exported/dhe/N).")
flags.DEFINE_string("host", "127.0.0.1", "Address to bind; 0.0.0.0 serves "
                    "other machines too.")
flags.DEFINE_integer("port", 8080, "Port to bind.")
flags.DEFINE_string("data_dir", None, "Where the indexed dataset's images "
                    "are, for thumbnails (default: the run's --data_dir).")
flags.DEFINE_string("image_root", None, "Folder of the indexed image files "
                    "given by relative paths (default: the run's).")
flags.DEFINE_integer("max_upload_bytes", service_lib.MAX_UPLOAD_BYTES,
                     "The largest image upload accepted, in bytes.")
flags.DEFINE_integer("max_pixels", service_lib.MAX_PIXELS,
                     "The most pixels (width × height) of an image accepted.")
flags.DEFINE_integer("max_k", service_lib.MAX_K,
                     "The largest k, and the most results of a radius "
                     "search.")
flags.DEFINE_integer("max_batch", 64, "The most concurrent images encoded "
                     "in one model call (1: one call per image).")
flags.DEFINE_boolean("remote_reload", False, "Let clients on other machines "
                     "call POST /v1/reload; by default only loopback clients "
                     "(127.0.0.0/8, ::1) may. SIGHUP reloads either way.")
flags.DEFINE_enum("log_level", "warning", ["debug", "info", "warning",
                                           "error"], "uvicorn's log level.")
flags.mark_flag_as_required("index")

FLAGS = flags.FLAGS


def _reload_on_hangup(service):
  """SIGHUP reloads the index, in a thread (a search may be running)."""
  def reload():
    try:
      service.reload()
    except errors.USER_ERRORS as e:
      logging.error("dhe_tf.serve: reload failed, still serving the old "
                    "index: %s", e)

  signal.signal(signal.SIGHUP, lambda *_: threading.Thread(
      target=reload, name="dhe_tf-reload").start())


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  with errors.reported_in_one_line("dhe_tf.serve"):
    try:
      import uvicorn  # pylint: disable=g-import-not-at-top
      from dhe_tf.service import http_api  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise errors.ConfigError(f"dhe_tf.serve needs {e.name}: pip install "
                               '-e ".[serve]"') from e
    service = service_lib.Service(
        FLAGS.index, model_dir=FLAGS.model_dir, export_dir=FLAGS.export_dir,
        data_dir=FLAGS.data_dir, image_root=FLAGS.image_root,
        max_k=FLAGS.max_k, max_upload_bytes=FLAGS.max_upload_bytes,
        max_pixels=FLAGS.max_pixels, max_batch=FLAGS.max_batch,
        remote_reload=FLAGS.remote_reload)
  _reload_on_hangup(service)
  print(f"dhe_tf.serve: {FLAGS.index} ({service.info()['count']} codes) on "
        f"http://{FLAGS.host}:{FLAGS.port}/", flush=True)
  # The app closes the service when the server stops (create_app).
  uvicorn.run(http_api.create_app(service), host=FLAGS.host, port=FLAGS.port,
              log_level=FLAGS.log_level, access_log=False)


if __name__ == "__main__":
  app.run(main)
