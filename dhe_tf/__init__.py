"""dhe_tf: Deep Hamming Embedding hashing for image retrieval (Keras 3 / TF).

Importing the package registers every custom object a saved model may hold
(the preprocessing layer, the losses, the optimizer and its schedules), so
`keras.saving.load_model(path)` after `import dhe_tf` loads any run's model.
"""

import os

# TensorFlow's C++ start-up logs, unless the user chose otherwise; it must be
# set before TensorFlow loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top,unused-import,wrong-import-position
from dhe_tf import baselines
from dhe_tf import losses
from dhe_tf import model
from dhe_tf import optimization

__version__ = "0.1.0"
