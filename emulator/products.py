"""Imports every product module so that their actions and hooks register themselves."""

from __future__ import annotations


def load() -> None:
    """Import the products (once; later calls do nothing): their actions, events, fleet sections and routes register
    on import. Plain imports, not ``importlib`` by name, so the import graph is visible to tools and tests."""
    from . import ecs, oss, rds, sts, vpc  # noqa: F401
