"""Imports every product module so that their actions and hooks register themselves."""

from __future__ import annotations

import importlib

MODULES = ("emulator.ecs", "emulator.vpc", "emulator.rds", "emulator.sts", "emulator.oss")


def load() -> None:
    for name in MODULES:
        importlib.import_module(name)
