"""The dependency rule (docs: README's layout): `encoders` and `pipelines` are plug-in packages
that import nothing from the application `video_endpoint`; no two packages import each other, and
no modules import each other through a cycle of any length. Read from the source (type-only imports
count too)."""

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


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The import cycles of any length: the strongly connected components of more than one module
    (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next((t for t in targets if t in graph), None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_import_cycle_of_any_length():
    assert not cycles(GRAPH)


def test_cycles_finds_a_circle_of_three_and_nothing_in_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_every_error_envelope_is_written_in_errors_py():
    """`{"ok": False, "error": ...}` appears once, in `video_endpoint/errors.py`: every other module
    asks it (`envelope`, `envelope_of`, an error's `.envelope()`)."""
    written = []
    for path in (ROOT / "video_endpoint").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict) and any(
                    isinstance(key, ast.Constant) and key.value == "ok" and isinstance(value, ast.Constant)
                    and value.value is False for key, value in zip(node.keys, node.values, strict=True)):
                written.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert [place.split(":")[0] for place in written] == ["video_endpoint/errors.py"], written


def test_the_rule_holds_for_what_the_test_reads():
    """The reader sees the imports it checks: the application does import the plug-ins."""
    assert "pipelines.base" in GRAPH["video_endpoint.stages"] and "encoders.base" in GRAPH["pipelines.model"]
