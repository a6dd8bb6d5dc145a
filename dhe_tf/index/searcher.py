"""Search by image: a run's binary codes in an index, queried by Hamming distance.

`build_index` encodes a dataset part of a run, or image files, with the
run's model (as the exported SavedModel encodes them, dhe_tf.model.inference), or
reads the code shards of dhe_tf.encode (dhe_tf.encoding.shards), and stores the
codes in a dhe_tf.index backend; `query_index` finds the nearest
codes to images or to given codes. `python -m dhe_tf.search` is their
command line.

The run is read once (dhe_tf.runs.run_dir.load_run) and everything comes
from the Run it gives: the model, its fingerprint, the dataset part checked
against the run's split.
"""

import time

import numpy as np

from dhe_tf.core import checks
from dhe_tf.core import codes as codes_lib
from dhe_tf.encoding import shards as code_shards
from dhe_tf import index as index_lib
from dhe_tf.model import inference
from dhe_tf.runs import run_dir
from dhe_tf.core.errors import ConfigError


def _encode_part(run, part, batch_size):
  """(codes [N, K], sources str [N], labels [N, C], class names) of a part
  of the run's data, checked against its split (run_dir.Run.data)."""
  data = run.data(parts=(part,))
  if part not in data.parts:
    raise ConfigError(f"Unknown part {part!r}. "
                      f"Available: {', '.join(sorted(data.parts))}")
  codes, labels = inference.encode(run.model, data.parts[part],
                                   batch_size=batch_size)
  where = np.asarray(data.split[part])
  sources = (where.astype(str) if where.dtype.kind in "US" else
             np.char.add(f"{data.name}[", np.char.add(where.astype(str), "]")))
  return codes, sources, labels, data.class_names


def _from_codes(model_dir, codes_dir, index_path, backend, settings):
  """Indexes the code shards at `codes_dir` in id order, a shard at a time,
  after checking that the run's model made them; returns the manifest."""
  manifest, ids, batches = code_shards.stream_codes(codes_dir)
  if model_dir:
    run = run_dir.load_run(model_dir)
    checks.same_model(made=f"the codes at {codes_dir} were made",
                      bits=manifest["bits"],
                      fingerprint=manifest["fingerprint"],
                      model=f"the model of {run.path}", model_bits=run.bits,
                      model_fingerprint=run.fingerprint,
                      remedy="encode them again with its export")
  if not len(ids):
    raise ConfigError(f"The codes at {codes_dir} hold no code "
                      f"({manifest['rejects']} rejects).")
  class_names = manifest["class_names"]
  with index_lib.Builder(index_path, count=len(ids), bits=manifest["bits"],
                         fingerprint=manifest["fingerprint"],
                         class_names=class_names, with_sources=True,
                         backend=backend, settings=settings) as builder:
    for rows, sources, packed, labels in batches:
      builder.write(rows, packed, sources,
                    labels if class_names else None)
  return builder.manifest


def build_index(model_dir, index_path, *, images=(), part="database",
                from_codes=None, backend=index_lib.DEFAULT_BACKEND,
                settings=None, batch_size=256):
  """Encodes a run's dataset part, or image files, into an index; or
  indexes the code shards of dhe_tf.encode without encoding.

  Args:
    model_dir: a finished dhe_tf.train run (its directory, or the
      dhe_tf.runs.run_dir.Run read from it); with `from_codes` it may be
      None, else its model must be the one that made the codes.
    index_path: the index directory to write (an index there is replaced).
    images: image files or folders; empty for the dataset part `part`.
    part: "database", "query" or "train".
    from_codes: a codes directory of dhe_tf.encode, instead of encoding;
      the index holds its codes in id order (dhe_tf.encoding.shards).
    backend: one of dhe_tf.index.BACKENDS.
    settings: backend settings (see dhe_tf.index.build).
    batch_size: images per encoding batch.

  Returns:
    The index manifest.
  """
  index_lib.check_backend(backend)
  if from_codes:
    if images:
      raise ConfigError("Give --from_codes or --images, not both.")
    return _from_codes(model_dir, from_codes, index_path, backend, settings)
  run = run_dir.load_run(model_dir)
  if images:
    paths = inference.image_paths(images)
    codes = inference.encode_files(run.model, paths,
                                   center_crop=run.center_crop,
                                   batch_size=batch_size)
    sources, labels, class_names = paths, None, ()
  else:
    codes, sources, labels, class_names = _encode_part(run, part, batch_size)
  return index_lib.build(index_path, codes_lib.pack(codes), bits=run.bits,
                         fingerprint=run.fingerprint,
                         sources=sources, labels=labels,
                         class_names=class_names, backend=backend,
                         settings=settings)


def _query_codes(index, *, model_dir, images, codes, batch_size):
  """(names, packed queries) from images (encoded by the run) or codes."""
  if bool(images) == bool(codes):
    raise ConfigError("Give the queries as --images or as --codes (one of "
                      "them).")
  if codes:
    return list(codes), codes_lib.from_strings(codes, index.bits)
  if not model_dir:
    raise ConfigError("--images needs --model_dir: the run whose model "
                      "built the index.")
  run = run_dir.load_run(model_dir)
  checks.same_model(made=f"the index at {index.path} was built",
                    bits=index.bits, fingerprint=index.fingerprint,
                    model=f"the model of {run.path}", model_bits=run.bits,
                    model_fingerprint=run.fingerprint)
  paths = inference.image_paths(images)
  codes = inference.encode_files(run.model, paths, center_crop=run.center_crop,
                                 batch_size=batch_size)
  return paths, codes_lib.pack(codes)


def _neighbors(index, ids, distances):
  """[{"rank", "id", "distance", "source", "labels"}] of one query's hits,
  reading the sources and labels of these ids only; id -1 (an approximate
  backend's empty place) left out."""
  ids, distances = np.asarray(ids), np.asarray(distances)
  found = ids >= 0
  ids, distances = ids[found], distances[found]
  labels = index.labels_of(ids)
  return [{"rank": rank, "id": int(item), "distance": int(distance),
           "source": index.source(item),
           "labels": [name for name, on in zip(index.class_names, row) if on]}
          for rank, (item, distance, row) in enumerate(
              zip(ids, distances, labels), 1)]


def search_packed(index, queries, *, k=10, radius=None):
  """The neighbors of packed queries in an open index, as query_index
  gives them (dhe_tf.serve answers with the same function).

  Args:
    index: an open dhe_tf.index.Index.
    queries: packed uint8 [Q, ceil(K/8)].
    k: the number of nearest codes, ≥ 1 (when radius is None).
    radius: when given, every code within this distance instead.

  Returns:
    One list per query of {"rank", "id", "distance", "source", "labels"},
    ordered by (distance, id); places an approximate backend found no code
    for (id -1) are left out.
  """
  if radius is None:
    rows = zip(*index.search(queries, k))
  else:
    rows = index.radius_search(queries, radius)
  return [_neighbors(index, ids, distances) for ids, distances in rows]


def query_index(index_path, *, model_dir=None, images=(), codes=(), k=10,
                radius=None, batch_size=256):
  """Searches the index for images or codes.

  Args:
    index_path: an index built by `build_index` or dhe_tf.index.build.
    model_dir: the run that built the index (its directory or its
      run_dir.Run); needed with `images`.
    images: image files or folders to search for.
    codes: codes as strings of K characters 0 or 1, instead of images.
    k: the number of nearest codes (top-k search), ≥ 1.
    radius: when given, every code within this distance instead.
    batch_size: images per encoding batch.

  Returns:
    {"index", "bits", "k" or "radius", "results": [{"query": name,
    "neighbors": [{"rank", "id", "distance", "source", "labels"}]}]}, the
    neighbors ordered by (distance, id).
  """
  if radius is None:
    checks.positive_int("k", k)
  else:
    checks.non_negative_int("radius", radius)
  with index_lib.open_index(index_path) as index:
    names, queries = _query_codes(index, model_dir=model_dir, images=images,
                                  codes=codes, batch_size=batch_size)
    results = [{"query": name, "neighbors": neighbors}
               for name, neighbors in zip(
                   names, search_packed(index, queries, k=k, radius=radius))]
    mode = {"k": int(k)} if radius is None else {"radius": int(radius)}
    return {"index": index_path, "bits": index.bits, **mode,
            "results": results}


def verify_index(index_path):
  """Checks every byte of the index at `index_path` against index.json
  (opening checks sizes and samples only: dhe_tf.index.checksums).

  Returns:
    One line: what was checked, its size and the time it took.

  Raises:
    DamagedIndexError: a file that does not match; the message names it.
  """
  start = time.perf_counter()
  manifest = index_lib.read_manifest(index_path, verify="full")
  size = sum(entry["bytes"] for entry in manifest["files"].values())
  return (f"{index_path}: {manifest['count']:,} codes, "
          f"{len(manifest['files'])} files, every byte matches index.json "
          f"({size / 1e6:,.1f} MB in {time.perf_counter() - start:.1f} s)")


def format_table(found):
  """The results of query_index as a plain-text table, one row a neighbor."""
  header = ("query", "rank", "id", "distance", "source", "labels")
  rows = []
  for result in found["results"]:
    if not result["neighbors"]:
      rows.append((result["query"], "-", "-", "-",
                   f"(nothing within radius {found.get('radius')})", ""))
    for hit in result["neighbors"]:
      rows.append((result["query"], str(hit["rank"]), str(hit["id"]),
                   str(hit["distance"]), hit["source"],
                   ",".join(hit["labels"])))
  widths = [max(len(row[i]) for row in [header, *rows])
            for i in range(len(header))]
  return "\n".join("  ".join(cell.ljust(width) for cell, width in
                             zip(row, widths)).rstrip()
                   for row in [header, *rows])
