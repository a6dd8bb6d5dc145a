"""Every flagfile under flags/ is a valid dhe_tf.train configuration."""

import glob
import os
import subprocess
import sys

_ROOT = os.path.join(os.path.dirname(__file__), "..")

_CHECK = r"""
import sys
from absl import flags
from dhe_tf import train, training
for path in sys.argv[1:]:
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["train", f"--flagfile={path}"])
  config = training.resolve(train.config_from_flags())
  training.validate(config)
  print(path, config.method, config.bits, config.epochs)
"""


def test_every_flagfile_parses_into_a_valid_config():
  paths = sorted(glob.glob(os.path.join(_ROOT, "flags", "*.flags")))
  assert len(paths) >= 7
  env = dict(os.environ, PYTHONPATH=_ROOT)
  result = subprocess.run([sys.executable, "-c", _CHECK, *paths],
                          capture_output=True, text=True, env=env, cwd=_ROOT,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert len(result.stdout.splitlines()) == len(paths)
