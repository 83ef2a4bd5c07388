"""Bench results name paths relative to the repository, never one machine's: results and logs are committed.

``portable(value)`` rewrites every string in a JSON-able value: the repository's own path becomes relative, the
virtualenv ``<venv>``, the temporary directory ``<tmp>``, the home directory ``~``.

>>> import tempfile
>>> portable({"out": str(ROOT / "bench" / "results"), "work": tempfile.gettempdir() + "/soak"})
{'out': 'bench/results', 'work': '<tmp>/soak'}
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _prefixes() -> list[tuple[str, str]]:
    pairs = [(str(Path(sys.prefix).resolve()), "<venv>"), (sys.prefix, "<venv>"), (str(ROOT), "."),
             (str(Path(tempfile.gettempdir()).resolve()), "<tmp>"), (tempfile.gettempdir(), "<tmp>"),
             (os.path.expanduser("~"), "~")]
    return sorted({p for p in pairs if p[0] not in ("", "/")}, key=lambda p: -len(p[0]))


def portable_text(text: str) -> str:
    """``text`` with machine paths replaced (the repository's own: relative; ``./x`` is written ``x``)."""
    for prefix, name in _prefixes():
        text = text.replace(prefix + "/", "" if name == "." else name + "/").replace(prefix, name)
    return text


def portable(value: Any) -> Any:
    """``value`` (dicts, lists, strings, anything else as is) with :func:`portable_text` applied to every string."""
    if isinstance(value, str):
        return portable_text(value)
    if isinstance(value, dict):
        return {portable(k): portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    return value
