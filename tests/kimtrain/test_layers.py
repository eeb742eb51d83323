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


# kimtrain's layers, bottom to top: a module imports only its own layer and the ones below it
LAYERS = [("config", "plugins"), ("data",), ("models",), ("training",), ("strategies", "calculator"),
          ("reporting", "validation"), ("experiment",), ("cli",), ("__init__", "__main__")]
RANK = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_violations(graph) -> list[str]:
    return sorted(f"{a} ({layer_of(a)}) imports {b} ({layer_of(b)})"
                  for a, deps in graph.items() for b in deps
                  if layer_of(a) != layer_of(b) and RANK[layer_of(b)] >= RANK[layer_of(a)])


def test_kimtrain_imports_go_down_its_layers():
    graph = module_graph("kimtrain")
    assert {layer_of(m) for m in graph} == set(RANK)  # every module belongs to a named layer
    assert layer_violations(graph) == []


def test_the_layer_check_finds_an_import_upwards():
    assert layer_violations({"kimtrain.data.graphs": {"kimtrain.training.trainer"},
                             "kimtrain.training.trainer": {"kimtrain.data.graphs"}}) == \
        ["kimtrain.data.graphs (data) imports kimtrain.training.trainer (training)"]


def kimlabel_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every kimlabel import in a file (`import kimlabel.x` gives (kimlabel.x, ''))."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "kimlabel":
            found += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.split(".")[0] == "kimlabel"]
    return found


def test_kimtrain_uses_kimlabel_through_its_public_api_only():
    import kimlabel
    uses = {(str(p.relative_to(REPO)), module, name) for p in (REPO / "kimtrain").rglob("*.py")
            for module, name in kimlabel_imports(p)}
    assert len(uses) > 10  # the scan sees kimtrain's imports of kimlabel
    private = sorted(u for u in uses if u[1] != "kimlabel" or u[2] not in kimlabel.__all__)
    assert private == []
    for name in kimlabel.__all__:  # every export resolves
        assert getattr(kimlabel, name) is not None


@pytest.mark.parametrize("prog", ["kimlabel", "kimtrain"])
def test_every_command_line_argument_has_help_and_every_command_an_example(prog):
    import argparse
    import importlib
    parser = importlib.import_module(f"{prog}.cli").build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert len(commands) >= 5
    for name, sub in commands.items():
        assert sub.format_help().rstrip().split("\n")[-1].strip().startswith(f"{prog} {name}"), name  # ends with an example
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{prog} {name} {action.option_strings or action.dest}: no help text"
