"""Retrieval quality: metrics, diagnostics, pictures, evaluators.

    metrics      mAP@k, precision / recall within a Hamming radius, P@N
                 (NumPy; ties broken by database index)
    diagnostics  what codes look like: saturation, bit balance, distinct
                 codes, distances within and between classes
    plots        precision-recall curve, queries with their top results
    validation   the validation score: held-out images retrieve each other
    evaluator    a run's retrieval metrics and pictures (metrics.json)
"""
