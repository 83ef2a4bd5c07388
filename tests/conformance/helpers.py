"""Helpers shared by the ECS conformance tests."""

from __future__ import annotations

import pytest
from Tea.exceptions import TeaException


def api_error(fn, *args, **kwargs) -> tuple[str, int]:
    """Call ``fn``, expect an API error, return ``(code, HTTP status)``; a 5xx fails the test."""
    with pytest.raises(TeaException) as err:
        fn(*args, **kwargs)
    exc = err.value
    status = getattr(exc, "status_code", None) or (exc.data or {}).get("statusCode")
    assert status is not None and int(status) < 500, f"{exc.code} came back as a server error"
    return exc.code, int(status)


def fleet(emulator, **sections) -> dict:
    return emulator.admin.load_fleet(sections)
