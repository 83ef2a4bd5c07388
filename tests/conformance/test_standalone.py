"""The emulator stands alone (issue 23): it imports nothing of the product, and its modules import each other
without a cycle.

The emulator is a peer of the library, not a part of it: a test oracle that shared the product's code (its CRC,
its models) could not catch that code's bugs. Both checks read the source with ``ast`` (nothing is imported), so an
import inside a function, an ``if`` or a ``try`` counts as much as one at the top of a module. Only imports under
``if TYPE_CHECKING:`` (never executed: the annotations they serve are strings) are left out of the cycle walk; the
product check reads them too.
"""

from __future__ import annotations

import ast
from pathlib import Path

EMULATOR = Path(__file__).resolve().parents[2] / "emulator"
FORBIDDEN = ("aliyun_ops", "plugins", "dags")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(EMULATOR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(EMULATOR.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(name: str, node: ast.ImportFrom) -> str:
    """The absolute module of ``from <module> import ...`` in module ``name`` (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    base = (name if _is_package(name) else name.rpartition(".")[0]).split(".")
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:``: never executed, so no edge of the runtime graph."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def _imports(name: str, runtime_only: bool = False) -> list[tuple[str, int]]:
    """Every module ``name`` imports, absolute, with its line, wherever the import is in the file (top level,
    function, ``try``): ``import x.y`` (``x.y``), ``from x import y`` (``x.y`` when that is a module of the
    emulator, else ``x``), relative imports resolved, and ``importlib.import_module("x")`` / ``__import__("x")``
    with a constant name (``"?"`` for a name computed at run time, which the walk cannot follow).
    ``runtime_only`` leaves out the imports under ``if TYPE_CHECKING:``."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    skipped = _type_checking_only(tree) if runtime_only else set()
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(name, node)
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.append((sub if sub in MODULES else module, node.lineno))
        elif isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))):
            arg = node.args[0] if node.args else None
            constant = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            found.append((arg.value if constant else "?", node.lineno))
    return found


def _edges(name: str) -> set[str]:
    """The emulator modules that importing ``name`` runs: each module it imports and the packages Python
    initialises on the way (importing ``emulator.ecs.regions`` runs ``emulator/ecs/__init__.py``, which imports
    all of ECS), except the packages ``name`` itself is in: those are already initialising (a package's
    ``__init__`` importing its submodules, which import their siblings with ``from . import common``, is how
    packages work, not a cycle)."""
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
    out = set()
    for module, _ in _imports(name, runtime_only=True):
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in MODULES and prefix not in own:
                out.add(prefix)
    return out


def test_the_walk_sees_the_emulator():
    assert {"emulator.server", "emulator.oss.crc64", "emulator.keys", "emulator.ram"} <= set(MODULES)
    assert "emulator.rpc" in _edges("emulator.server")
    assert "emulator.oss.common" in _edges("emulator.oss.buckets")  # `from . import common`
    assert "emulator.oss" not in _edges("emulator.oss.buckets")
    assert "emulator.ecs" in _edges("emulator.faults")  # `from .ecs.regions import REGIONS` runs ecs/__init__
    assert "emulator.server" not in _edges("emulator.admin")  # under `if TYPE_CHECKING:` only


def test_no_import_the_walk_cannot_follow():
    dynamic = [f"{MODULES[name].relative_to(EMULATOR.parent)}:{line}" for name in MODULES
               for module, line in _imports(name) if module == "?"]
    assert not dynamic, "imports by a computed name: " + ", ".join(dynamic)


def test_the_emulator_imports_nothing_of_the_product():
    offenders = [f"{MODULES[name].relative_to(EMULATOR.parent)}:{line} imports {module}"
                 for name in MODULES for module, line in _imports(name)
                 if module.split(".")[0] in FORBIDDEN]
    assert not offenders, "\n".join(offenders)


def test_the_emulator_modules_have_no_import_cycle():
    graph = {name: _edges(name) for name in MODULES}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
