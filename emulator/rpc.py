"""RPC-style APIs (ECS, VPC, RDS, STS): parameter decoding and the action registry.

A product module declares an action like this::

    from emulator.rpc import Call, Params, action

    @action("ecs", "DescribeRegions")
    def describe_regions(call: Call, p: Params) -> dict:
        return {"Regions": {"Region": [...]}}

The handler returns the response body without ``RequestId`` (added by the server) or raises
:class:`emulator.errors.ApiError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, invalid_parameter, missing_parameter
from .state import State

# API version -> product name.
VERSIONS = {
    "2014-05-26": "ecs",
    "2016-04-28": "vpc",
    "2014-08-15": "rds",
    "2015-04-01": "sts",
}

Handler = Callable[["Call", "Params"], dict]
ACTIONS: dict[tuple[str, str], Handler] = {}


def action(product: str, name: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of ``product``'s action ``name``."""

    def register(fn: Handler) -> Handler:
        ACTIONS[(product, name)] = fn
        return fn

    return register


@dataclass
class Call:
    """What a handler knows about the call it serves."""

    state: State
    product: str
    action: str
    request_id: str
    access_key_id: str
    base_url: str  # e.g. http://127.0.0.1:9100, for URLs the emulator serves itself
    region_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def now(self) -> float:
        return self.state.now()


_INDEXED = re.compile(r"^([A-Za-z0-9]+)\.(\d+)(?:\.(.+))?$")


class Params:
    """Typed access to RPC parameters (merged query string and form body).

    Example::

        p = Params({"InstanceId.1": "i-1", "InstanceId.2": "i-2", "PageSize": "50"})
        p.repeat_list("InstanceId")   # ['i-1', 'i-2']
        p.int("PageSize", 10, lo=1, hi=100)
    """

    def __init__(self, raw: dict[str, str]) -> None:
        self.raw = raw

    def __contains__(self, name: str) -> bool:
        return name in self.raw and self.raw[name] != ""

    def str(self, name: str, default: str | None = None, *, required: bool = False,
            max_len: int | None = None, choices: tuple[str, ...] | None = None) -> str | None:
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise missing_parameter(name)
            return default
        if max_len is not None and len(value) > max_len:
            raise invalid_parameter(name, f"The length must not exceed {max_len}.")
        if choices is not None and value not in choices:
            raise invalid_parameter(name, f"Valid values: {', '.join(choices)}.")
        return value

    def int(self, name: str, default: int | None = None, *, required: bool = False,
            lo: int | None = None, hi: int | None = None) -> int | None:
        value = self.str(name, required=required)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise invalid_parameter(name, "It must be an integer.") from None
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise invalid_parameter(name, f"It must be between {lo} and {hi}.")
        return number

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.str(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise invalid_parameter(name, "It must be true or false.")

    def repeat_list(self, name: str) -> list[str]:
        """``Name.1=a&Name.2=b`` -> ``['a', 'b']`` in index order."""
        found: list[tuple[int, str]] = []
        for key, value in self.raw.items():
            m = _INDEXED.match(key)
            if m and m.group(1) == name and m.group(3) is None:
                found.append((int(m.group(2)), value))
        return [v for _, v in sorted(found)]

    def struct_list(self, name: str) -> list[dict[str, str]]:
        """``Tag.1.Key=k&Tag.1.Value=v`` -> ``[{'Key': 'k', 'Value': 'v'}]`` in index order."""
        found: dict[int, dict[str, str]] = {}
        for key, value in self.raw.items():
            m = _INDEXED.match(key)
            if m and m.group(1) == name and m.group(3) is not None:
                found.setdefault(int(m.group(2)), {})[m.group(3)] = value
        return [found[i] for i in sorted(found)]

    def json(self, name: str, default: Any = None, *, required: bool = False) -> Any:
        value = self.str(name, required=required)
        if value is None:
            return default
        try:
            return json.loads(value)
        except ValueError:
            raise invalid_parameter(name, "It must be valid JSON.") from None

    def json_list(self, name: str) -> list[str]:
        value = self.json(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid_parameter(name, "It must be a JSON array of strings.")
        return value

    def csv(self, name: str) -> list[str]:
        value = self.str(name)
        return [v.strip() for v in value.split(",") if v.strip()] if value else []

    def ids(self, name: str) -> list[str]:
        """Ids given in any of the SDK forms: JSON array, comma list or ``Name.N``."""
        value = self.str(name)
        if value is not None:
            if value.startswith("["):
                return self.json_list(name)
            return self.csv(name)
        return self.repeat_list(name)


def dispatch(call: Call, params: Params) -> dict:
    handler = ACTIONS.get((call.product, call.action))
    if handler is None:
        raise ApiError("InvalidAction.NotFound",
                       f"Specified api is not found, please check your url and method. ({call.action})", 404)
    return handler(call, params)
