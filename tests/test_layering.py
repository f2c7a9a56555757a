"""Imports point one way (CONTRIBUTING.md "Layering"): a module imports only from its own layer or below, and no
imports go round in a circle, between modules or between packages.

Every module of `audiodiff/` is parsed with `ast`; every `import` / `from ... import` anywhere in it counts,
inside functions too (a lazy import is still a dependency), relative ones resolved against the module's package.
From these imports the tests build the graph `module -> modules it imports` and find its strongly connected
groups (Tarjan): a group of two or more modules is a cycle, reported as one shortest circle through it with the
file and line of each import. The same is done on the packages (`audiodiff.<name>`: `audiodiff.training`,
`audiodiff.runs`, ...; a top-level module is a package of its own), where an import between two packages is an
edge, so that `training -> evaluation -> training` fails even when no single module imports itself back.
"""
import ast
from collections import deque
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audiodiff"

# layer -> module prefixes; a module takes the layer of its longest matching prefix
LAYERS = {
    0: ("audiodiff.errors", "audiodiff.audio", "audiodiff.mel", "audiodiff.conditions", "audiodiff.jsonfile",
        "audiodiff.schedules", "audiodiff._check", "audiodiff.config", "audiodiff.device", "audiodiff.plots"),
    1: ("audiodiff.models", "audiodiff.vocoders", "audiodiff.objectives", "audiodiff.samplers", "audiodiff.guidance",
        "audiodiff.losses", "audiodiff.representations", "audiodiff.generation"),
    2: ("audiodiff.runs", "audiodiff.data"),
    3: ("audiodiff.training", "audiodiff.evaluation"),
    4: ("audiodiff.pipeline",),
    5: ("audiodiff", "audiodiff.cli", "audiodiff.serve", "audiodiff.__main__"),  # `audiodiff`: the re-exports
}
LAYER_NAMES = {0: "base", 1: "modules", 2: "run format + data", 3: "training + evaluation", 4: "pipeline",
               5: "entry points"}

# (importer, imported): upward imports that remain, each with its reason. None remain: keep it that way.
# (Cycles have no exceptions.)
EXCEPTIONS: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict:
    """Dotted module name -> source file, for every .py file under audiodiff/."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(name: str) -> int | None:
    best, layer = -1, None
    for lay, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), lay
    return layer


def _existing(name: str, modules) -> str:
    """The longest prefix of `name` that is a module of the package (`audiodiff.x.Name` -> `audiodiff.x`)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(name: str, source: str, is_package: bool, modules) -> list[tuple[str, int]]:
    """`(imported audiodiff module, line)` for every import statement in `source`, at any depth."""
    out = []
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(_existing(a.name, modules), node.lineno) for a in node.names if a.name.split(".")[0] == "audiodiff"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "audiodiff":
                continue
            for a in node.names:  # `from pkg import submodule` depends on the submodule, else on pkg
                sub = f"{base}.{a.name}"
                out.append((sub if sub in modules else _existing(base, modules), node.lineno))
    return sorted(out, key=lambda t: t[1])  # ast.walk goes breadth first: report in line order


def upward_imports(modules) -> list[tuple[str, int, str, int, int]]:
    """`(importer, line, imported, importer's layer, imported's layer)` for every import that points up."""
    bad = []
    for name, path in modules.items():
        own = layer_of(name)
        for target, line in imports_of(name, path.read_text(), path.name == "__init__.py", modules):
            theirs = layer_of(target)
            if own is not None and theirs is not None and theirs > own:
                bad.append((name, line, target, own, theirs))
    return bad


def import_graph(modules) -> dict[str, dict[str, int]]:
    """Module -> `{module it imports: line of its first import}`, for every module of the package (itself left out)."""
    graph = {}
    for name, path in modules.items():
        edges = {}
        for target, line in imports_of(name, path.read_text(), path.name == "__init__.py", modules):
            if target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def package_of(name: str) -> str:
    """The package a module belongs to for the package cycles: `audiodiff.<first name>` (`audiodiff` itself alone)."""
    return ".".join(name.split(".")[:2])


def package_graph(graph) -> dict[str, dict[str, tuple[str, int, str]]]:
    """Package -> `{package it imports: (importing module, line, imported module)}` (the first such import)."""
    out: dict[str, dict] = {}
    for name in sorted(graph):
        edges = out.setdefault(package_of(name), {})
        for target, line in sorted(graph[name].items(), key=lambda t: t[1]):
            if package_of(target) != package_of(name):
                edges.setdefault(package_of(target), (name, line, target))
    return out


def strongly_connected(graph) -> list[list[str]]:
    """The groups of two or more nodes that all reach each other (Tarjan), each sorted, the groups sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def shortest_cycle(graph, group: list[str]) -> list[str]:
    """A shortest circle `[a, b, ..., a]` inside `group` (a strongly connected group) through its first node."""
    start, inside = group[0], set(group)
    came_from = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v]):
            if w == start:
                path = [v]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                return [start] + path[::-1][1:] + [start]
            if w in inside and w not in came_from:
                came_from[w] = v
                queue.append(w)
    raise AssertionError(f"{group} is not strongly connected")


def cycles(graph) -> list[list[str]]:
    """One shortest circle per strongly connected group of `graph` (node -> its successors)."""
    return [shortest_cycle(graph, group) for group in strongly_connected(graph)]


def _where(modules, name: str, line: int) -> str:
    return f"{PACKAGE.name}/{modules[name].relative_to(PACKAGE).as_posix()}:{line}"


def test_every_module_has_a_layer():
    missing = sorted(n for n in all_modules() if layer_of(n) is None)
    assert not missing, f"give these modules a layer in tests/test_layering.py and CONTRIBUTING.md: {missing}"


def test_no_import_points_up_the_layers():
    modules = all_modules()
    bad = [b for b in upward_imports(modules) if (b[0], b[2]) not in EXCEPTIONS]
    lines = [f"{_where(modules, imp, line)}: {imp} ({LAYER_NAMES[a]}) imports {target} ({LAYER_NAMES[b]})"
             for imp, line, target, a, b in bad]
    assert not bad, "imports that point up the layering (CONTRIBUTING.md):\n" + "\n".join(lines)


def test_each_listed_exception_is_still_needed():
    found = {(b[0], b[2]) for b in upward_imports(all_modules())}
    stale = sorted(EXCEPTIONS - found)
    assert not stale, f"these exceptions no longer occur; remove them from EXCEPTIONS: {stale}"


def test_no_import_cycle_between_modules():
    modules = all_modules()
    graph = import_graph(modules)
    found = cycles(graph)
    lines = [" -> ".join(c) + "\n" + "\n".join(f"    {_where(modules, a, graph[a][b])}: {a} imports {b}"
                                                for a, b in zip(c, c[1:])) for c in found]
    assert not found, ("modules that import each other, lazy imports included (CONTRIBUTING.md \"Layering\": move "
                       "what both need below them):\n" + "\n".join(lines))


def test_no_import_cycle_between_packages():
    modules = all_modules()
    packages = package_graph(import_graph(modules))
    found = cycles(packages)
    lines = [" -> ".join(c) + "\n" + "\n".join(f"    {_where(modules, packages[a][b][0], packages[a][b][1])}: "
                                                f"{packages[a][b][0]} imports {packages[a][b][2]}"
                                                for a, b in zip(c, c[1:])) for c in found]
    assert not found, ("packages that import each other (CONTRIBUTING.md \"Layering\": imports between two packages "
                       "point one way):\n" + "\n".join(lines))


def test_the_cycle_finder_names_each_circle_once():
    graph = {"a": {"b": 1}, "b": {"c": 1, "d": 1}, "c": {"a": 1}, "d": {"b": 1}, "e": {"a": 1, "f": 1}, "f": {},
             "g": {"h": 1}, "h": {"g": 1}}
    assert strongly_connected(graph) == [["a", "b", "c", "d"], ["g", "h"]]
    assert cycles(graph) == [["a", "b", "c", "a"], ["g", "h", "g"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []
    packages = package_graph({"audiodiff.x.one": {"audiodiff.y": 3}, "audiodiff.y": {"audiodiff.x.two": 5},
                              "audiodiff.x.two": {}})
    assert packages == {"audiodiff.x": {"audiodiff.y": ("audiodiff.x.one", 3, "audiodiff.y")},
                        "audiodiff.y": {"audiodiff.x": ("audiodiff.y", 5, "audiodiff.x.two")}}
    assert cycles(packages) == [["audiodiff.x", "audiodiff.y", "audiodiff.x"]]  # no module imports itself back


def test_the_walk_sees_lazy_relative_and_absolute_imports():
    modules = {"audiodiff", "audiodiff.pipeline", "audiodiff.training", "audiodiff.training.loop", "audiodiff.mel",
               "audiodiff.runs", "audiodiff.runs.checkpoint"}
    source = ("import torch\nfrom ..mel import MelSpec\n"
              "def f():\n    from ..pipeline import Pipeline\n"
              "def g():\n    import audiodiff.runs.checkpoint\n    from audiodiff import pipeline\n"
              "    from ..runs import checkpoint, load_checkpoint\n")
    got = imports_of("audiodiff.training.loop", source, False, modules)
    assert got == [("audiodiff.mel", 2), ("audiodiff.pipeline", 4), ("audiodiff.runs.checkpoint", 6),
                   ("audiodiff.pipeline", 7), ("audiodiff.runs.checkpoint", 8), ("audiodiff.runs", 8)]
    assert [layer_of(m) for m, _ in got] == [0, 4, 2, 4, 2, 2]
    assert layer_of("audiodiff.training.vocoder") == 3 and layer_of("audiodiff.vocoders.neural") == 1
    assert layer_of("audiodiff.plots") == 0 and layer_of("audiodiff.representations.mel") == 1
    assert layer_of("audiodiff.generation") == 1
    assert layer_of("audiodiff") == 5 and layer_of("audiodiff.training.loop") == 3
