"""The trained model as a SavedModel for TF Serving.

    exporter  image bytes or pixels → bits, in one graph with explicit
              signatures, written in TF Serving's layout
"""
