"""The tree tells the flow (docs/architecture.md): rooms for the parts, imports one way.

Walks every module's imports with ``ast`` (module level and inside functions alike, so
a late import cannot hide a circle) and checks what docs/architecture.md promises:

- at most 12 modules directly in ``keidash/``;
- no module imports another in a circle, and no room (sub-package, or top-level module)
  imports another room in a circle;
- the shared top-level modules import no room; the live estimator imports only the shared
  types, the profiles and itself;
- only the rig (``sim://``) imports the simulator, and a drive through the dash never
  loads it;
- the tree figure in docs/architecture.md lists exactly the files there are.

Imports under ``if TYPE_CHECKING:`` never run: they count for circles, not for what a
module loads.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import keidash

PACKAGE = Path(keidash.__file__).resolve().parent
REPO = PACKAGE.parent
ARCHITECTURE = REPO / "docs" / "architecture.md"
TREE_MARKER = "<!-- tree:"

#: top-level modules every room may use; they import no room themselves
SHARED = {"keidash.readings", "keidash.dashstate", "keidash.errors", "keidash.config", "keidash.gpio"}
#: the estimator the dash runs: pure, so it may use only these (and itself)
LIVE_ESTIMATOR = {f"keidash.estimate.{m}" for m in
                  ("estimator", "learn", "gears", "lag", "shiftmap", "speedonly", "needle", "shift", "truck")}
PURE_DEPENDENCIES = ("keidash.readings", "keidash.dashstate", "keidash.errors", "keidash.profiles")


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["keidash", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return inside


def _edges() -> list[tuple[str, str, bool]]:
    """(importer, imported, runs) for every keidash import; ``runs`` is False under TYPE_CHECKING."""
    edges = []
    for name, (path, is_package) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = _type_checking_nodes(tree)
        package = name.split(".") if is_package else name.split(".")[:-1]
        for node in ast.walk(tree):
            runs = id(node) not in typing_only
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "keidash":
                    continue
                for alias in node.names:  # "from pkg import module" names the module itself
                    module = f"{target}.{alias.name}"
                    edges.append((name, module if module in MODULES else target, runs))
            elif isinstance(node, ast.Import):
                edges += [(name, alias.name, runs) for alias in node.names if alias.name.split(".")[0] == "keidash"]
    return edges


EDGES = _edges()


def _room(module: str) -> str:
    """The part of the flow a module belongs to: its sub-package, or itself at the top."""
    return ".".join(module.split(".")[:2])


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (or a self-loop): Tarjan."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_the_imports_it_should():
    """The checks below mean something only if the walk finds real imports, late ones included."""
    assert ("keidash.app", "keidash.estimate.estimator", True) in EDGES
    assert ("keidash.rig", "keidash.sim.truck", True) in EDGES  # inside a function
    assert ("keidash.app", "keidash.sources.calibration", True) in EDGES  # "from .sources import calibration"
    assert ("keidash.estimate.estimator", "keidash.estimate.truck", False) in EDGES  # TYPE_CHECKING


def test_at_most_twelve_modules_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top


def test_no_module_imports_another_in_a_circle():
    graph = defaultdict(set)
    for importer, imported, _ in EDGES:
        if importer != imported:
            graph[importer].add(imported)
    assert _circles(graph) == []


def test_rooms_import_one_another_one_way():
    graph = defaultdict(set)
    for importer, imported, _ in EDGES:
        a, b = _room(importer), _room(imported)
        if a != b and b != "keidash":  # "keidash" itself is only __version__
            graph[a].add(b)
    assert _circles(graph) == []


def test_shared_modules_import_no_room():
    wrong = [(a, b) for a, b, _ in EDGES if a in SHARED and b not in SHARED]
    assert wrong == []


def test_the_live_estimator_is_pure():
    """No source, replay, display, output, trip log, Pi or simulator code behind the estimator."""
    wrong = [(a, b) for a, b, runs in EDGES
             if a in LIVE_ESTIMATOR and runs and b not in LIVE_ESTIMATOR and not b.startswith(PURE_DEPENDENCIES)]
    assert wrong == []


def test_only_the_rig_imports_the_simulator():
    importers = {a for a, b, _ in EDGES if b.startswith("keidash.sim") and not a.startswith("keidash.sim")}
    assert importers == {"keidash.rig"}


def test_a_drive_through_the_dash_never_loads_the_simulator(tmp_path):
    """Every module but the simulator's imported, then a recorded drive played through the
    real dash (sources, estimator, cab, cluster): no ``keidash.sim`` module is loaded."""
    log = REPO / "tests" / "data" / "drives" / "synthetic" / "torque-synthetic.csv"
    names = sorted(m for m in MODULES if not m.startswith("keidash.sim") and m != "keidash.__main__")
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "from keidash.cli import main\n"
        f"status = main(['replay', {str(log)!r}, '--headless', '--speed', '0', '--seconds', '3'])\n"
        "print(status, sorted(m for m in sys.modules if m.startswith('keidash.sim')))\n")
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"


def _tree_in_docs() -> set[str]:
    """The paths the tree figure of docs/architecture.md names (relative to keidash/)."""
    lines = ARCHITECTURE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(TREE_MARKER)) + 2  # marker, then ```
    assert lines[start] == "keidash/"
    paths, folders = set(), []
    for line in lines[start + 1:]:
        if line.startswith("```"):
            break
        stripped = line.lstrip("│├└─ \u00a0")
        depth = (len(line) - len(stripped)) // 4 - 1
        name = stripped.split()[0]
        del folders[depth:]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        else:
            paths.add("/".join([*folders, name]))
    return paths


def test_the_tree_in_the_docs_is_the_tree_on_disk():
    on_disk = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*")
               if p.is_file() and p.suffix in (".py", ".toml") and "__pycache__" not in p.parts}
    in_docs = _tree_in_docs()
    assert sorted(on_disk - in_docs) == [], "files missing from the tree figure"
    assert sorted(in_docs - on_disk) == [], "the tree figure names files that are not there"
