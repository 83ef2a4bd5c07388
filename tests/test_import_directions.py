"""Which way imports run inside the library (issue 9), checked on the source with ``ast``.

logic (pure) <- hooks <- waiting (sans-IO engines + sync drivers) <- triggers (async drivers) <- operators/sensors.
Operators and sensors take from ``triggers`` only the trigger classes they defer to; sensors use no operator
module (what they share with operators is in ``aliyun_ops.tasks``); nothing in ``logic`` does I/O or knows Airflow.
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
    return sorted((LIB / layer).glob("*.py"))


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
    ("hooks", ("aliyun_ops.operators", "aliyun_ops.sensors", "aliyun_ops.triggers", "aliyun_ops.waiting")),
    ("waiting", ("aliyun_ops.operators", "aliyun_ops.sensors", "aliyun_ops.triggers")),
    ("triggers", ("aliyun_ops.operators", "aliyun_ops.sensors")),
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
        if path.name == "base.py":
            continue
        tree = ast.parse(path.read_text())
        defined = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        assert "execute_complete" not in defined, f"{path.name} defines its own execute_complete"
        defers = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call)
                  and isinstance(n.func, ast.Attribute) and n.func.attr == "defer"]
        assert not defers, f"{path.name} calls defer() itself (lines {defers}): use hand_off()"
