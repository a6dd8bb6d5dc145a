"""Tests for dhe_tf.evaluation.metrics: hand-computed cases and brute-force references."""

import numpy as np
import pytest

from dhe_tf.core import codes as codes_lib
from dhe_tf.evaluation import metrics

# The hand-computed example. Query 0 is 0000 with label 0; distances to the
# database:
#
#   index  code  label  d(query 0)  d(query 1 = 1111)
#   0      1100  0      2           2
#   1      1000  1      1           3
#   2      0000  0      0           4
#   3      0100  0      1           3
#   4      1110  1      3           1
#
# Query 0 ranks (distance, index): 2, 1, 3, 0, 4 -> relevance 1, 0, 1, 1, 0.
# Items 1 and 3 tie at distance 1; the lower index, 1 (not relevant), goes
# first. Breaking the tie the other way would give AP (1 + 1 + 3/4) / 3.
# Query 1 (label 1) ranks 4, 0, 1, 3, 2 -> relevance 1, 0, 1, 0, 0.
# Query 2 is 0000 with label 2: nothing in the database is relevant.
QUERY_CODES = [[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]
QUERY_LABELS = [0, 1, 2]
DATABASE_CODES = [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0],
                  [1, 1, 1, 0]]
DATABASE_LABELS = [0, 1, 0, 0, 1]
EXAMPLE = (QUERY_CODES, QUERY_LABELS, DATABASE_CODES, DATABASE_LABELS)


def random_case(seed, num_queries, num_items, bits, label_form):
  """Random codes with few bits, so distances tie a lot, and labels."""
  rng = np.random.default_rng(seed)
  query_codes = rng.integers(0, 2, (num_queries, bits))
  database_codes = rng.integers(0, 2, (num_items, bits))
  if label_form == "ids":
    query_labels = rng.integers(0, 3, num_queries)
    database_labels = rng.integers(0, 3, num_items)
  elif label_form == "one_hot":
    query_labels = np.eye(3)[rng.integers(0, 3, num_queries)]
    database_labels = np.eye(3)[rng.integers(0, 3, num_items)]
  else:  # Multi-hot; some rows have no label at all, so no relevant item.
    query_labels = (rng.random((num_queries, 4)) < 0.3).astype(int)
    database_labels = (rng.random((num_items, 4)) < 0.3).astype(int)
  return query_codes, query_labels, database_codes, database_labels


RANDOM_CASES = [
    (seed, bits, label_form)
    for seed, bits in enumerate([1, 4, 6, 12, 13])
    for label_form in ("ids", "one_hot", "multi_hot")
]


# Brute-force references: one query at a time, stable argsort.


def reference_ranking(query_code, database_codes):
  distances = (np.asarray(query_code) != np.asarray(database_codes)).sum(1)
  order = np.argsort(distances, kind="stable")
  return order, distances[order]


def reference_relevance(query_label, database_labels):
  query_label = np.asarray(query_label)
  database_labels = np.asarray(database_labels)
  if query_label.ndim == 0:
    return database_labels == query_label
  return np.logical_and(query_label, database_labels).any(axis=1)


def reference_map(query_codes, query_labels, database_codes, database_labels,
                  topk=None):
  average_precisions = []
  for code, label in zip(query_codes, query_labels):
    order, _ = reference_ranking(code, database_codes)
    relevant = reference_relevance(label, database_labels)[order][:topk]
    precision_sum, hits = 0.0, 0
    for rank, is_relevant in enumerate(relevant, start=1):
      if is_relevant:
        hits += 1
        precision_sum += hits / rank
    average_precisions.append(precision_sum / hits if hits else 0.0)
  return np.mean(average_precisions)


def reference_precision_recall(query_codes, query_labels, database_codes,
                               database_labels):
  bits = np.shape(query_codes)[1]
  precisions, recalls = [], []
  for code, label in zip(query_codes, query_labels):
    distances = (np.asarray(code) != np.asarray(database_codes)).sum(1)
    relevant = reference_relevance(label, database_labels)
    precision, recall = [], []
    for radius in range(bits + 1):
      retrieved = distances <= radius
      hits = np.sum(retrieved & relevant)
      precision.append(hits / retrieved.sum() if retrieved.any() else 0.0)
      recall.append(hits / relevant.sum() if relevant.any() else np.nan)
    precisions.append(precision)
    recalls.append(recall)
  recalls = np.array(recalls)
  recalls = recalls[~np.isnan(recalls[:, 0])]
  return (np.mean(precisions, axis=0),
          recalls.mean(axis=0) if len(recalls) else np.zeros(bits + 1))


# hamming_distances.


def test_hamming_distances_by_hand():
  # 1011 vs 1011, 0011, 0100: 0, 1 and 4 differing bits.
  query = codes_lib.pack([[1, 0, 1, 1]])
  database = codes_lib.pack([[1, 0, 1, 1], [0, 0, 1, 1], [0, 1, 0, 0]])
  np.testing.assert_array_equal(
      metrics.hamming_distances(query, database), [[0, 1, 4]])


@pytest.mark.parametrize("bits", [1, 7, 12, 13, 16, 24, 32, 48, 64, 100, 300])
def test_hamming_distances_match_bit_comparison(bits):
  rng = np.random.default_rng(bits)
  query_codes = rng.integers(0, 2, (6, bits))
  database_codes = rng.integers(0, 2, (9, bits))
  distances = metrics.hamming_distances(codes_lib.pack(query_codes),
                                        codes_lib.pack(database_codes))
  expected = (query_codes[:, None, :] != database_codes[None, :, :]).sum(-1)
  np.testing.assert_array_equal(distances, expected)


def test_hamming_distances_reject_different_widths():
  with pytest.raises(ValueError, match="width 1, database_packed width 2"):
    metrics.hamming_distances(codes_lib.pack([[1, 0]]),
                              codes_lib.pack([[1] * 9]))


# relevance.


def test_relevance_by_hand():
  np.testing.assert_array_equal(
      metrics.relevance([0, 1], [1, 0, 1]),
      [[False, True, False], [True, False, True]])
  # [N, 1] is read as class ids.
  np.testing.assert_array_equal(
      metrics.relevance([[0], [1]], [[1], [0], [1]]),
      [[False, True, False], [True, False, True]])
  # Multi-hot: {0, 2} shares nothing with {1}, 2 with {2}, 0 and 2 with all.
  np.testing.assert_array_equal(
      metrics.relevance([[1, 0, 1]], [[0, 1, 0], [0, 0, 1], [1, 1, 1]]),
      [[False, True, True]])


@pytest.mark.parametrize("num_classes", [2, 3, 8, 9, 64, 70, 130])
def test_relevance_of_multi_hot_matches_reference(num_classes):
  # Widths of 1 to 17 bytes; rows without any label are relevant to nothing.
  rng = np.random.default_rng(num_classes)
  query_labels = rng.random((7, num_classes)) < 0.05
  database_labels = rng.random((11, num_classes)) < 0.05
  expected = [reference_relevance(label, database_labels)
              for label in query_labels]
  np.testing.assert_array_equal(
      metrics.relevance(query_labels, database_labels), expected)


def test_relevance_rejects_mixed_forms():
  with pytest.raises(ValueError, match=r"\(2,\).*\(3, 4\)"):
    metrics.relevance([0, 1], np.eye(4)[:3])
  with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 4\)"):
    metrics.relevance(np.eye(3)[:2], np.eye(4)[:3])


def test_relevance_rejects_bad_labels():
  with pytest.raises(ValueError, match="dtype float64"):
    metrics.relevance([0.0, 1.0], [1, 0])
  with pytest.raises(ValueError, match="containing 2"):
    metrics.relevance([[0, 2]], [[0, 1]])
  with pytest.raises(ValueError, match=r"shape \(1, 1, 2\)"):
    metrics.relevance([[[0, 1]]], [[0, 1]])


# mean_average_precision.


def test_map_by_hand():
  # Query 0, relevance 1, 0, 1, 1, 0: AP = (1/1 + 2/3 + 3/4) / 3 = 29/36.
  # Query 1, relevance 1, 0, 1, 0, 0: AP = (1/1 + 2/3) / 2 = 5/6.
  # Query 2 has no relevant item: AP = 0, and it counts in the mean.
  assert metrics.mean_average_precision(*EXAMPLE) == pytest.approx(
      (29 / 36 + 5 / 6 + 0) / 3)


@pytest.mark.parametrize("topk, expected", [
    # Top 1: both queries 0 and 1 start with a relevant item: AP 1 each.
    (1, (1 + 1 + 0) / 3),
    # Top 2 (1, 0 for both): R_2 = 1 and AP = 1/1 for both queries.
    (2, (1 + 1 + 0) / 3),
    # Top 3: query 0 is 1, 0, 1 -> (1 + 2/3) / 2; query 1 the same.
    (3, (5 / 6 + 5 / 6 + 0) / 3),
    # Top 10 > 5 items: the whole database, as mAP@ALL.
    (10, (29 / 36 + 5 / 6 + 0) / 3),
])
def test_map_at_topk_by_hand(topk, expected):
  assert metrics.mean_average_precision(*EXAMPLE, topk=topk) == pytest.approx(
      expected)


def test_map_one_hot_equals_ids():
  one_hot = np.eye(3)
  assert metrics.mean_average_precision(
      QUERY_CODES, one_hot[QUERY_LABELS], DATABASE_CODES,
      one_hot[DATABASE_LABELS]) == metrics.mean_average_precision(*EXAMPLE)


@pytest.mark.parametrize("seed, bits, label_form", RANDOM_CASES)
@pytest.mark.parametrize("topk", [None, 1, 7, 40, 80])
def test_map_matches_reference(seed, bits, label_form, topk):
  case = random_case(seed, 15, 40, bits, label_form)
  assert metrics.mean_average_precision(*case, topk=topk) == pytest.approx(
      reference_map(*case, topk=topk), abs=1e-12)


@pytest.mark.parametrize("label_form", ["ids", "multi_hot"])
def test_map_does_not_depend_on_chunk_size(label_form):
  case = random_case(7, 23, 60, 6, label_form)
  for topk in (None, 10):
    results = {metrics.mean_average_precision(*case, topk=topk, chunk_size=c)
               for c in (None, 1, 7, 1000)}
    assert len(results) == 1


def test_map_of_single_bit_codes_on_larger_database():
  # 1 bit and 3,000 items: two huge ties, decided by index alone.
  case = random_case(3, 4, 3000, 1, "ids")
  assert metrics.mean_average_precision(*case) == pytest.approx(
      reference_map(*case), abs=1e-12)


@pytest.mark.parametrize("topk", [0, -3, 2.5, True])
def test_map_rejects_bad_topk(topk):
  with pytest.raises(ValueError, match=f"Received: topk={topk!r}"):
    metrics.mean_average_precision(*EXAMPLE, topk=topk)


def test_map_rejects_bad_chunk_size():
  with pytest.raises(ValueError, match="Received: chunk_size=0"):
    metrics.mean_average_precision(*EXAMPLE, chunk_size=0)


def test_map_rejects_mismatched_inputs():
  with pytest.raises(ValueError, match="4 bits, database_codes with 3 bits"):
    metrics.mean_average_precision(QUERY_CODES, QUERY_LABELS,
                                   np.zeros((5, 3)), DATABASE_LABELS)
  with pytest.raises(ValueError, match="5 codes and 4 labels"):
    metrics.mean_average_precision(QUERY_CODES, QUERY_LABELS, DATABASE_CODES,
                                   DATABASE_LABELS[:4])
  with pytest.raises(ValueError, match="query_codes containing -1"):
    metrics.mean_average_precision(2 * np.array(QUERY_CODES) - 1,
                                   QUERY_LABELS, DATABASE_CODES,
                                   DATABASE_LABELS)


# precision_at_n.


def test_precision_at_n_by_hand():
  # Relevance in rank order: query 0 is 1, 0, 1, 1, 0; query 1 is 1, 0, 1, 0,
  # 0; query 2 is all 0. n = 10 > 5 items means n = 5.
  precision = metrics.precision_at_n(*EXAMPLE, ns=(1, 2, 3, 10))
  assert precision == pytest.approx({
      1: (1 + 1 + 0) / 3,
      2: (1 / 2 + 1 / 2 + 0) / 3,
      3: (2 / 3 + 2 / 3 + 0) / 3,
      10: (3 / 5 + 2 / 5 + 0) / 3,
  })


@pytest.mark.parametrize("seed, bits, label_form", RANDOM_CASES)
def test_precision_at_n_matches_reference(seed, bits, label_form):
  case = random_case(seed, 15, 40, bits, label_form)
  query_codes, query_labels, database_codes, database_labels = case
  ns = (1, 5, 40, 100)
  expected = {n: [] for n in ns}
  for code, label in zip(query_codes, query_labels):
    order, _ = reference_ranking(code, database_codes)
    relevant = reference_relevance(label, database_labels)[order]
    for n in ns:
      expected[n].append(relevant[:n].mean())
  precision = metrics.precision_at_n(*case, ns=ns, chunk_size=4)
  assert precision == pytest.approx({n: np.mean(expected[n]) for n in ns})


@pytest.mark.parametrize("ns", [(), (0, 5), 5, (2.0,)])
def test_precision_at_n_rejects_bad_ns(ns):
  with pytest.raises(ValueError, match="Received: ns="):
    metrics.precision_at_n(*EXAMPLE, ns=ns)


# precision_recall_curve and precision_recall_within_radius.


def test_precision_recall_curve_by_hand():
  # Per radius 0..4, (relevant retrieved / retrieved, / relevant in database):
  #   query 0 (3 relevant): 1/1, 2/3, 3/4, 3/5, 3/5 and 1/3, 2/3, 1, 1, 1.
  #   query 1 (2 relevant): nothing at radius 0 -> precision 0; then 1/1, 1/2,
  #     2/4, 2/5 and 0, 1/2, 1/2, 1, 1.
  #   query 2 (0 relevant): precision 0 everywhere; left out of recall.
  precision, recall = metrics.precision_recall_curve(*EXAMPLE)
  np.testing.assert_allclose(
      precision,
      np.array([1 + 0, 2 / 3 + 1, 3 / 4 + 1 / 2, 3 / 5 + 2 / 4,
                3 / 5 + 2 / 5]) / 3)
  np.testing.assert_allclose(
      recall,
      np.array([1 / 3 + 0, 2 / 3 + 1 / 2, 1 + 1 / 2, 1 + 1, 1 + 1]) / 2)


def test_precision_recall_within_radius_by_hand():
  # Radius 2 of the curve above; a radius above 4 bits means 4.
  precision, recall = metrics.precision_recall_within_radius(*EXAMPLE)
  assert precision == pytest.approx((3 / 4 + 1 / 2 + 0) / 3)
  assert recall == pytest.approx((1 + 1 / 2) / 2)
  assert metrics.precision_recall_within_radius(
      *EXAMPLE, radius=9) == pytest.approx(
          ((3 / 5 + 2 / 5 + 0) / 3, 1.0))


def test_recall_is_zero_when_no_query_has_relevant_items():
  _, recall = metrics.precision_recall_curve(
      QUERY_CODES, [7, 8, 9], DATABASE_CODES, DATABASE_LABELS)
  np.testing.assert_array_equal(recall, np.zeros(5))


@pytest.mark.parametrize("seed, bits, label_form", RANDOM_CASES)
def test_precision_recall_curve_matches_reference(seed, bits, label_form):
  case = random_case(seed, 15, 40, bits, label_form)
  precision, recall = metrics.precision_recall_curve(*case, chunk_size=6)
  expected_precision, expected_recall = reference_precision_recall(*case)
  np.testing.assert_allclose(precision, expected_precision, atol=1e-12)
  np.testing.assert_allclose(recall, expected_recall, atol=1e-12)


def test_precision_recall_within_radius_rejects_bad_radius():
  with pytest.raises(ValueError, match="Received: radius=-1"):
    metrics.precision_recall_within_radius(*EXAMPLE, radius=-1)


# retrieve.


# Leave-one-out (exclude_self): each item against all the others.


def reference_leave_one_out(function, codes, labels, **kwargs):
  """function of every item as its own query against the others, by
  deleting its row: the mean over items (per radius for curves)."""
  codes, labels = np.asarray(codes), np.asarray(labels)
  results = []
  for i in range(len(codes)):
    others = np.arange(len(codes)) != i
    results.append(function(codes[i:i + 1], labels[i:i + 1], codes[others],
                            labels[others], **kwargs))
  return results


@pytest.mark.parametrize("seed, bits, label_form", RANDOM_CASES)
@pytest.mark.parametrize("topk", [None, 7, 39, 80])
def test_leave_one_out_map_matches_deleting_each_query(seed, bits,
                                                        label_form, topk):
  codes, labels, _, _ = random_case(seed, 40, 1, bits, label_form)
  expected = np.mean(reference_leave_one_out(reference_map, codes, labels,
                                             topk=topk))
  for chunk_size in (None, 3):
    assert metrics.mean_average_precision(
        codes, labels, codes, labels, topk=topk, chunk_size=chunk_size,
        exclude_self=True) == pytest.approx(expected, abs=1e-12)


def test_leave_one_out_map_by_hand():
  # Item 0 (class 0) finds item 1 (class 0) at distance 1 behind item 2
  # (class 1) at distance 0: AP 1/2; item 1 finds item 0 first: AP 1;
  # item 2 (class 1) has no relevant other item: AP 0. Counting itself, each
  # item would come first at distance 0 and lift every AP.
  codes = [[0, 0], [0, 1], [0, 0]]
  labels = [0, 0, 1]
  assert metrics.mean_average_precision(
      codes, labels, codes, labels, exclude_self=True) == pytest.approx(
          (0.5 + 1 + 0) / 3)


@pytest.mark.parametrize("seed, bits, label_form", RANDOM_CASES[::2])
def test_leave_one_out_precision_recall_matches_deleting_each_query(
    seed, bits, label_form):
  codes, labels, _, _ = random_case(seed, 30, 1, bits, label_form)
  curves = reference_leave_one_out(reference_precision_recall, codes, labels)
  expected_precision = np.mean([p for p, _ in curves], axis=0)
  # Recall over the items that have a relevant other item (the others'
  # recall is undefined, and left out).
  has_relevant = [reference_relevance(labels[i], np.delete(labels, i, 0)
                                      ).any() for i in range(len(codes))]
  expected_recall = np.mean([r for (_, r), keep in zip(curves, has_relevant)
                             if keep], axis=0)
  precision, recall = metrics.precision_recall_curve(
      codes, labels, codes, labels, chunk_size=4, exclude_self=True)
  np.testing.assert_allclose(precision, expected_precision, atol=1e-12)
  np.testing.assert_allclose(recall, expected_recall, atol=1e-12)
  assert metrics.precision_recall_within_radius(
      codes, labels, codes, labels, exclude_self=True)[0] == pytest.approx(
          expected_precision[min(2, bits)])


def test_leave_one_out_needs_the_queries_to_be_the_database():
  with pytest.raises(ValueError, match="3 queries, 5 database items"):
    metrics.mean_average_precision(*EXAMPLE, exclude_self=True)
  with pytest.raises(ValueError, match="at least two items"):
    metrics.precision_recall_curve([[1]], [0], [[1]], [0], exclude_self=True)


def test_retrieve_by_hand():
  # Query 0 ranks 2, 1, 3, 0, 4 at distances 0, 1, 1, 2, 3.
  indices, distances = metrics.retrieve(QUERY_CODES[:1], DATABASE_CODES, k=3)
  np.testing.assert_array_equal(indices, [[2, 1, 3]])
  np.testing.assert_array_equal(distances, [[0, 1, 1]])
  # k above the database size returns all 5 items.
  indices, distances = metrics.retrieve(QUERY_CODES[:1], DATABASE_CODES, k=9)
  np.testing.assert_array_equal(indices, [[2, 1, 3, 0, 4]])
  np.testing.assert_array_equal(distances, [[0, 1, 1, 2, 3]])


@pytest.mark.parametrize("bits", [1, 4, 13, 48])
@pytest.mark.parametrize("k", [1, 10, 100])
def test_retrieve_matches_reference(bits, k):
  query_codes, _, database_codes, _ = random_case(bits, 12, 70, bits, "ids")
  indices, distances = metrics.retrieve(query_codes, database_codes, k=k,
                                        chunk_size=5)
  for row, code in enumerate(query_codes):
    order, sorted_distances = reference_ranking(code, database_codes)
    np.testing.assert_array_equal(indices[row], order[:k])
    np.testing.assert_array_equal(distances[row], sorted_distances[:k])


def test_wide_keys_match_reference():
  # 260 bits need uint16 distances and 33,000 items 16 index bits: the sort
  # keys no longer fit 32 bits and fall back to uint64.
  case = random_case(5, 2, 33000, 260, "ids")
  assert metrics.mean_average_precision(*case) == pytest.approx(
      reference_map(*case), abs=1e-12)
  query_codes, _, database_codes, _ = case
  indices, distances = metrics.retrieve(query_codes, database_codes, k=20)
  for row, code in enumerate(query_codes):
    order, sorted_distances = reference_ranking(code, database_codes)
    np.testing.assert_array_equal(indices[row], order[:20])
    np.testing.assert_array_equal(distances[row], sorted_distances[:20])


def test_retrieve_rejects_bad_k():
  with pytest.raises(ValueError, match="Received: k=0"):
    metrics.retrieve(QUERY_CODES, DATABASE_CODES, k=0)
