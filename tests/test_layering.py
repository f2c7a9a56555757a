"""Imports point one way (CONTRIBUTING.md "Layering"): a module imports only from its own layer or below.

Every module of `audiodiff/` is parsed with `ast`; every `import` / `from ... import` anywhere in it counts,
inside functions too (a lazy import is still a dependency), relative ones resolved against the module's package.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audiodiff"

# layer -> module prefixes; a module takes the layer of its longest matching prefix
LAYERS = {
    0: ("audiodiff.errors", "audiodiff.audio", "audiodiff.mel", "audiodiff.conditions", "audiodiff.jsonfile",
        "audiodiff.schedules", "audiodiff._check", "audiodiff.config", "audiodiff.device"),
    1: ("audiodiff.models", "audiodiff.vocoders", "audiodiff.objectives", "audiodiff.samplers", "audiodiff.guidance",
        "audiodiff.losses"),
    2: ("audiodiff.runs", "audiodiff.data"),
    3: ("audiodiff.training", "audiodiff.evaluation",
        "audiodiff.vocoders.train"),  # the vocoder trainer: a training task that still sits next to the vocoders
    4: ("audiodiff.pipeline",),
    5: ("audiodiff", "audiodiff.cli", "audiodiff.serve", "audiodiff.__main__"),  # `audiodiff`: the re-exports
}
LAYER_NAMES = {0: "base", 1: "modules", 2: "run format + data", 3: "training + evaluation", 4: "pipeline",
               5: "entry points"}

# (importer, imported): upward imports that remain, each with its reason. Nothing else may point up.
EXCEPTIONS = {
    # `audiodiff.vocoders.load_vocoder(path)` is the vocoders' public loader (README, recipes, Vocoder.from_pretrained)
    # and also reads vocoder *training runs*; reading a run is the run format's job, so the function lives in
    # audiodiff/runs/vocoder.py (a layer up) and the public name imports it when called.
    ("audiodiff.vocoders", "audiodiff.runs.vocoder"),
}


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


def test_every_module_has_a_layer():
    missing = sorted(n for n in all_modules() if layer_of(n) is None)
    assert not missing, f"give these modules a layer in tests/test_layering.py and CONTRIBUTING.md: {missing}"


def test_no_import_points_up_the_layers():
    modules = all_modules()
    bad = [b for b in upward_imports(modules) if (b[0], b[2]) not in EXCEPTIONS]
    lines = [f"{PACKAGE.name}/{modules[imp].relative_to(PACKAGE).as_posix()}:{line}: {imp} ({LAYER_NAMES[a]}) imports "
             f"{target} ({LAYER_NAMES[b]})" for imp, line, target, a, b in bad]
    assert not bad, "imports that point up the layering (CONTRIBUTING.md):\n" + "\n".join(lines)


def test_each_listed_exception_is_still_needed():
    found = {(b[0], b[2]) for b in upward_imports(all_modules())}
    stale = sorted(EXCEPTIONS - found)
    assert not stale, f"these exceptions no longer occur; remove them from EXCEPTIONS: {stale}"


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
    assert layer_of("audiodiff.vocoders.train") == 3 and layer_of("audiodiff.vocoders.neural") == 1
    assert layer_of("audiodiff") == 5 and layer_of("audiodiff.training.loop") == 3
