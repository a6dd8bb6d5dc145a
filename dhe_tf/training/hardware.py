"""How a run uses its hardware: tf.distribute strategy, XLA, mixed precision.

Each setting comes from a flag and is resolved here against the machine
(GPUs present, their compute capability, the strategy) into what is really
in effect and why, so the trainer can log it at start and record it in
RUN/metrics.json. Keras 3 silently turns XLA off in some cases; resolving it
here first makes those cases visible.
"""

import contextlib
import json
import os

import keras
import tensorflow as tf

from dhe_tf.core.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multi_worker")
JIT_CHOICES = ("auto", "true", "false")
# What Model.compile(jit_compile=...) takes for each choice.
JIT_VALUES = {"auto": "auto", "true": True, "false": False}
MIXED_PRECISION_CHOICES = ("none", "auto", "mixed_float16", "mixed_bfloat16")


def gpus():
  """The physical GPUs TensorFlow sees."""
  return tf.config.list_physical_devices("GPU")


def check(strategy, jit_compile, mixed_precision):
  """Raises ConfigError naming the first unknown value."""
  for name, value, choices in (
      ("strategy", strategy, STRATEGIES),
      ("jit_compile", jit_compile, JIT_CHOICES),
      ("mixed_precision", mixed_precision, MIXED_PRECISION_CHOICES)):
    if value not in choices:
      raise ConfigError(f"Unknown {name} {value!r}. "
                        f"Available: {', '.join(choices)}")
  if strategy == "multi_worker" and not os.environ.get("TF_CONFIG"):
    raise ConfigError("strategy=multi_worker needs the TF_CONFIG environment "
                      "variable (the cluster and this task; see docs/scaling.md, "
                      "'Several machines').")


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
  """MultiWorkerMirroredStrategy that Keras 3's fit() can use.

  Keras 3.15 calls `strategy.reduce` on a nested batch (to learn its shapes)
  and with axis=0 on scalar logs; tf.distribute rejects both when there is
  more than one worker (keras-team/keras#20585). This reduces each tensor of
  a structure separately and drops the axis of scalars; the values are the
  same that a single-worker run computes.
  """

  def reduce(self, reduce_op, value, axis):
    parent = super()
    def one(v):
      rank = self.experimental_local_results(v)[0].shape.rank
      return parent.reduce(reduce_op, v, axis=None if rank == 0 else axis)
    return tf.nest.map_structure(one, value)


def make_strategy(name):
  """The tf.distribute strategy of --strategy=name.

  "multi_worker" reads the cluster from TF_CONFIG and must be created before
  TensorFlow runs anything else in the process.
  """
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    return _MultiWorkerMirroredStrategy()
  return tf.distribute.get_strategy()


def is_chief(strategy):
  """Whether this process writes the run directory.

  The chief is the task of type "chief", or worker 0 when the cluster has
  no chief; every process of a single-machine strategy is the chief.
  """
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
  return (resolver.task_type == "worker" and resolver.task_id == 0 and
          "chief" not in cluster)


def task_name(strategy):
  """"worker_1", … for a non-chief task (used to name its own files)."""
  resolver = strategy.cluster_resolver
  return f"{resolver.task_type}_{resolver.task_id}"


def resolve_jit_compile(setting, *, strategy_name):
  """Decides whether the train step is XLA-compiled.

  Args:
    setting: "auto", "true" or "false" (--jit_compile).
    strategy_name: one of STRATEGIES.

  Returns:
    (use_xla bool, reason str). "auto" means XLA on a GPU without a
    tf.distribute strategy, which is also Keras' own rule for "auto".

  Raises:
    ConfigError: "true" with a multi-replica strategy on a CPU-only machine:
      XLA has no CPU collectives, the all-reduce of the gradients would fail
      after the model is built.
  """
  distributed = strategy_name != "default"
  have_gpu = bool(gpus())
  if setting == "false":
    return False, "jit_compile=false"
  if setting == "true":
    if distributed and not have_gpu:
      raise ConfigError(f"jit_compile=true with strategy={strategy_name} "
                        "needs GPUs: XLA cannot compile the all-reduce of "
                        "gradients on CPUs. Use --jit_compile=auto or false.")
    return True, "jit_compile=true"
  if not have_gpu:
    return False, "jit_compile=auto and no GPU: XLA pays off on GPUs"
  if distributed:
    return False, (f"jit_compile=auto with strategy={strategy_name}: Keras "
                   "compiles distributed steps without XLA unless "
                   "--jit_compile=true")
  return True, "jit_compile=auto and a GPU is present"


def resolve_mixed_precision(setting):
  """The Keras dtype policy of --mixed_precision, and why.

  "auto" is mixed_float16 on GPUs with tensor cores (compute capability
  ≥ 7.0; Keras then scales the loss against float16 underflow) and float32
  elsewhere. mixed_bfloat16 (Ampere and later GPUs, TPUs, recent CPUs) needs
  no loss scaling. Either way variables, the hash layer, the classifier,
  the losses and the metrics stay float32.

  Returns:
    (policy name, reason str).
  """
  if setting == "none":
    return "float32", "mixed_precision=none"
  if setting != "auto":
    return setting, f"mixed_precision={setting}"
  capabilities = [tf.config.experimental.get_device_details(gpu).get(
      "compute_capability", (0, 0)) for gpu in gpus()]
  if capabilities and min(capabilities) >= (7, 0):
    return "mixed_float16", (f"mixed_precision=auto and GPUs of compute "
                             f"capability {min(capabilities)}")
  return "float32", ("mixed_precision=auto and no GPU with tensor cores")


@contextlib.contextmanager
def dtype_policy(name):
  """Sets Keras' global dtype policy to `name` inside the block only.

  Layers take the global policy when they are built, so a model built in
  the block keeps it; the process's policy is restored afterwards.
  """
  previous = keras.mixed_precision.dtype_policy()
  keras.mixed_precision.set_dtype_policy(name)
  try:
    yield
  finally:
    keras.mixed_precision.set_dtype_policy(previous)
