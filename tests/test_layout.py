"""The layout shows the architecture, and keeps it: every module imports only from its own
layer or the ones below (function-level imports included), no import cycle, method modules hold no stage
bookkeeping of their own, and stages take their settings as arguments (CONTRIBUTING.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "selftrain"

LAYERS = [
    {"errors", "records", "faults"},
    {"artifacts", "metrics", "plugins", "report", "tracking", "ui"},
    {"config"},
    {"models"},
    {"data"},
    {"samplers"},
    {"verifiers"},
    {"tasks"},
    {"training"},
    {"stages"},
    {"methods"},
    {"runs"},
    {"api", "cli", "__main__", "__init__"},
]
"""The package's parts, lowest first: a part may import its own layer and the ones below."""


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, selftrain part) for every import of the package in a module, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "selftrain" else [f"selftrain.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "selftrain" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def _layer(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(p) for p in PACKAGE.rglob("*.py")}
    assert parts == set().union(*LAYERS), parts ^ set().union(*LAYERS)


def test_no_module_imports_a_part_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _layer(_part(path))
        for line, part in _imports(path):
            if _layer(part) > own:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports selftrain.{part}")
    assert not upward, "\n".join(upward)


def test_method_modules_leave_stage_bookkeeping_to_the_stages():
    """No method calls `ctx.stage` or `fingerprint` itself: each step is a shared stage."""
    found = []
    for path in sorted((PACKAGE / "methods").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "stage":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} calls .stage(")
            if isinstance(node, ast.Name) and node.id == "fingerprint":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} uses fingerprint")
    assert not found, "\n".join(found)


def test_stages_take_their_settings_as_arguments():
    """Only the run context reads the run's config; a stage gets the settings it uses."""
    found = [f"{p.name}:{n}" for p in sorted((PACKAGE / "stages").glob("*.py")) if p.name != "context.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if "ctx.cfg" in line]
    assert not found, found


def test_no_two_modules_open_with_the_same_sentence():
    openings: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        if not doc:
            continue
        first = doc.split(". ")[0].split("\n\n")[0].strip()
        assert first not in openings, f"{path.relative_to(PACKAGE)} opens like {openings[first]}: {first!r}"
        openings[first] = str(path.relative_to(PACKAGE))


def test_no_import_cycle():
    """No two modules import each other, lazily or not (the house tool, `../shared/tools`)."""
    import subprocess
    import sys

    tool = PACKAGE.parents[2] / "shared" / "tools" / "import_cycles.py"
    if not tool.is_file():
        pytest.skip(f"{tool} is absent")
    proc = subprocess.run([sys.executable, str(tool), str(PACKAGE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_methods_spell_no_file_names_and_do_no_path_arithmetic():
    """A stage returns what it wrote by name (`Artifact`, `Rows`), and reports read through the
    stages' readers (`stages.evaluation`, ...): a method never spells a stage's file name, builds
    an artifact by hand, or derives one path from another (docstrings and comments aside)."""
    found = []
    for path in sorted((PACKAGE / "methods").rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix() in ("methods/__init__.py", "methods/compat.py"):
            continue  # the registry and the old layouts' map, not methods
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if any(word.endswith((".jsonl", ".json")) for word in node.value.replace("`", " ").split()):
                    found.append(f"{where} spells a file name: {node.value!r}")
            if isinstance(node, ast.Attribute) and node.attr in ("with_name", "with_suffix", "parent"):
                found.append(f"{where} derives a path (.{node.attr})")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Artifact":
                found.append(f"{where} builds an Artifact by hand")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "path" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("run", "ctx"):
                found.append(f"{where} builds a path in the run folder ({node.func.value.id}.path)")
    assert not found, "\n".join(found)


def test_the_readme_layout_names_every_module_and_no_other():
    """README's layout tree is the package: each module's file name appears in it (a package's
    `__init__.py` and `__main__.py` by the names they hold), and every `name.py` it names exists."""
    import re

    readme = (PACKAGE.parents[1] / "README.md").read_text()
    tree = readme.split("## Layout", 1)[1].split("```", 2)[1].split("\nconfigs/")[0]  # the package's part
    files = {p.name for p in PACKAGE.rglob("*.py")} | {p.name for p in PACKAGE.rglob("*.html")}
    missing = sorted(name for name in files if name not in tree)
    named = set(re.findall(r"[\w]+\.(?:py|html)", tree))
    stale = sorted(named - files)
    assert not missing and not stale, f"README layout misses {missing}; names what is gone: {stale}"


def test_the_shared_config_and_the_top_level_stay_small():
    """config.py holds the sections several methods share (a method's or a stage's own settings
    live with it) and stays under 500 lines; the package's top level holds at most 14 modules."""
    assert len((PACKAGE / "config.py").read_text().splitlines()) < 500
    top = sorted(p.name for p in PACKAGE.glob("*.py") if not p.name.startswith("__"))
    assert len(top) <= 14, top
