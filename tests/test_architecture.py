"""The house rules of imports, read from the source with `ast`.

Floors, top to bottom: app.py and pages/ -> lab/ -> gans/, classifier/, metrics/ -> data/. An
import only points down a floor. Every import counts: at module level, inside a function, and
`importlib.import_module("...")` with a literal name. Tests and benchmarks may import anything.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "pages", "lab", "gans", "classifier", "metrics", "data")
LIBRARY = ("gans", "classifier", "metrics", "data")


@dataclass(frozen=True)
class Import:
    file: str  # path relative to the project root
    line: int
    module: str  # absolute dotted name

    @property
    def package(self) -> str:
        """The top-level package of the importing file ("app" for app.py)."""
        return Path(self.file).parts[0].removesuffix(".py")

    @property
    def target(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module}"


def imports_of(path: Path, root: Path = ROOT) -> list[Import]:
    """Every module that the file at `path` imports, relative imports made absolute."""
    name = path.relative_to(root).with_suffix("").as_posix()
    file_package = name.split("/")[:-1]  # the package a relative import starts from
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = file_package[: len(file_package) - node.level + 1] if node.level else []
            found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
        elif (isinstance(node, ast.Call) and _called_name(node.func) in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    file = path.relative_to(root).as_posix()
    return [Import(file, line, module) for line, module in found]


def _called_name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def project_imports() -> list[Import]:
    files = [ROOT / "app.py"] + [f for package in PACKAGES[1:] for f in sorted((ROOT / package).rglob("*.py"))]
    return [imp for f in files for imp in imports_of(f)]


def offences(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [str(imp) for imp in project_imports() if imp.package in importers and imp.target in forbidden]


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle of the directed `graph` as [a, b, ..., a], or [] when it has none."""

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return path[path.index(node):] + [node]
        for successor in sorted(graph.get(node, ())):
            cycle = visit(successor, path + [node])
            if cycle:
                return cycle
        return []

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return []


def test_import_reader_sees_function_level_relative_and_dynamic_imports(tmp_path):
    module = tmp_path / "gans" / "sub" / "thing.py"
    module.parent.mkdir(parents=True)
    module.write_text("import os\nfrom ..blocks import conv\n\n\ndef later():\n    from lab.runs import Run\n"
                      "    import importlib\n    return importlib.import_module('pages.common')\n")
    found = [(imp.line, imp.module) for imp in imports_of(module, root=tmp_path)]
    assert found == [(1, "os"), (2, "gans.blocks"), (6, "lab.runs"), (7, "importlib"), (8, "pages.common")]
    assert {imp.package for imp in imports_of(module, root=tmp_path)} == {"gans"}


def test_library_never_imports_lab_pages_or_streamlit():
    found = offences(LIBRARY, ("lab", "pages", "streamlit"))
    assert not found, "gans/, classifier/, metrics/ and data/ must not import lab, pages or streamlit:\n" + "\n".join(found)


def test_data_imports_nothing_above_it():
    found = offences(("data",), ("gans", "classifier", "metrics", "lab", "pages", "streamlit", "app"))
    assert not found, "data/ is the lowest floor and imports no package above it:\n" + "\n".join(found)


def test_lab_never_imports_pages_or_streamlit():
    found = offences(("lab",), ("pages", "streamlit", "app"))
    assert not found, "lab/ runs headless and must not import pages or streamlit:\n" + "\n".join(found)


def test_packages_import_each_other_without_cycles():
    edges: dict[tuple[str, str], list[Import]] = {}
    for imp in project_imports():
        if imp.target in PACKAGES and imp.target != imp.package:
            edges.setdefault((imp.package, imp.target), []).append(imp)
    graph = {package: {b for a, b in edges if a == package} for package in PACKAGES}
    cycle = find_cycle(graph)
    assert not cycle, (f"import cycle {' -> '.join(cycle)}:\n"
                       + "\n".join(str(imp) for a, b in zip(cycle, cycle[1:]) for imp in edges[a, b]))


# --- modules: no circle of imports anywhere, and an engine that knows no science ------------------

CYCLE_PACKAGES = ("lab", "data", "gans", "metrics", "classifier")
ENGINE = "lab.engine"
SCIENCE_ROOMS = ("lab.study", "lab.kinds", "lab.cli", "lab.mirrors")  # what the engine never imports


def module_name(path: Path, root: Path = ROOT) -> str:
    """`lab/engine/runs.py` -> "lab.engine.runs"; a package's `__init__.py` is the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_graph(packages: tuple[str, ...] = CYCLE_PACKAGES, root: Path = ROOT) -> dict[str, dict[str, Import]]:
    """Module -> {module of the project it imports -> the first such import}. `from a.b import c` counts as
    importing the module `a.b.c` when there is one, else `a.b`."""
    files = {module_name(f, root): f for package in packages for f in sorted((root / package).rglob("*.py"))}
    graph: dict[str, dict[str, Import]] = {}
    for name, path in files.items():
        edges = graph.setdefault(name, {})
        for imp, imported_names in _imports_with_names(path, root):
            for candidate in [imp.module, *(f"{imp.module}.{n}" for n in imported_names)]:
                while candidate and candidate not in files:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    edges.setdefault(candidate, imp)
    return graph


def _imports_with_names(path: Path, root: Path) -> list[tuple[Import, list[str]]]:
    """`imports_of(path)`, each with the names a `from ... import` statement takes (which may be modules)."""
    names_at = {node.lineno: [alias.name for alias in node.names]
                for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)}
    return [(imp, names_at.get(imp.line, [])) for imp in imports_of(path, root)]


def strongly_connected(graph: dict[str, dict]) -> list[list[str]]:
    """The groups of two or more modules that import each other, directly or round a circle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph.get(node, {}):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_module_reader_finds_a_circle_through_a_function_level_import(tmp_path):
    for name, text in {"lab/__init__.py": "", "lab/a.py": "from lab import b\n",
                       "lab/b.py": "def later():\n    from lab.c import thing\n", "lab/c.py": "import lab.a\n"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert strongly_connected(module_graph(("lab",), root=tmp_path)) == [["lab.a", "lab.b", "lab.c"]]


def test_no_module_of_the_project_imports_itself_round_a_circle():
    graph = module_graph()
    groups = strongly_connected(graph)
    lines = [f"circle of {len(group)}: " + ", ".join(group) + "\n" +
             "\n".join(f"  {graph[a][b]}" for a in group for b in graph[a] if b in group) for group in groups]
    assert not groups, "modules that import each other (counting imports inside functions):\n" + "\n".join(lines)


def test_the_job_engine_imports_nothing_of_the_study_the_kinds_the_cli_or_the_mirrors():
    graph = module_graph(("lab",))
    engine = [name for name in graph if name == ENGINE or name.startswith(ENGINE + ".")]
    assert engine, "lab/engine/ holds the job engine"
    found = [str(imp) for name in engine for target, imp in graph[name].items()
             if any(target == room or target.startswith(room + ".") for room in SCIENCE_ROOMS)]
    assert not found, "the engine finds job kinds by name and knows no science:\n" + "\n".join(found)
