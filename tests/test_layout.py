"""The package's shape: imports follow the data's path, modules stay small.

docs/code.md: each module imports only from its own layer or the layers
above it in LAYERS; evaluation, export and search never reach training code.
"""

import ast
import glob
import os

import pytest

_PACKAGE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "dhe_tf")

# `python -m dhe_tf.<command>`: the only modules at the package's top.
COMMANDS = ("train", "evaluate", "export", "search", "serve", "encode")
# The parts, in the data's path; each folder's __init__ names its modules.
FOLDERS = ("core", "data", "model", "losses", "evaluation", "training",
           "runs", "saved_model", "encoding", "index", "service")

LAYERS = (
    ("core.*", "data", "evaluation", "training", "runs", "saved_model",
     "encoding", "service"),
    ("data.*",),
    ("model", "model.heads", "model.network", "losses.*", "evaluation.metrics",
     "evaluation.diagnostics", "evaluation.plots"),
    ("model.inference",),
    ("evaluation.validation", "training.callbacks"),
    ("training.methods", "training.optimization", "training.hardware"),
    ("runs.config",),
    ("runs.run_dir",),
    ("evaluation.evaluator", "training.objective"),
    ("training.trainer",),
    ("saved_model.*", "encoding.shards"),
    ("encoding.inputs", "encoding.pipeline", "index.*"),
    ("service.*",),
    COMMANDS + ("__init__",),
)
# The training loop and its compiled objective.
TRAINING_CODE = ("training.trainer", "training.objective")
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


@pytest.mark.parametrize("name", ["evaluation.evaluator",
                                  "saved_model.exporter", "index.searcher",
                                  "runs.run_dir", "model.inference", "index",
                                  "encoding.pipeline", "encode",
                                  "evaluate", "export", "search",
                                  "service.engine", "service.http_api",
                                  "serve"])
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
  # The one table of settings grows with them.
  limit = {"evaluation.metrics": 600, "runs.config": 450}.get(name, MAX_LINES)
  assert lines <= limit, f"dhe_tf/{name}: {lines} lines"


def test_the_top_holds_the_commands_and_the_folders_the_parts():
  top = sorted(f[:-3] for f in os.listdir(_PACKAGE)
               if f.endswith(".py") and f != "__init__.py")
  assert top == sorted(COMMANDS)
  folders = sorted(name for name in os.listdir(_PACKAGE)
                   if os.path.isfile(os.path.join(_PACKAGE, name,
                                                  "__init__.py")))
  assert folders == sorted(FOLDERS)


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_folder_says_what_it_holds(folder):
  with open(os.path.join(_PACKAGE, folder, "__init__.py"),
            encoding="utf-8") as f:
    docstring = ast.get_docstring(ast.parse(f.read()))
  assert docstring, f"dhe_tf/{folder}/__init__.py has no docstring"
  for path in glob.glob(os.path.join(_PACKAGE, folder, "*.py")):
    module = os.path.basename(path)[:-3]
    if module != "__init__":
      assert module in docstring, (
          f"dhe_tf/{folder}/__init__.py does not name its module {module}")
