"""dhe_tf: deep supervised hashing for image retrieval in Keras 3 / TensorFlow."""

import setuptools

setuptools.setup(
    name="dhe_tf",
    version="0.1.0",
    description=("Deep Hamming Embedding hashing: train a CNN that maps images "
                 "to short binary codes, evaluate retrieval, export, search."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["dhe_tf", "dhe_tf.*"]),
    package_data={"dhe_tf.data": ["fashion_mnist_1k.npz",
                                  "fashion_mnist_1k.LICENSE"],
                  # The search service's page (dhe_tf.serve).
                  "dhe_tf.service": ["static/*.html"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",  # 2.16 is the first release built on Keras 3.
        "keras>=3",
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets 4.9.10 imports it without declaring it.
        "importlib_resources",
        "numpy>=2",  # np.bitwise_count for popcount.
        "absl-py",
        "tensorboard",
        "matplotlib",
        # The default search backend (dhe_tf.index): IndexBinaryFlat,
        # IndexBinaryMultiHash; tested with 1.15.1.
        "faiss-cpu>=1.8",
    ],
    extras_require={
        # The browser test drives Debian's chromium and chromium-driver
        # (apt-get, see .ci/run); requests talks to the service under test.
        # pytest-xdist: the suite runs in two processes (setup.cfg).
        "test": ["pytest", "pytest-xdist", "selenium>=4.10", "requests"],
        # python -m dhe_tf.serve: FastAPI on uvicorn; python-multipart parses
        # uploads; Pillow reads image headers (size, format) before decoding.
        "serve": ["fastapi>=0.110", "uvicorn>=0.29", "python-multipart",
                  "pillow"],
        # The Milvus search backend (dhe_tf.index), tested against embedded
        # Milvus Lite. Milvus Lite 3.x dropped binary vectors (and with them
        # the HAMMING metric), so it stays on 2.5; pymilvus[milvus_lite] 2.5
        # would pull Lite 3.x, hence the explicit pin. Lite 2.5 imports
        # pkg_resources, which setuptools 81 removes.
        "milvus": ["pymilvus==2.5.18", "milvus-lite==2.5.1", "setuptools<81"],
        # python -m dhe_tf.encode: the Apache Beam pipeline from images to
        # Parquet code shards (read back by pyarrow, which tensorflow-datasets
        # already needs). Checked with pip on Python 3.11: apache-beam 2.77.0
        # resolves with TensorFlow 2.21. The compromise: Beam caps
        # protobuf < 7, pillow < 13, pyarrow < 26 and numpy < 2.5, which
        # TensorFlow 2.21 does not (it takes protobuf 6.31.1 to < 8), so
        # with this extra pip installs protobuf 6.33, pillow 12.3 and
        # pyarrow 25. No Beam cloud extra: add apache-beam[gcp] (Dataflow,
        # gs://), [aws] (s3://) or [hadoopfilesystem] to read from there.
        "beam": ["apache-beam==2.77.0", "pyarrow>=14,<26"],
    },
    license="Apache-2.0",
)
