"""Datasets: sources, hashing splits and tf.data pipelines.

    datasets     the registry DATASETS and the loaders
    hashing_dataset  HashingDataset: a dataset's parts, split and classes
    protocols    split rules (1k5k, unseen, ...) and their mAP@k
    splits       drawing and checking query / train / database indices
    images       image files: decoding, crops, checks
    folders      class folders (DIR/<class>/<image>): scan, check, split, load
    list_dataset --dataset=list: three given lists, or one list split
    image_list   list files (`path l0 … l{C-1}`): read, write, check
    image_checks whether an image file can be used (header, decoding, size)
    nuswide      NUS-WIDE lists from the official release
    idx_files    MNIST-style IDX files
    tfds_source  tensorflow-datasets sources (CIFAR-10, MNIST, ...)
    pipeline     tf.data batches for training and encoding
"""
