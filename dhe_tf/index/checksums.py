"""Checksums of an index's files: a damaged index is named, not crashed on.

`build` records, in INDEX/index.json, the size and SHA-256 of every file
that it and the backend wrote (codes.npz, faiss.index, milvus.db...);
`open_index` verifies them before any of those files is read. A file that is
missing, truncated, corrupt or from another build (two builds' files mixed
by hand or by a copy that stopped half-way) gives one DamagedIndexError that
names the file and says to rebuild, instead of a FAISS RuntimeError or a
NumPy traceback. index.json itself cannot hold its own checksum: a corrupt
one fails to parse, or lacks a field, and is named the same way.

Hidden files (".name") are not recorded: a backend may keep lock files next
to its data while an index is open (Milvus Lite does).
"""

import hashlib
import json
import os

from dhe_tf.core.errors import DamagedIndexError

MANIFEST = "index.json"
# What index.json must hold for an index to be opened.
REQUIRED_FIELDS = ("format", "bits", "count", "backend", "fingerprint",
                   "class_names", "settings", "files")
_CHUNK = 1 << 20


def sha256(path):
  """SHA-256 (hex) of a file, read in 1 MiB chunks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(_CHUNK), b""):
      digest.update(chunk)
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


def verify(directory, files):
  """Checks each recorded file's size and SHA-256.

  Args:
    directory: the index directory.
    files: index.json's "files", as `record` made it.

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
    if sha256(path) != expected["sha256"]:
      raise _damaged(path, "does not match its checksum in index.json "
                           "(corrupt, or from another build)")
