"""Datasets: sources, hashing splits and tf.data pipelines."""
