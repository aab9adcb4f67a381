"""The dependency rule (docs: README's layout): `encoders` and `pipelines` are plug-in packages
that import nothing from the application `video_endpoint`; no two packages, and no two modules,
import each other. Read from the source (type-only imports count too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("encoders", "pipelines", "video_endpoint")


def imports_of(path: Path) -> set[str]:
    """The project modules `path` imports, as dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


GRAPH = {module_name(path): imports_of(path) for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def test_the_plug_in_packages_import_nothing_of_the_application():
    for module, imported in GRAPH.items():
        if module.split(".")[0] in ("encoders", "pipelines"):
            assert not {name for name in imported if name.startswith("video_endpoint")}, module
        if module.startswith("encoders"):
            assert not {name for name in imported if name.startswith("pipelines")}, module


def test_no_two_modules_import_each_other():
    modules = set(GRAPH)
    edges = {(module, name) for module, imported in GRAPH.items() for name in imported if name in modules}
    mutual = {tuple(sorted(edge)) for edge in edges if (edge[1], edge[0]) in edges and edge[0] != edge[1]}
    assert not mutual


def test_the_rule_holds_for_what_the_test_reads():
    """The reader sees the imports it checks: the application does import the plug-ins."""
    assert "pipelines.base" in GRAPH["video_endpoint.stages"] and "encoders.base" in GRAPH["pipelines.model"]
