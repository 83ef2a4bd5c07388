"""Which way imports run inside the library (issue 9), checked on the source with ``ast``.

logic (pure) <- hooks <- waiting (sans-IO engines + sync drivers) <- triggers (async drivers) <- operators/sensors.
Operators and sensors take from ``triggers`` only the trigger classes they defer to; sensors use no operator
module (what they share with operators is in ``aliyun_ops.runtime``); nothing in ``logic`` does I/O or knows Airflow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "plugins" / "aliyun_ops"


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """``[(module, [names])]`` imported by a file, relative imports resolved to ``aliyun_ops.``."""
    package = ".".join(path.relative_to(LIB.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            out.append((module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def files(layer: str) -> list[Path]:
    return sorted((LIB / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", ["operators", "sensors"])
def test_only_trigger_classes_come_from_triggers(layer):
    for path in files(layer):
        for module, names in imports(path):
            if module.startswith("aliyun_ops.triggers"):
                assert names and all(n.endswith("Trigger") for n in names), f"{path.name} imports {names} from {module}"


def test_sensors_use_no_operator_module():
    for path in files("sensors"):
        for module, _ in imports(path):
            assert not module.startswith("aliyun_ops.operators"), f"{path.name} imports {module}"


@pytest.mark.parametrize("layer, forbidden", [
    ("logic", ("aliyun_ops.hooks", "aliyun_ops.operators", "aliyun_ops.sensors", "aliyun_ops.triggers",
               "aliyun_ops.waiting", "airflow", "alibabacloud")),
    ("hooks", ("aliyun_ops.operators", "aliyun_ops.sensors", "aliyun_ops.triggers", "aliyun_ops.waiting",
               "aliyun_ops.actions")),
    ("waiting", ("aliyun_ops.operators", "aliyun_ops.sensors", "aliyun_ops.triggers")),
    ("triggers", ("aliyun_ops.operators", "aliyun_ops.sensors", "aliyun_ops.actions")),
    ("actions", ("aliyun_ops.operators", "aliyun_ops.sensors", "aliyun_ops.triggers", "aliyun_ops.pipelines",
                 "airflow.sdk.bases", "airflow.models")),
    ("pipelines", ("aliyun_ops.operators",)),
])
def test_lower_layers_do_not_import_upper_ones(layer, forbidden):
    assert files(layer), layer
    for path in files(layer):
        for module, _ in imports(path):
            assert not module.startswith(forbidden), f"{layer}/{path.name} imports {module}"


@pytest.mark.parametrize("root", ["plugins/aliyun_ops", "emulator"])
def test_no_function_longer_than_80_lines(root):
    long = []
    for path in sorted((LIB.parent.parent / root).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def test_operators_hand_off_and_resume_in_one_place():
    """One ``execute_complete`` and one ``defer()`` for every operator: ``AliyunItemsOperator`` (issue 9)."""
    for path in files("operators"):
        if path.parent.name == "base":
            continue
        tree = ast.parse(path.read_text())
        defined = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        assert "execute_complete" not in defined, f"{path.name} defines its own execute_complete"
        defers = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call)
                  and isinstance(n.func, ast.Attribute) and n.func.attr == "defer"]
        assert not defers, f"{path.name} calls defer() itself (lines {defers}): use hand_off()"


RE_EXPORTS = {"ecs.py", "rds.py", "image_batch.py", "steps.py", "__init__.py"}
"""Operator modules that only gather (or, deprecated, forward) names of the others."""


def test_no_operator_module_is_another_operators_library():
    """An operator module imports only ``base``, hooks, triggers, waiting, actions and logic (issue 23)."""
    for path in files("operators"):
        if path.name in RE_EXPORTS and path.parent.name == "operators":
            continue
        for module, _ in imports(path):
            if module.startswith("aliyun_ops.operators"):
                assert module.startswith("aliyun_ops.operators.base"), f"{path.name} imports {module}"


@pytest.mark.parametrize("layer", ["operators", "sensors", "triggers", "pipelines"])
def test_no_layer_above_waiting_sleeps(layer):
    """Every wait is a watch driven by :mod:`aliyun_ops.waiting` (or a trigger's async driver there)."""
    for path in files(layer):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "sleep":
                owner = node.func.value
                assert not (isinstance(owner, ast.Name) and owner.id in ("time", "asyncio")), \
                    f"{layer}/{path.name}:{node.lineno} sleeps; use a watch in aliyun_ops.waiting"


def test_the_emulator_imports_nothing_of_the_library():
    """A test oracle that shares the product's code cannot catch its bugs (issue 23)."""
    for path in sorted((LIB.parent.parent / "emulator").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            bad = [n for n in names if n.startswith(("aliyun_ops", "plugins"))]
            assert not bad, f"emulator/{path.name} imports {bad}"


def test_no_operator_class_is_more_than_three_levels_below_base_operator():
    """Prefer composition to concrete-on-concrete inheritance: BaseOperator -> AliyunBaseOperator ->
    AliyunItemsOperator -> an operator, and no deeper (mixins without BaseOperator do not count)."""
    import importlib
    import inspect
    import pkgutil

    from airflow.sdk import BaseOperator

    import aliyun_ops.operators as ops
    import aliyun_ops.sensors as sensors

    def depth(cls: type) -> int:
        if cls is BaseOperator:
            return 0
        return 1 + max(depth(b) for b in cls.__bases__ if isinstance(b, type) and issubclass(b, BaseOperator))

    deep, unwrapped = {}, []
    for package in (ops, sensors):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == module.__name__ and issubclass(cls, BaseOperator):
                    if depth(cls) > 3:
                        deep[f"{module.__name__}.{name}"] = depth(cls)
                    if not hasattr(cls.__init__, "__wrapped__"):  # its __init__ came from a mixin: default_args lost
                        unwrapped.append(f"{module.__name__}.{name}")
    assert not deep, deep
    assert not unwrapped, f"define __init__ (calling super) on {unwrapped}, or Airflow does not apply default_args"


CLOUD_STATUSES = {"Pending", "Starting", "Running", "Stopping", "Stopped", "Creating", "Waiting", "Available",
                  "UnAvailable", "CreateFailed", "Deprecated", "progressing", "accomplished", "In_use", "Success",
                  "Failed", "PartialFailed", "Scheduled"}


def test_cloud_statuses_are_named_in_one_module():
    """One vocabulary: ECS and RDS status values are written only in ``logic/statuses.py`` (and the emulator, the
    cloud's side); elsewhere they are ``st.RUNNING``, ``st.IMAGE_FAILED``... Docstrings and messages aside."""
    found = []
    for path in [*sorted(LIB.rglob("*.py")), *sorted((LIB.parent.parent / "dags").glob("*.py"))]:
        if path.name == "statuses.py":
            continue
        tree = ast.parse(path.read_text())
        skip = {id(node.body[0].value) for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        skip |= {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
        found += [f"{path.name}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in CLOUD_STATUSES and id(node) not in skip]
    assert not found, found
