"""The losses on the hash layer: DHE's Hamming embedding loss and the baselines'.

    hamming_embedding  HammingEmbeddingLoss (DHE), WarmedUpLoss
    baselines          DPSHLoss, DSHLoss, HashNetLoss, CSQLoss, OrthoHashLoss
    pairs              what the pairwise losses share: similarity masks,
                       relaxed Hamming distances, masked means

Each loss is a `keras.losses.Loss` registered with Keras (package "dhe_tf"),
so a saved model that holds one loads after `import dhe_tf`.
"""

# pylint: disable=unused-import
from dhe_tf.losses.baselines import CSQLoss
from dhe_tf.losses.baselines import DPSHLoss
from dhe_tf.losses.baselines import DSHLoss
from dhe_tf.losses.baselines import HashNetLoss
from dhe_tf.losses.baselines import OrthoHashLoss
from dhe_tf.losses.hamming_embedding import HammingEmbeddingLoss
from dhe_tf.losses.hamming_embedding import WarmedUpLoss
