"""Retrieval evaluation of a trained model: encode, rank, score, picture.

Queries and database are encoded with the hash layer (dhe_tf.model.inference, bit =
activation ≥ 0.5) and the database is ranked by Hamming distance to each
query, ties broken by database index (see dhe_tf.evaluation.metrics for every
convention). `evaluate_run` is what `dhe_tf.train` calls at the end of
training; `evaluate_run_dir` is `python -m dhe_tf.evaluate`.
"""

import os

import numpy as np
import tensorflow as tf

from dhe_tf.model import inference
from dhe_tf.evaluation import metrics
from dhe_tf.evaluation import plots
from dhe_tf.runs import run_dir
from dhe_tf.evaluation import validation

PRECISION_AT = (100, 500, 1000)
RADIUS = 2


def retrieval_metrics(query_codes, query_labels, database_codes,
                      database_labels, *, topk=None):
  """Every retrieval number we report, from codes and labels.

  Args:
    query_codes, database_codes: 0/1 [Q, K] and [N, K].
    query_labels, database_labels: one-hot / multi-hot [Q, C] and [N, C].
    topk: k of mAP@k, None for the whole database.

  Returns:
    (results, (precision [K+1], recall [K+1])): results holds "mAP",
    "topk" ("all" or k), "P@H<=2" and "R@H<=2" (mean precision and recall of
    the items within Hamming radius 2; a query that retrieves nothing there
    has precision 0) and "P@N" for N in PRECISION_AT not above the database
    size; the curve is over Hamming radii 0..K.
  """
  args = (query_codes, query_labels, database_codes, database_labels)
  precision, recall = metrics.precision_recall_curve(*args)
  radius = min(RADIUS, query_codes.shape[1])
  results = {
      "mAP": float(metrics.mean_average_precision(*args, topk=topk)),
      "topk": "all" if topk is None else int(topk),
      "P@H<=2": float(precision[radius]),
      "R@H<=2": float(recall[radius]),
  }
  ns = [n for n in PRECISION_AT if n <= len(database_codes)]
  if ns:
    for n, value in metrics.precision_at_n(*args, ns=ns).items():
      results[f"P@{n}"] = float(value)
  return results, (precision, recall)


def images_at(dataset, indices):
  """Returns uint8 images [len(indices), H, W, C] at positions of `dataset`.

  One pass over the dataset, keeping only the wanted positions, so it works
  for databases too large to hold in memory.
  """
  wanted = np.unique(np.asarray(indices, np.int64))
  table = tf.constant(wanted)
  kept = dataset.enumerate().filter(
      lambda i, item: tf.reduce_any(tf.equal(i, table)))
  by_index = {int(i): image.numpy() for i, (image, _) in kept}
  return np.stack([by_index[int(i)] for i in np.ravel(indices)]).reshape(
      np.shape(indices) + next(iter(by_index.values())).shape)


def _retrieval_picture(data, query_codes, query_labels, database_codes,
                       database_labels, path, *, title, rows=8, k=10):
  shown = np.unique(np.linspace(0, len(query_codes) - 1, rows).astype(int))
  top, distances = metrics.retrieve(query_codes[shown], database_codes, k)
  relevant = np.take_along_axis(
      metrics.relevance(query_labels[shown], database_labels), top, axis=1)
  return plots.retrievals(images_at(data.parts["query"], shown),
                          images_at(data.parts["database"], top),
                          relevant, distances, path, title=title)


def checked_data(run, parts=("query", "database")):
  """run.data(parts) (dhe_tf.runs.run_dir.Run.data): the dataset of a
  finished run, its `parts` checked against RUN/split.npz; kept for the
  tools that call it by this name."""
  return run.data(parts)


def scores_classifier(config, data):
  """Whether the metrics of a run of `config` on `data` include the
  classifier's accuracy: its classifier is trained (classification_weight >
  0), the labels are single-label and the queries' classes were trained on
  (not so under protocols "unseen" and "unseen_tiny", whose split records
  the "seen_classes")."""
  return bool(config.classification_weight) and not data.multi_label and (
      "seen_classes" not in data.split)


def evaluate_run(model, data, model_dir, *, batch_size=256, topk=None,
                 extra=None, score_classifier=False):
  """Scores `model` on `data`'s queries and database, writing the results.

  Writes into model_dir: metrics.json (retrieval_metrics plus "bits",
  "dataset", "num_queries", "num_database", "distinct_database_codes" (how
  many different codes the database has), with score_classifier
  "classifier_accuracy" (top-1 accuracy of argmax logits on the queries),
  and `extra`; keys already there that this evaluation does not compute,
  such as train_seconds, are kept), pr_curve.png and retrievals.png.

  Args:
    model: a model from dhe_tf.model.build_model.
    data: a dhe_tf.data.datasets.HashingDataset.
    model_dir: the run directory.
    batch_size: images per encoding batch.
    topk: k of mAP@k; None uses the dataset's default (None there: all).
    extra: more entries for metrics.json.
    score_classifier: whether to score the classifier (scores_classifier);
      its logits come from the queries' encoding pass.

  Returns:
    (results dict, PNG bytes of the precision–recall curve).
  """
  topk = topk or data.topk
  query = inference.encode(model, data.parts["query"], batch_size=batch_size,
                           with_logits=score_classifier)
  query_codes, query_labels = query[:2]
  database_codes, database_labels = inference.encode(
      model, data.parts["database"], batch_size=batch_size)
  results, (precision, recall) = retrieval_metrics(
      query_codes, query_labels, database_codes, database_labels, topk=topk)
  if score_classifier:
    results["classifier_accuracy"] = float(np.mean(
        np.argmax(query[2], axis=1) == np.argmax(query_labels, axis=1)))
  results.update(bits=int(query_codes.shape[1]), dataset=data.name,
                 num_queries=len(query_codes),
                 num_database=len(database_codes),
                 distinct_database_codes=len(np.unique(database_codes,
                                                       axis=0)),
                 **(extra or {}))
  title = (f"{data.name}, {results['bits']} bits: "
           f"mAP@{results['topk']} = {results['mAP']:.3f}")
  curve = plots.pr_curve(precision, recall,
                         os.path.join(model_dir, "pr_curve.png"), title=title)
  _retrieval_picture(data, query_codes, query_labels, database_codes,
                     database_labels, os.path.join(model_dir,
                                                   "retrievals.png"),
                     title=f"{title} — top 10 (green: shares a label)")
  run_dir.update_metrics(model_dir, results)
  return results, curve


def evaluate_run_dir(model_dir, *, data_dir=None, topk=None, batch_size=256,
                     test=True):
  """Evaluates the finished run in `model_dir` again, by this version's
  definitions; returns the metrics it wrote into metrics.json.

  The validation split, when the run held one out, is scored again
  (dhe_tf.evaluation.validation: "validation_mAP" and "validation_diagnostics"; the
  "validation_curve" of training is kept as it was measured), and with
  `test` the queries (see evaluate_run).

  Args:
    model_dir: a finished dhe_tf.train run: its directory, or the
      dhe_tf.runs.run_dir.Run read from it.
    data_dir: where the dataset is now, if not where training found it.
    topk: k of mAP@k; None for the run's setting.
    batch_size: images per encoding batch.
    test: also score the test queries; False when choosing settings, which
      must never see them.
  """
  run = run_dir.load_run(model_dir)
  data = run.data(("query", "database"), data_dir=data_dir)
  held_out = run.held_out(data)
  topk = topk or run.config.topk
  extra = {}
  if held_out is not None:
    value, codes_diagnostics = validation.score(
        run.model, held_out, batch_size=batch_size, topk=topk or data.topk)
    extra = dict(validation_mAP=value,
                 validation_diagnostics=codes_diagnostics)
  if not test:
    return run_dir.update_metrics(run.path, extra)
  results, _ = evaluate_run(run.model, data, run.path, batch_size=batch_size,
                            topk=topk, extra=extra,
                            score_classifier=scores_classifier(run.config,
                                                               data))
  return results
