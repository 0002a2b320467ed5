"""The tree is the map: imports point one way, studio module names are unique, packages say what they hold.

Every module of ``engine`` and ``studio`` is parsed (nothing is imported), so the checks see imports
inside functions and under ``TYPE_CHECKING`` too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the units whose imports must point one way: each package, and each top-level module by itself
PACKAGES = (
    "engine.prime",
    "engine.models",
    "engine.sampling",
    "engine.data",
    "engine.files",
    "engine.training",
    "engine.bench",
    "engine.cli",
    "studio.history",
    "studio.workspace",
    "studio.train",
)


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("engine", "studio"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(name: str, path: Path) -> set[str]:
    """Absolute names of everything a module imports (and, for ``from x import y``, x.y)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for target in _imported(name, path):
            while target and target not in modules:  # engine.cli.common.emit -> engine.cli.common
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                deps.add(target)  # (a module's own packages are imported with it: not edges)
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (its nodes, first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _unit(module: str) -> str:
    """The package a module belongs to, else the module itself (top-level modules)."""
    return next((p for p in PACKAGES if module == p or module.startswith(p + ".")), module)


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    graph = _graph()
    assert "studio.mainwindow" in graph["studio.app"]  # imported inside main()
    assert "studio.library" in graph["studio.train.panel"]  # imported inside a method
    assert "studio.workspace.session" in graph["studio.workspace.compare"]  # TYPE_CHECKING
    assert "engine.cli.common" in graph["engine.cli.generate"]
    assert "engine.bench.quality" in graph["engine.cli.bench"]  # imported on demand


def test_no_import_cycles_among_modules() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle)


def test_no_import_cycles_among_packages() -> None:
    units: dict[str, set[str]] = {}
    for module, deps in _graph().items():
        units.setdefault(_unit(module), set()).update(_unit(d) for d in deps if _unit(d) != _unit(module))
    cycle = _cycle(units)
    assert cycle is None, " -> ".join(cycle)


def test_engine_never_imports_qt_or_the_studio() -> None:
    for name, path in _modules().items():
        if name.startswith("engine"):
            imported = {n.split(".")[0] for n in _imported(name, path)}
            assert not imported & {"PySide6", "shiboken6", "qasync", "studio"}, name


def test_the_studio_reaches_the_engine_only_through_its_public_names() -> None:
    for name, path in _modules().items():
        if name.startswith("studio"):
            inside = {n for n in _imported(name, path) if n.startswith("engine.")}
            assert not inside, f"{name} imports {sorted(inside)}: use studio.enginelink"


def test_nothing_imports_the_top_of_the_studio() -> None:
    # e.g. the session is given its widgets and host: it does not import the main window
    # app starts the window; the benchmark's soak drives the real window
    allowed = {"studio.app": {"studio.mainwindow"}, "studio.bench": {"studio.mainwindow"}}
    for module, deps in _graph().items():
        up = deps & {"studio.app", "studio.mainwindow", "studio.bench"}
        assert up <= allowed.get(module, set()), (module, up)


def test_no_two_studio_modules_share_a_file_name() -> None:
    # (the engine's parallel names are on purpose: engine.cli.train runs engine.training and
    # engine.bench.train measures it)
    names: dict[str, list[str]] = {}
    for path in (ROOT / "studio").rglob("*.py"):
        if path.name != "__init__.py" and "__pycache__" not in path.parts:
            names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert not {n: p for n, p in names.items() if len(p) > 1}


def test_every_package_says_what_lives_there_and_what_it_may_import() -> None:
    for name, path in _modules().items():
        if path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
            assert doc and "import" in doc, name
