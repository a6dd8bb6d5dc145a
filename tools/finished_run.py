"""A finished dhe_tf.train run as the analysis tools read it (class_codes,
decompose_map): the flags that name it, and its single-label data."""

from absl import flags

from dhe_tf.core.errors import ConfigError
from dhe_tf.evaluation import evaluator


def define_flags():
  """--model_dir and --eval_batch_size (only when a tool runs as a script,
  so that tests can import several tools)."""
  flags.DEFINE_string("model_dir", None, "A finished dhe_tf.train run.")
  flags.DEFINE_integer("eval_batch_size", 512, "Images per encoding batch.")
  flags.mark_flag_as_required("model_dir")


def single_label_data(run, tool):
  """The dataset of `run` (dhe_tf.runs.run_dir.load_run), its queries and
  database checked against the run's split; ConfigError, naming `tool`,
  when its labels are multi-label."""
  data = evaluator.checked_data(run)
  if data.multi_label:
    raise ConfigError(f"{tool} reads single-label runs.")
  return data
