"""Retrieval evaluation of a trained model: encode, rank, score.

Queries and database are encoded with the hash layer (bit = activation ≥ 0.5),
the database is ranked by Hamming distance to each query (ties by database
index), and mAP is computed with dhe_tf.metrics.
"""

import numpy as np

from dhe_tf import metrics
from dhe_tf import model as model_lib
from dhe_tf.data import pipeline


def encode(model, dataset, *, batch_size):
  """Encodes every image of an unbatched (image, label) dataset.

  Returns:
    (codes uint8 [N, K] of 0/1, labels float32 [N, C]), in dataset order.
  """
  encoder = model_lib.encoder(model)
  codes, labels = [], []
  for images, batch_labels in pipeline.batches(dataset, batch_size=batch_size,
                                               training=False):
    codes.append(model_lib.binarize(encoder(images, training=False)))
    labels.append(batch_labels.numpy())
  return np.concatenate(codes), np.concatenate(labels)


def evaluate(model, data, *, batch_size=256, topk=None):
  """Scores `model` on the query and database parts of `data`.

  Args:
    model: a model from dhe_tf.model.build_model.
    data: a dhe_tf.data.datasets.HashingDataset.
    batch_size: images per encoding batch.
    topk: k of mAP@k; None uses the dataset's default (None there: all).

  Returns:
    dict: "mAP", "topk" ("all" or k), "bits", "num_queries",
    "num_database".
  """
  topk = topk or data.topk
  query_codes, query_labels = encode(model, data.parts["query"],
                                     batch_size=batch_size)
  database_codes, database_labels = encode(model, data.parts["database"],
                                           batch_size=batch_size)
  mean_ap = metrics.mean_average_precision(query_codes, query_labels,
                                           database_codes, database_labels,
                                           topk=topk)
  return {
      "mAP": float(mean_ap),
      "topk": "all" if topk is None else int(topk),
      "bits": int(query_codes.shape[1]),
      "num_queries": int(len(query_codes)),
      "num_database": int(len(database_codes)),
  }
