"""Shared test set-up: quiet TensorFlow, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA's CPU backend compiles without LLVM optimisation here: the tests check
# that training steps compile and compute the same numbers, not their speed
# (about half the compile time of a small_cnn step).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
