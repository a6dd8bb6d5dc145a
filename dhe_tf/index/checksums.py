"""Checksums of an index's files: a damaged index is named, not crashed on.

`build` records, in INDEX/index.json, the size and SHA-256 of every file
that it and the backend wrote (codes.npy, faiss.index, milvus.db...), and
for a file over SAMPLE_ABOVE bytes also the SHA-256 of SAMPLE_BLOCKS blocks
spread over it (its first and last included). `open_index` verifies them
before any of those files is read. A file that is missing, truncated,
corrupt or from another build (two builds' files mixed by hand or by a copy
that stopped half-way) gives one DamagedIndexError that names the file and
says to rebuild, instead of a FAISS RuntimeError or a NumPy traceback.
index.json itself cannot hold its own checksum: a corrupt one fails to
parse, or lacks a field, and is named the same way.

Two depths (`verify`): "full" reads every byte (`python -m dhe_tf.search
verify`); "sample", what opening does, checks every size, the whole of each
small file and the sampled blocks of each large one. Why: an index of 10^8
codes is gigabytes, and SHA-256 reads ~1.4 GB/s here, so a full check made
opening take as long as reading the whole index, while a file from another
build, truncated or zero-filled differs in nearly every block. A few flipped
bytes inside a large file can pass "sample"; what an index returns stays
bounded by its checks (ids within 0..N-1), and "full" finds them.

Hidden files (".name") are not recorded: a backend may keep lock files next
to its data while an index is open (Milvus Lite does).
"""

import hashlib
import json
import os

import numpy as np

from dhe_tf.core.errors import DamagedIndexError

MANIFEST = "index.json"
# What index.json must hold for an index to be opened.
REQUIRED_FIELDS = ("format", "bits", "count", "backend", "fingerprint",
                   "class_names", "settings", "files")
_CHUNK = 1 << 20
# Files larger than this are checked by sampled blocks when an index opens.
SAMPLE_ABOVE = 64 << 20
SAMPLE_BLOCKS = 64
_BLOCK = 64 << 10
DEPTHS = ("sample", "full")


def sha256(path):
  """SHA-256 (hex) of a file, read in 1 MiB chunks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(_CHUNK), b""):
      digest.update(chunk)
  return digest.hexdigest()


def sample_sha256(path):
  """SHA-256 (hex) of SAMPLE_BLOCKS blocks of 64 KiB evenly spread over the
  file, its first and last block included."""
  size = os.path.getsize(path)
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for start in sorted({int(v) for v in np.linspace(
        0, max(0, size - _BLOCK), SAMPLE_BLOCKS)}):
      f.seek(start)
      digest.update(f.read(_BLOCK))
  return digest.hexdigest()


def record(directory):
  """{relative path: {"bytes", "sha256"}} of every non-hidden file under
  `directory` but index.json, for index.json's "files"."""
  files = {}
  for root, dirs, names in os.walk(directory):
    dirs[:] = sorted(name for name in dirs if not name.startswith("."))
    for name in sorted(names):
      path = os.path.join(root, name)
      relative = os.path.relpath(path, directory).replace(os.sep, "/")
      if name.startswith(".") or relative == MANIFEST:
        continue
      files[relative] = {"bytes": os.path.getsize(path),
                         "sha256": sha256(path)}
      if files[relative]["bytes"] > SAMPLE_ABOVE:
        files[relative]["sample_sha256"] = sample_sha256(path)
  return files


def _damaged(path, what):
  return DamagedIndexError(f"The index file {path} {what}: rebuild the index "
                           "with `python -m dhe_tf.search build`.")


def read_manifest(directory):
  """index.json of the index at `directory`, checked to parse.

  Raises:
    DamagedIndexError: index.json is not JSON, or not an object.
  """
  path = os.path.join(directory, MANIFEST)
  try:
    with open(path, encoding="utf-8") as f:
      manifest = json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise _damaged(path, f"is corrupt (not valid JSON: {e})") from e
  if not isinstance(manifest, dict):
    raise _damaged(path, "is corrupt (not a JSON object)")
  return manifest


def check_fields(directory, manifest):
  """Raises DamagedIndexError unless index.json holds REQUIRED_FIELDS."""
  missing = [field for field in REQUIRED_FIELDS if field not in manifest]
  if missing:
    raise _damaged(os.path.join(directory, MANIFEST),
                   f"is corrupt (it lacks {', '.join(missing)})")


def verify(directory, files, depth="full"):
  """Checks each recorded file's size and SHA-256.

  Args:
    directory: the index directory.
    files: index.json's "files", as `record` made it.
    depth: "full" (every byte) or "sample" (large files by their sampled
      blocks, see the module docstring).

  Raises:
    DamagedIndexError: a file missing, of another size, or of another
      checksum; the message names it.
  """
  if not isinstance(files, dict) or not files:
    raise _damaged(os.path.join(directory, MANIFEST),
                   "is corrupt (it lists no files)")
  for relative, expected in sorted(files.items()):
    path = os.path.join(directory, *relative.split("/"))
    if not os.path.isfile(path):
      raise _damaged(path, "is missing")
    size = os.path.getsize(path)
    if size != expected["bytes"]:
      what = "truncated" if size < expected["bytes"] else "longer than built"
      raise _damaged(path, f"is {what} ({size:,} bytes, index.json records "
                           f"{expected['bytes']:,})")
    sampled = depth == "sample" and "sample_sha256" in expected
    if (sample_sha256(path) if sampled else sha256(path)) != expected[
        "sample_sha256" if sampled else "sha256"]:
      raise _damaged(path, "does not match its checksum in index.json "
                           "(corrupt, or from another build)")
