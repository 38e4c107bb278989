"""The house's rules, read off the source: scripts over a library in packages by concern.

- no script imports another script (but train.py's hand-over to train_curve.py, the original's
  ``train.py --curve`` spelling);
- no import cycle between modules, nor between the top-level packages and modules;
- ``runtime`` imports nothing of ours above it; the library never imports ``cli``;
- every package's ``__init__.py`` opens with a docstring saying what it holds;
- no file over about 400 lines without a reason stated at its top.
"""
from __future__ import annotations

import ast
import glob
import os

from conftest import ROOT

SCRIPTS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "*.py")))
TOP_LEVEL_LIBRARY = {"data", "utils"}  # the library modules the project's brief keeps at the top
ALLOWED_SCRIPT_IMPORTS = {("train", "train_curve")}
PACKAGES = sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(ROOT, "*", "__init__.py")))
LIBRARY = {"models", "curves", "ensembles", "landscape", "alignment", "reports", "data", "utils"}


def modules() -> dict[str, str]:
    """Every module of ours (dotted name -> file), scripts and scripts/ included."""
    found = {}
    for path in glob.glob(os.path.join(ROOT, "*.py")) + glob.glob(os.path.join(ROOT, "*", "*.py")):
        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        if rel.startswith(("tests.", ".venv")):
            continue
        found[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


def imports(path: str, known: set[str]) -> set[str]:
    """The modules of ours that ``path`` imports, at any depth of the file (functions included)."""
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import submodule`` needs the submodule; other names, the module itself
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, set(known)) - {name} for name, path in known.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``edges`` as a list of nodes, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_script_imports_another_script():
    g = graph()
    offending = [(s, t) for s in SCRIPTS if s not in TOP_LEVEL_LIBRARY for t in g.get(s, ())
                 if t in SCRIPTS and t not in TOP_LEVEL_LIBRARY and (s, t) not in ALLOWED_SCRIPT_IMPORTS]
    offending += [(s, t) for s in g if s.startswith("scripts.") for t in g[s] if t.startswith("scripts.")]
    assert not offending


def test_no_import_cycle_between_modules_or_packages():
    g = graph()
    assert cycle(g) is None, cycle(g)
    # packages as one node each (the imports within a package do not count)
    top = {}
    for source, targets in g.items():
        node = source.split(".")[0]
        top.setdefault(node, set()).update(t.split(".")[0] for t in targets if t.split(".")[0] != node)
    assert cycle(top) is None, cycle(top)


def test_the_layers():
    g = graph()
    for source, targets in g.items():
        package = source.split(".")[0]
        if package == "runtime":
            assert all(t.startswith("runtime") for t in targets), (source, targets)
        if package in LIBRARY:
            assert not any(t.split(".")[0] == "cli" for t in targets), (source, targets)


def test_every_package_says_what_it_holds():
    for package in PACKAGES:
        if package in ("tests", "scripts"):
            continue
        doc = ast.get_docstring(ast.parse(open(os.path.join(ROOT, package, "__init__.py")).read()))
        assert doc and len(doc.split()) >= 8, package


def test_long_files_state_why():
    for path in modules().values():
        lines = open(path).read().splitlines()
        if len(lines) > 420:
            head = "\n".join(lines[:40]).lower()
            assert "long" in head or "lines" in head, f"{os.path.relpath(path, ROOT)}: {len(lines)} lines, no reason given"
