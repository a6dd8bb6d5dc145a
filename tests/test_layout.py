"""The package's shape: imports follow the data's path, modules stay small.

README, "The code": each module imports only from its own layer or the layers
above it in LAYERS; evaluation, export and search never reach training code.
"""

import ast
import glob
import os

import pytest

_PACKAGE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "dhe_tf")

LAYERS = (
    ("errors", "downloads", "codes", "codewords", "metrics", "plots",
     "diagnostics",
     "batching"),
    ("data.*",),
    ("heads", "model", "losses", "baselines"),
    ("inference", "validation", "callbacks"),
    ("methods", "optimization", "hardware"),
    ("config",),
    ("run_dir",),
    ("evaluator", "objective"),
    ("trainer",),
    ("exporter", "index.*", "code_shards", "searcher", "encoding_inputs",
     "encoding_pipeline"),
    ("service_images", "service", "http_api"),
    ("train", "evaluate", "export", "search", "serve", "encode",
     "__init__"),
)
# The training loop and its compiled objective.
TRAINING_CODE = ("trainer", "objective")
# metrics.py is long for its checks and tie rules, each documented there.
# config.py is the one table of every setting.
MAX_LINES = 400


def _module_names():
  names = []
  for path in glob.glob(os.path.join(_PACKAGE, "**", "*.py"), recursive=True):
    name = os.path.relpath(path, _PACKAGE)[:-3].replace(os.sep, ".")
    names.append(name[:-len(".__init__")] if name.endswith(".__init__")
                 else name)
  return sorted(names)


def _layer(name):
  for number, layer in enumerate(LAYERS):
    for pattern in layer:
      if name == pattern or (pattern.endswith(".*") and
                             name.startswith(pattern[:-1])) or (
                                 pattern.endswith(".*") and
                                 name == pattern[:-2]):
        return number
  raise AssertionError(f"dhe_tf.{name} is in no layer of LAYERS")


def _imports(name):
  """The dhe_tf modules that module `name` imports."""
  path = os.path.join(_PACKAGE, *name.split("."))
  path = (os.path.join(path, "__init__.py") if os.path.isdir(path)
          else path + ".py")
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and (
        node.module == "dhe_tf" or node.module.startswith("dhe_tf.")):
      base = node.module[len("dhe_tf."):] if node.module != "dhe_tf" else ""
      for alias in node.names:
        candidate = f"{base}.{alias.name}".strip(".")
        found.add(candidate if candidate in MODULES else base)
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.startswith("dhe_tf."):
          found.add(alias.name[len("dhe_tf."):])
  return found - {"", name}


MODULES = _module_names()


@pytest.mark.parametrize("name", MODULES)
def test_imports_go_only_to_the_same_or_a_lower_layer(name):
  for imported in _imports(name):
    assert _layer(imported) <= _layer(name), (
        f"dhe_tf.{name} (layer {_layer(name)}) imports dhe_tf.{imported} "
        f"(layer {_layer(imported)})")


def _reachable(name):
  seen, todo = set(), [name]
  while todo:
    for imported in _imports(todo.pop()):
      if imported not in seen:
        seen.add(imported)
        todo.append(imported)
  return seen


@pytest.mark.parametrize("name", ["evaluator", "exporter", "searcher",
                                  "run_dir", "inference", "index",
                                  "encoding_pipeline", "encode",
                                  "evaluate", "export", "search",
                                  "service", "http_api", "serve"])
def test_evaluation_export_and_search_reach_no_training_code(name):
  assert not _reachable(name) & set(TRAINING_CODE), sorted(
      _reachable(name) & set(TRAINING_CODE))


@pytest.mark.parametrize("name", MODULES)
def test_modules_stay_small(name):
  path = os.path.join(_PACKAGE, *name.split("."))
  path = (os.path.join(path, "__init__.py") if os.path.isdir(path)
          else path + ".py")
  with open(path, encoding="utf-8") as f:
    lines = len(f.readlines())
  limit = 600 if name == "metrics" else MAX_LINES
  assert lines <= limit, f"dhe_tf/{name}: {lines} lines"
