"""The package's shape: no import cycles, no reaching into another package's private names,
and a light ``import classwise``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

import classwise

PACKAGE = Path(classwise.__file__).parent


def test_no_import_cycles_counting_imports_inside_functions():
    graph = grimp.build_graph("classwise", exclude_type_checking_imports=True)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append(" -> ".join((module, *back)))
    assert cycles == []


def _area(module: str) -> str:
    """``classwise.search.find`` -> ``classwise.search``; top-level modules stand alone."""
    return ".".join(module.split(".")[:2])


def test_no_module_imports_another_packages_private_names():
    reaching = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("classwise", *path.relative_to(PACKAGE).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("classwise"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private and _area(node.module) != _area(module):
                    reaching.append(f"{module} imports {', '.join(private)} from {node.module}")
    assert reaching == []


def test_import_classwise_loads_no_plotting_library():
    code = "import sys, classwise; print(sorted(m for m in sys.modules if 'matplotlib' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
