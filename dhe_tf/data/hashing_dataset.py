"""HashingDataset: one dataset under one protocol, what training and
evaluation consume (dhe_tf.data.datasets builds them)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class HashingDataset:
  """One dataset under one protocol.

  Attributes:
    name: registry name, e.g. "embedded".
    parts: "train", "query", "database" -> unbatched tf.data.Dataset of
      (image uint8 [H, W, C], label float32 [C]).
    split: part name -> int64 indices into the source images, or, for
      image-list datasets, str image paths as the lists write them; the
      i-th element of parts[part] is always split[part][i]. Image-list
      datasets add "skipped": "list:line: reason" of each entry dropped
      with on_bad_image="skip", when there are any; protocol "unseen" adds
      "seen_classes": the class ids of the training images. Written into the
      run directory so a run can be reproduced by another tool.
    class_names: one name per label column.
    multi_label: whether an image may carry several labels.
    topk: default k of mAP@k; None means the whole database.
    image_shape: (H, W, C) of every image.
  """
  name: str
  parts: dict
  split: dict
  class_names: tuple
  multi_label: bool
  topk: int | None
  image_shape: tuple

  @property
  def num_classes(self):
    return len(self.class_names)
