r"""Exports a trained run as a SavedModel for TF Serving.

    python -m dhe_tf.export --model_dir=runs/embedded_32bits_... \
        --export_dir=exported [--model_name=dhe] [--version=N]

writes exported/dhe/N/ (N: one more than the highest version there, or
--version), with the signatures (see dhe_tf.saved_model.exporter, the library
function export_run):

    serving_default  images: tf.string [N], encoded JPEG/PNG/GIF/BMP bytes
    pixels           images: float32 [N, H, W, C], 0..255
    pixels_uint8     images: uint8 [N, H, W, C]

each returning bits uint8 [N, K], packed uint8 [N, ceil(K/8)] and
probabilities float32 [N, K]. Serve it with

    docker run -p 8501:8501 -v "$PWD/exported/dhe:/models/dhe" \
        -e MODEL_NAME=dhe tensorflow/serving

and query it with POST http://localhost:8501/v1/models/dhe:predict and
{"signature_name": "serving_default", "instances": [{"b64": "<base64>"}]}.
`saved_model_cli show --dir exported/dhe/N --all` lists the signatures.
"""

from absl import app
from absl import flags

from dhe_tf.core import errors
from dhe_tf.saved_model import exporter

flags.DEFINE_string("model_dir", None, "Run directory written by dhe_tf.train.")
flags.DEFINE_string("export_dir", None,
                    "Where to write <model_name>/<version>/ (TF Serving's "
                    "model base path is export_dir/model_name).")
flags.DEFINE_string("model_name", "dhe", "The name TF Serving serves under.")
flags.DEFINE_integer("version", 0,
                     "Version directory to write; 0 = one more than the "
                     "highest version already there.")
flags.mark_flags_as_required(["model_dir", "export_dir"])

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  with errors.reported_in_one_line("dhe_tf.export"):
    path = exporter.export_run(FLAGS.model_dir, FLAGS.export_dir,
                               model_name=FLAGS.model_name,
                               version=FLAGS.version or None)
  print(f"SavedModel → {path} (signatures: serving_default, pixels, "
        "pixels_uint8)")


if __name__ == "__main__":
  app.run(main)
