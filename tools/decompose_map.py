r"""Where a finished run's mAP goes: classified queries, uncertain codes.

    python tools/decompose_map.py --model_dir=RUN      # ~1 min for 1k5k

For a run whose classifier is trained (DHE, DLBHC, classifier codes), on its
test queries and database:

- mAP over the queries the classifier gets right and over the others:
  mAP = accuracy · mAP(right) + (1 − accuracy) · mAP(wrong);
- what rankings the network could give with more than its codes: the
  database ranked by the classifier's probability of the query's predicted
  class, and Hamming ranking with ties broken by the L1 distance of the
  activations u (both are upper references, not methods: they use floats);
- how far each database code is from the majority code of its predicted
  class, and how often the classifier is right at each distance — whether
  the codes keep the network's uncertainty or put every image on a class
  code.

This is the analysis behind docs/research.md.
"""

from absl import app
from absl import flags
import numpy as np

from dhe_tf.core import codes as codes_lib
from dhe_tf.core import errors
from dhe_tf.model import inference
from dhe_tf.evaluation import metrics
from dhe_tf.runs import run_dir
from dhe_tf.core.errors import ConfigError
import finished_run


def outputs(model, dataset, batch_size):
  """(u float [N, K], logits float [N, C], class ids [N]) of a dataset."""
  u, labels, logits = inference.activations(model, dataset,
                                            batch_size=batch_size,
                                            with_logits=True)
  return u, logits, labels.argmax(axis=1)


def average_precision_by_score(scores, relevant):
  """AP of ranking items by ascending score, ties by index (the
  dhe_tf.evaluation.metrics convention), over the whole list."""
  order = np.argsort(scores, kind="stable")
  hits = relevant[order]
  if not hits.any():
    return 0.0
  ranks = np.flatnonzero(hits) + 1
  return float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def decompose(query, database):
  """The numbers of the module docstring, from (u, logits, labels) of the
  queries and of the database."""
  (query_u, query_logits, query_labels) = query
  (database_u, database_logits, database_labels) = database
  query_codes, database_codes = (codes_lib.binarize(query_u),
                                 codes_lib.binarize(database_u))
  right = query_logits.argmax(axis=1) == query_labels
  def hamming_map(mask):
    return metrics.mean_average_precision(
        query_codes[mask], query_labels[mask], database_codes,
        database_labels)
  probabilities = np.exp(database_logits - database_logits.max(
      axis=1, keepdims=True))
  probabilities /= probabilities.sum(axis=1, keepdims=True)
  predicted = query_logits.argmax(axis=1)
  bits = query_codes.shape[1]
  by_probability, by_l1 = [], []
  for i in range(len(query_codes)):
    relevant = database_labels == query_labels[i]
    by_probability.append(average_precision_by_score(
        -probabilities[:, predicted[i]], relevant))
    hamming = (query_codes[i] != database_codes).sum(axis=1)
    l1 = np.abs(query_u[i] - database_u).sum(axis=1)
    by_l1.append(average_precision_by_score(hamming + l1 / (bits + 1),
                                            relevant))
  database_predicted = database_logits.argmax(axis=1)
  distance = np.zeros(len(database_codes), int)
  for c in np.unique(database_predicted):
    members = database_predicted == c
    majority = database_codes[members].mean(axis=0) >= 0.5
    distance[members] = (database_codes[members] != majority).sum(axis=1)
  database_right = database_predicted == database_labels
  spread = [(f"{d}" if d < 3 else "3+",
             float(np.mean(distance == d if d < 3 else distance >= 3)),
             float(np.mean(database_right[distance == d if d < 3
                                          else distance >= 3])))
            for d in range(4) if np.any(distance == d if d < 3
                                        else distance >= 3)]
  return dict(
      mAP=hamming_map(np.ones(len(right), bool)),
      query_accuracy=float(right.mean()),
      mAP_right=hamming_map(right) if right.any() else float("nan"),
      mAP_wrong=hamming_map(~right) if (~right).any() else float("nan"),
      mAP_by_probability=float(np.mean(by_probability)),
      mAP_ties_by_l1=float(np.mean(by_l1)),
      database_accuracy=float(database_right.mean()),
      distance_to_predicted_code=spread)


def report(numbers):
  lines = [
      f"mAP@all {numbers['mAP']:.4f} = {numbers['query_accuracy']:.3f} × "
      f"{numbers['mAP_right']:.4f} (queries classified right) + "
      f"{1 - numbers['query_accuracy']:.3f} × {numbers['mAP_wrong']:.4f} "
      "(wrong)",
      f"ranked by the classifier's probability of the query's predicted "
      f"class: {numbers['mAP_by_probability']:.4f}",
      f"Hamming ties broken by the activations' L1 distance: "
      f"{numbers['mAP_ties_by_l1']:.4f}",
      f"database accuracy {numbers['database_accuracy']:.4f}; bits from the "
      "majority code of the predicted class:",
      "| bits | share of the database | classifier right |",
      "|---|---|---|"]
  lines += [f"| {d} | {share:.3f} | {accuracy:.3f} |"
            for d, share, accuracy in numbers["distance_to_predicted_code"]]
  return "\n".join(lines)


def main(argv):
  del argv
  with errors.reported_in_one_line("decompose_map"):
    run = run_dir.load_run(FLAGS.model_dir)
    if not run.config.classification_weight:
      raise ConfigError(f"{FLAGS.model_dir} is a run of "
                        f"{run.config.method}, whose classifier is not "
                        "trained: there is no classification to decompose.")
    data = finished_run.single_label_data(run, "decompose_map")
    numbers = decompose(
        outputs(run.model, data.parts["query"], FLAGS.eval_batch_size),
        outputs(run.model, data.parts["database"], FLAGS.eval_batch_size))
  print(report(numbers))


if __name__ == "__main__":
  finished_run.define_flags()
  FLAGS = flags.FLAGS
  app.run(main)
