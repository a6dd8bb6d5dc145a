"""dhe_tf: Deep Hamming Embedding hashing for image retrieval (Keras 3 / TF).

The package follows the data's path; the commands sit at the top:

    core/        bits (binarize, pack), errors, checks, class codewords
    data/        datasets, protocols and splits, image files, tf.data input
    model/       backbone + hash layer + classifier; images → codes
    losses/      the Hamming embedding loss (DHE) and the baselines' losses
    evaluation/  mAP and the other metrics, diagnostics, plots, evaluators
    training/    methods, optimiser, hardware, callbacks, the training loop
    runs/        a run's settings (config), its directory, a finished run
    saved_model/ the SavedModel for TF Serving
    encoding/    the Apache Beam pipeline: images → code shards
    index/       binary-code indexes (FAISS, Milvus) and search over them
    service/     the HTTP search service
    train, evaluate, export, search, serve, encode: `python -m dhe_tf.<command>`

Importing the package registers every custom object a saved model may hold
(the preprocessing layer, the losses, the optimizer and its schedules), so
`keras.saving.load_model(path)` after `import dhe_tf` loads any run's model.
"""

import os

# TensorFlow's C++ start-up logs, unless the user chose otherwise; it must be
# set before TensorFlow loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top,unused-import,wrong-import-position
from dhe_tf import losses
from dhe_tf import model
from dhe_tf.training import optimization

__version__ = "0.1.0"
