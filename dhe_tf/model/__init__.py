"""The network: backbone, hash layer, classifier; and images → codes with it.

    network    BACKBONES, HEADS, build_model, load_model (and the in-graph
               preprocessing layer)
    heads      the classifier heads beside the default one: class codewords,
               the Hamming classifier, straight-through codes
    inference  images (files, bytes, datasets) → activations and codes;
               decode_image, the one image decoder of training's readers,
               the export, the service and the search CLI; model_fingerprint

`dhe_tf.model.load_model(path)` loads any run's `model.keras`.
"""

# pylint: disable=unused-import
from dhe_tf.model.network import BACKBONES
from dhe_tf.model.network import HEADS
from dhe_tf.model.network import build_model
from dhe_tf.model.network import load_model
