"""dhe_tf: Deep Hamming Embedding hashing for image retrieval (Keras 3 / TF)."""

__version__ = "0.1.0"
