"""The registry of search backends, and the index format this version writes.

dhe_tf.index re-exports both; the builder and the reader share them.
"""

from dhe_tf.core.errors import ConfigError
from dhe_tf.index.distinct_backend import DistinctBackend
from dhe_tf.index.faiss_backend import FaissBackend
from dhe_tf.index.milvus_backend import MilvusBackend

# 2: index.json records the checksum of each file. 3: codes, sources and
# labels in memory-mapped files (dhe_tf.index.store), not codes.npz.
FORMAT = 3
# The registry: every search backend by name.
BACKENDS = {"faiss": FaissBackend, "milvus": MilvusBackend,
            "distinct": DistinctBackend}
# Exact, and many times faster than "faiss" on learned codes, which repeat;
# where codes barely repeat it stores and searches them as "faiss" does.
DEFAULT_BACKEND = "distinct"


def check_backend(backend):
  """Raises ConfigError unless `backend` names a registered backend."""
  if backend not in BACKENDS:
    raise ConfigError(f"Unknown backend {backend!r}. "
                      f"Available: {', '.join(BACKENDS)}")
