"""The HTTP search service (`python -m dhe_tf.serve`).

    engine    model + index kept loaded: batched encoding, search, reload
    http_api  the FastAPI routes, the page (static/index.html), OpenAPI
    uploads   uploaded images: size and format checks, thumbnails
    batching  the batcher of concurrent encodes, the readers-writer lock
"""
