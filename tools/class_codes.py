r"""How a finished run codes each class of its database: do classes collide?

    python tools/class_codes.py --model_dir=RUN      # ~30 s on 2 cores

For each class of the database: its majority code (bit k is 1 where at
least half of the class's codes have it), the share of the class's images
whose code is exactly that code, and how many distinct codes the class has;
then the Hamming distance between every two classes' majority codes (0: the
two classes share a code, so radius search and the top of every ranking mix
them) and the share of saturated activations (min(u, 1 − u) < 0.05).

Under protocol unseen this shows how a method codes classes it never
trained on: a network that puts every image on one of the seen classes'
codes maps two new classes that resemble the same seen class onto one code
(docs/research.md).
"""

from absl import app
from absl import flags
import numpy as np

from dhe_tf.core import codes as codes_lib
from dhe_tf.evaluation import diagnostics
from dhe_tf.core import errors
from dhe_tf.model import inference
from dhe_tf.runs import run_dir
import finished_run


def class_codes(u, class_ids):
  """Per class of the database, and between classes.

  Args:
    u: float [N, K], the database's activations.
    class_ids: int [N], the class of each database image.

  Returns:
    dict: "classes": [(class id, majority code uint8 [K], share on it,
    distinct codes)], "distances": int [C, C] between majority codes,
    "saturated": share of saturated activations.
  """
  codes = codes_lib.binarize(u)
  rows, majority = [], []
  for c in np.unique(class_ids):
    mine = codes[class_ids == c]
    code = (mine.mean(axis=0) >= 0.5).astype(np.uint8)
    share = float(np.mean(np.all(mine == code, axis=1)))
    rows.append((int(c), code, share, len(np.unique(mine, axis=0))))
    majority.append(code)
  majority = np.stack(majority).astype(np.int32)
  distances = np.abs(majority[:, None, :] - majority[None, :, :]).sum(axis=2)
  saturated = float(np.mean(np.minimum(u, 1 - u) < diagnostics.SATURATION))
  return dict(classes=rows, distances=distances, saturated=saturated)


def report(numbers, class_names):
  """Markdown of class_codes' numbers."""
  names = [class_names[c] for c, _, _, _ in numbers["classes"]]
  lines = ["| class | majority code | share on it | distinct codes | " +
           " | ".join(f"bits to {n}" for n in names) + " |",
           "|---" * (4 + len(names)) + "|"]
  for (c, code, share, distinct), row in zip(numbers["classes"],
                                             numbers["distances"]):
    lines.append(f"| {class_names[c]} | {''.join(map(str, code))} | "
                 f"{share:.2f} | {distinct} | " +
                 " | ".join(map(str, row)) + " |")
  lines.append(f"\nSaturated activations: {numbers['saturated']:.2f}")
  return "\n".join(lines)


def main(argv):
  del argv
  with errors.reported_in_one_line("class_codes"):
    run = run_dir.load_run(FLAGS.model_dir)
    data = finished_run.single_label_data(run, "class_codes")
    u, labels = inference.activations(run.model, data.parts["database"],
                                      batch_size=FLAGS.eval_batch_size)
    numbers = class_codes(u, labels.argmax(axis=1))
  print(report(numbers, data.class_names))


if __name__ == "__main__":
  finished_run.define_flags()
  FLAGS = flags.FLAGS
  app.run(main)
