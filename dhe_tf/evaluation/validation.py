"""The validation split's score: held-out images retrieve each other.

Settings are chosen on the validation split, never on the test queries. Its
images are training images held out from fitting (RUN/split.npz
"validation"), and each one is a query against all the others
(leave-one-out, dhe_tf.evaluation.metrics' exclude_self). The test database is mostly
images the network never fitted, so the validation database must be too: a
database of the fitted images puts nearly every image on its class's code
and hides how a method codes the images it is unsure of. On the benchmark's
first 14 runs (8 methods, 12 bits), a database of the fitted images ranked
the classifier's codes first of 8 where the test ranks them 7th, with levels
0.09 above the test's; held-out retrieval ranks them 5th and is within 0.02
of the test's levels.
"""

from dhe_tf.core import codes as codes_lib
from dhe_tf.evaluation import diagnostics
from dhe_tf.model import inference
from dhe_tf.evaluation import metrics


def score(model, images, *, batch_size=256, topk=None):
  """mAP@topk and the code diagnostics of the validation images.

  Args:
    model: a model from dhe_tf.model.build_model.
    images: unbatched (image, label) dataset of the held-out images.
    batch_size: images per encoding batch.
    topk: k of mAP@k, None for all.

  Returns:
    (mAP as a float, dict of dhe_tf.evaluation.diagnostics.code_diagnostics rounded
    to 5 digits, as metrics.json keeps them).
  """
  u, labels = inference.activations(model, images, batch_size=batch_size)
  codes = codes_lib.binarize(u)
  value = metrics.mean_average_precision(codes, labels, codes, labels,
                                         topk=topk, exclude_self=True)
  values = diagnostics.code_diagnostics(u, labels, u, labels,
                                       exclude_self=True)
  return value, {name: round(v, 5) for name, v in values.items()}
