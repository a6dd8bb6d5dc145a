"""The README and the guides in docs/: no dead link, no dead anchor.

The README is the front page (under 200 lines) and links every guide; every
relative link of a page points at a file or folder that exists, and every
`#anchor` at a heading of the page it names, by GitHub's rule for heading
ids (slug). Plain text parsing: no TensorFlow, a fraction of a second.
"""

import glob
import os
import re
import urllib.parse

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(_ROOT, "README.md")
GUIDES = sorted(glob.glob(os.path.join(_ROOT, "docs", "*.md")))
PAGES = [README] + GUIDES
MAX_README_LINES = 200

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target), target optionally in <...> and followed
# by a "title".
_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?"
                   r"(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = ("http:", "https:", "mailto:", "ftp:")


def _name(path):
  return os.path.relpath(path, _ROOT)


def _prose_lines(text):
  """(line number, line) of a Markdown page outside fenced code blocks."""
  fence = None
  for number, line in enumerate(text.splitlines(), start=1):
    match = _FENCE.match(line)
    if fence:
      if match and match.group(1)[0] == fence[0] and len(
          match.group(1)) >= len(fence):
        fence = None
      continue
    if match:
      fence = match.group(1)
      continue
    yield number, line


def slug(heading):
  """GitHub's id of a heading: the text without inline code ticks and link
  syntax, lowercase, punctuation removed except hyphens (letters, digits and
  underscores of any script stay), each space a hyphen."""
  text = _CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)
  text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
  text = re.sub(r"<[^>]+>", "", text)
  text = text.strip().lower()
  text = re.sub(r"[^\w\- ]", "", text)
  return text.replace(" ", "-")


def anchors(text):
  """The ids of the headings of a page; a repeated one gets -1, -2, ..."""
  seen, ids = {}, set()
  for _, line in _prose_lines(text):
    match = _HEADING.match(line)
    if not match:
      continue
    base = slug(match.group(2))
    count = seen.get(base, 0)
    seen[base] = count + 1
    ids.add(base if count == 0 else f"{base}-{count}")
  return ids


def links(text):
  """(line number, target) of every inline link and image outside code."""
  found = []
  for number, line in _prose_lines(text):
    prose = _CODE_SPAN.sub(lambda m: "x" * len(m.group(0)), line)
    for link in _LINK.finditer(prose):
      found.append((number, link.group(2)))
  return found


def _read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


def dead_links(page):
  """'line N: target (why)' for each link of `page` that leads nowhere."""
  text = _read(page)
  dead = []
  for number, target in links(text):
    if not target or target.startswith(_EXTERNAL):
      continue
    path, _, anchor = target.partition("#")
    path = urllib.parse.unquote(path)
    if path:
      resolved = os.path.normpath(os.path.join(os.path.dirname(page), path))
      if not os.path.exists(resolved):
        dead.append(f"line {number}: {target} (no file {_name(resolved)})")
        continue
    else:
      resolved = page
    if anchor and resolved.endswith(".md"):
      anchor = urllib.parse.unquote(anchor)
      if anchor not in anchors(_read(resolved)):
        dead.append(f"line {number}: {target} (no heading #{anchor} in "
                    f"{_name(resolved)})")
  return dead


@pytest.mark.parametrize("heading, expected", [
    ("Protocol `1k5k`", "protocol-1k5k"),
    ("What a run produces", "what-a-run-produces"),
    ("Methods: DHE and the baselines", "methods-dhe-and-the-baselines"),
    ("Running on Dataflow / Flink / Spark", "running-on-dataflow--flink--spark"),
    ("Where the mAP goes: `tools/decompose_map.py`",
     "where-the-map-goes-toolsdecompose_mappy"),
    ("See [the guide](docs/x.md) now", "see-the-guide-now"),
    ("Größe × Zeit", "größe--zeit"),
    ("A damaged index is named, not crashed on",
     "a-damaged-index-is-named-not-crashed-on"),
])
def test_slug_follows_githubs_rule(heading, expected):
  assert slug(heading) == expected


def test_repeated_headings_get_numbered_ids():
  text = "# Speed\n\n## Speed\n\n```\n# Speed\n```\n\n### Speed\n"
  assert anchors(text) == {"speed", "speed-1", "speed-2"}


def test_links_outside_code_are_found():
  text = ("[a](x.md) `[b](y.md)` ![c](z.png \"t\")\n```\n[d](w.md)\n```\n"
          "[e `code`](v.md#h)\n")
  assert links(text) == [(1, "x.md"), (1, "z.png"), (5, "v.md#h")]


@pytest.mark.parametrize("page", [_name(p) for p in PAGES])
def test_no_dead_links_or_anchors(page):
  dead = dead_links(os.path.join(_ROOT, page))
  assert not dead, f"{page}: dead links:\n" + "\n".join(dead)


def test_readme_is_a_front_page():
  lines = len(_read(README).splitlines())
  assert lines < MAX_README_LINES, (
      f"README.md has {lines} lines; the front page stays under "
      f"{MAX_README_LINES}: move the detail to a guide in docs/")


@pytest.mark.parametrize("guide", [_name(p) for p in GUIDES])
def test_readme_links_every_guide(guide):
  linked = set()
  for _, target in links(_read(README)):
    path = target.partition("#")[0]
    if path and not path.startswith(_EXTERNAL):
      linked.add(os.path.normpath(os.path.join(_ROOT, path)))
  assert os.path.join(_ROOT, guide) in linked, (
      f"README.md does not link {guide}")


def test_there_are_guides():
  assert GUIDES, "docs/ holds no guide"
