"""The package's layers and its import graph (DESIGN.md: Layout).

Layers point one way: ``ctrlgen`` (the core) <- ``ctrlgen.train`` <-
``ctrlgen.serve``.  The core never imports train or serve, train never
imports serve, not even inside a function, and no module takes part in an
import cycle.  The graph is read from source with ``ast``: every ``import``
statement counts, at module level or inside a function, relative ones
resolved, so a cycle cannot hide behind a deferred import, and imports under
``if TYPE_CHECKING:`` count too: a type-only import back is still a
dependency for a reader (modules the trainer imports name its type as
``Trainer = Any`` instead).

``__main__`` modules are programs, not library code: nothing may import one
(importing it runs the program), and they may call into any layer (``python
-m ctrlgen`` is the ``ctrlgen`` command of ``ctrlgen.serve``).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("ctrlgen.serve", "ctrlgen.train")  # top first; everything else under ctrlgen is the core


def packages() -> list[str]:
    """The packages pyproject.toml ships (train/ and serve/ are mapped to ctrlgen.train and ctrlgen.serve)."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def modules() -> dict[str, Path]:
    """Every module of the installed package: dotted name -> source file."""
    out: dict[str, Path] = {}
    names = packages()
    for pkg in names:
        spec = importlib.util.find_spec(pkg)
        assert spec is not None and spec.submodule_search_locations, f"package {pkg} is not installed"
        folder = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(folder.glob("*.py")):
            out[pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"] = path
        for sub in sorted(folder.iterdir()):
            if (sub / "__init__.py").exists():
                assert f"{pkg}.{sub.name}" in names, f"{sub} is a package missing from pyproject.toml's packages"
    return out


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that ``name`` imports anywhere in its source (module or function level)."""
    is_pkg = path.stem == "__init__"
    here = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    # An edge goes to the module a statement names: `import a.b` -> a.b; `from a import b` -> a.b when b is
    # a module, else a.  (Python also runs a.__init__ first; that parent link is the package's own structure.)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                if f"{module}.{alias.name}" in known:
                    found.add(f"{module}.{alias.name}")
                elif module in known:
                    found.add(module)
        elif isinstance(node, ast.Call) and _is_import_module(node) and node.args:
            found.update(_dynamic_targets(node.args[0], name if is_pkg else here, known))
    found.discard(name)  # `from . import x` in a package's __init__ names the package itself
    return found


def _is_import_module(call: ast.Call) -> bool:
    f = call.func
    return (isinstance(f, ast.Attribute) and f.attr == "import_module") or (isinstance(f, ast.Name) and f.id == "import_module")


def _dynamic_targets(arg: ast.expr, package: str, known: set[str]) -> set[str]:
    """``importlib.import_module("a.b")`` imports a.b; ``import_module(f"{__name__}.{x}")`` any module of the package."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value} & known
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.FormattedValue):
        head = arg.values[0].value
        if isinstance(head, ast.Name) and head.id == "__name__":
            return {m for m in known if m.startswith(package + ".") and m.count(".") == package.count(".") + 1}
    return set()


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported(name, path, known) for name, path in mods.items()}


def layer(module: str) -> int:
    """0 for the core, 1 for ctrlgen.train, 2 for ctrlgen.serve."""
    for rank, top in zip((2, 1), LAYERS, strict=True):
        if module == top or module.startswith(top + "."):
            return rank
    return 0


def is_program(module: str) -> bool:
    return module.rpartition(".")[2] == "__main__"


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, and modules importing themselves (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in g.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def cycle_path(g: dict[str, set[str]], comp: list[str]) -> str:
    """One closed path through a strongly connected component, for the failure message."""
    members = set(comp)
    start = comp[0]
    seen = {start: [start]}
    queue = [start]
    while queue:  # shortest path from start back to start inside the component
        v = queue.pop(0)
        for w in sorted(g[v] & members):
            if w == start:
                return " -> ".join([*seen[v], start])
            if w not in seen:
                seen[w] = [*seen[v], w]
                queue.append(w)
    return " -> ".join(comp)  # pragma: no cover - a component always closes


# --------------------------------------------------------------------------- the graph reader itself
def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    src = pkg / "a.py"
    src.write_text(
        "import pkg.b\nfrom pkg import c\nfrom . import d\nfrom .e import thing\n"
        "def later():\n    from pkg.f import g\n    import pkg.h as h\n"
    )
    known = {"pkg", *(f"pkg.{m}" for m in "abcdefgh")}
    assert imported("pkg.a", src, known) == {"pkg.b", "pkg.c", "pkg.d", "pkg.e", "pkg.f", "pkg.h"}
    init = pkg / "__init__.py"
    init.write_text("from .a import x\n")
    assert imported("pkg", init, known) == {"pkg.a"}
    # a plugin loader: every module of the package, and a literal name
    init.write_text("import importlib\ndef load():\n    for m in names:\n        importlib.import_module(f'{__name__}.{m}')\n"
                    "    importlib.import_module('pkg.h')\n")
    assert imported("pkg", init, known) == {f"pkg.{m}" for m in "abcdefgh"}


def test_cycles_finds_components_and_self_loops() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert cycles(g) == [["a", "b", "c"], ["e"]]
    assert cycle_path(g, ["a", "b", "c"]) == "a -> b -> c -> a"


def test_every_module_is_found() -> None:
    mods = modules()
    for name in ("ctrlgen.spec", "ctrlgen.metrics", "ctrlgen.train.trainer", "ctrlgen.train.techniques", "ctrlgen.serve.cli"):
        assert name in mods
    assert mods["ctrlgen.serve.cli"] == ROOT / "serve" / "cli.py"


# --------------------------------------------------------------------------- the rules
def test_layers_point_one_way() -> None:
    g = graph()
    names = {0: "the core (ctrlgen)", 1: "ctrlgen.train", 2: "ctrlgen.serve"}
    bad = [
        f"{src} ({names[layer(src)]}) imports {dst} ({names[layer(dst)]})"
        for src, targets in sorted(g.items())
        if not is_program(src)
        for dst in sorted(targets)
        if layer(dst) > layer(src)
    ]
    assert not bad, "imports pointing up a layer:\n" + "\n".join(bad)


def test_nothing_imports_a_program() -> None:
    bad = [f"{src} imports {dst}" for src, targets in sorted(graph().items()) for dst in sorted(targets) if is_program(dst)]
    assert not bad, "\n".join(bad)


def test_no_import_cycles() -> None:
    g = graph()
    found = cycles(g)
    assert not found, f"{len(found)} import cycle(s):\n" + "\n".join(
        f"{cycle_path(g, c)}  (a knot of {len(c)} modules; its imports: "
        + ", ".join(f"{a} -> {b}" for a in c for b in sorted(g[a] & set(c))) + ")"
        for c in found
    )
