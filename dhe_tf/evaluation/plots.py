"""Pictures of retrieval quality: the precision–recall curve and top results.

Matplotlib with the Agg backend (no display needed); each function writes one
PNG atomically and returns its bytes, which the trainer also logs to
TensorBoard.
"""

import io
import os

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

_RELEVANT = "#1a9850"
_IRRELEVANT = "#d73027"


def _save(figure, path):
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
  plt.close(figure)
  data = buffer.getvalue()
  if path is not None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  return data


def pr_curve(precision, recall, path, *, title):
  """Plots precision against recall over Hamming radii 0..K.

  Args:
    precision: float [K + 1], mean precision within radius r.
    recall: float [K + 1], mean recall within radius r.
    path: PNG file to write, or None to only return the bytes.
    title: the plot's title (dataset, bits, mAP).

  Returns:
    The PNG bytes.
  """
  figure, axes = plt.subplots(figsize=(5, 4.5))
  axes.plot(recall, precision, marker="o", markersize=3, color="#2c7bb6")
  for radius in (0, 2):
    if radius < len(recall):
      axes.annotate(f"r={radius}", (recall[radius], precision[radius]),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
  axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02),
           ylim=(0, 1.02), title=title)
  axes.grid(alpha=0.3)
  return _save(figure, path)


def _as_rgb(image):
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  return image


def retrievals(query_images, result_images, relevant, distances, path, *,
               title):
  """A grid: one row per query, its image then its top results.

  Args:
    query_images: uint8 [Q, H, W, C].
    result_images: uint8 [Q, k, H, W, C], the top-k database images.
    relevant: bool [Q, k], whether each result shares a label with its query.
    distances: int [Q, k], Hamming distance of each result to its query.
    path: PNG file to write, or None to only return the bytes.
    title: the figure's title.

  Results that share a label with the query get a green frame, the others
  a red one; each is captioned with its Hamming distance.

  Returns:
    The PNG bytes.
  """
  rows, k = relevant.shape
  figure, axes = plt.subplots(rows, k + 1, figsize=(1.3 * (k + 1), 1.45 * rows),
                              squeeze=False)
  cmap = "gray" if np.asarray(query_images).shape[-1] == 1 else None
  for row in range(rows):
    axes[row, 0].imshow(_as_rgb(query_images[row]), cmap=cmap)
    axes[row, 0].set_title("query", fontsize=8)
    for column in range(k):
      ax = axes[row, column + 1]
      ax.imshow(_as_rgb(result_images[row, column]), cmap=cmap)
      colour = _RELEVANT if relevant[row, column] else _IRRELEVANT
      for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)
      ax.set_title(f"d={distances[row, column]}", fontsize=8, color=colour)
  for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
  axes[0, 0].spines["left"].set_visible(True)
  figure.suptitle(title, fontsize=10)
  return _save(figure, path)
