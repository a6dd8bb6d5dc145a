"""Encoding many images at once: the Apache Beam pipeline and its output.

    inputs    what the pipeline reads: image lists, folders, globs, TFRecords
    pipeline  the Beam pipeline: read, decode, encode with the export, write
    shards    the Parquet code shards and their manifest, read by the index
"""
