"""Index damage for the tests of the service and the search command."""

import os

from dhe_tf import index as index_lib


def damage(index):
  """Flips 2 bytes in the middle of the largest file index.json records (the
  files differ by backend and format); returns its path."""
  files = index_lib.read_manifest(index)["files"]
  path = os.path.join(index, max(files, key=lambda f: files[f]["bytes"]))
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    flipped = bytes(255 - byte for byte in f.read(2))
    f.seek(-2, os.SEEK_CUR)
    f.write(flipped)
  return path
