"""The scripts of tools/ as modules, for the tests that call them in-process."""

import importlib.util
import os

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")


def path(name):
  """tools/NAME.py."""
  return os.path.join(TOOLS, f"{name}.py")


def load(name):
  """tools/NAME.py executed as module `name` (its flags, if it defines them
  at import, land in absl's FLAGS)."""
  spec = importlib.util.spec_from_file_location(name, path(name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
