"""The packages' layers go one way: no module imports, directly or through others, a module that
imports it back (lazy imports inside functions count too)."""
import ast
from pathlib import Path

import pytest

from conftest import REPO


def imports_of(path: Path, package: str) -> set[str]:
    """Modules of `package` that the file imports anywhere (top level or inside functions)."""
    tree = ast.parse(path.read_text())
    here = path.relative_to(REPO).with_suffix("").parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = list(here[:-1]) if path.name != "__init__.py" else list(here[:-1])
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] == package}
    return found


def module_graph(package: str) -> dict[str, set[str]]:
    files = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (REPO / package).rglob("*.py")}
    return {mod: {m for m in imports_of(path, package) if m in files and m != mod and m != package}
            for mod, path in files.items()}


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize("package", ["kimlabel", "kimtrain"])
def test_no_import_cycles(package):
    graph = module_graph(package)
    assert len(graph) > 10 and any(graph.values())  # the scan sees the package's modules and imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
