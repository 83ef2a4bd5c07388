"""Extension points product modules use to plug into the server and the admin API.

* :func:`on_init` -- seed a fresh (or reset) state: regions, default VPCs, public images.
* :func:`fleet_section` -- load one section of a fleet spec (``POST /_emulator/fleet``).
* :func:`admin_route` -- an extra admin endpoint under ``/_emulator/``.
* :func:`raw_route` -- a plain HTTP endpoint the emulator serves itself (e.g. backup downloads).
* :func:`rest_operations` -- the operation names a REST product (OSS) serves, so fault rules can name them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .errors import ApiError
from .state import State

InitHook = Callable[[State], None]
FleetLoader = Callable[[State, Any], Any]

INIT_HOOKS: list[tuple[int, InitHook]] = []
FLEET_LOADERS: dict[str, tuple[int, FleetLoader]] = {}
ADMIN_ROUTES: dict[tuple[str, str], Callable[..., Any]] = {}
RAW_ROUTES: list[tuple[str, str, Callable[..., Awaitable[Any]]]] = []
REST_OPERATIONS: set[str] = set()        # "product:Operation" of REST products (RPC actions live in rpc.ACTIONS)


def on_init(order: int = 100) -> Callable[[InitHook], InitHook]:
    def register(fn: InitHook) -> InitHook:
        INIT_HOOKS.append((order, fn))
        INIT_HOOKS.sort(key=lambda item: item[0])
        return fn

    return register


def fleet_section(name: str, order: int = 100) -> Callable[[FleetLoader], FleetLoader]:
    """Register the loader of fleet-spec section ``name``; lower ``order`` loads first."""

    def register(fn: FleetLoader) -> FleetLoader:
        FLEET_LOADERS[name] = (order, fn)
        return fn

    return register


MAX_FLEET_COUNT = 100_000  # instances, images or backups one fleet-spec entry may ask for


def fleet_count(value: Any, what: str, hi: int = MAX_FLEET_COUNT) -> int:
    """A fleet spec's count: an integer (or digit string) from 0 to ``hi``, else ``InvalidFleetSpec`` (400)."""
    if isinstance(value, str) and value.isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise ApiError("InvalidFleetSpec", f"{what} must be an integer from 0 to {hi}, got {value!r}", 400)
    return value


def admin_route(method: str, name: str):
    """``fn(emulator, body: dict, query: dict) -> dict`` served at ``METHOD /_emulator/<name>``."""

    def register(fn):
        ADMIN_ROUTES[(method.upper(), name)] = fn
        return fn

    return register


def raw_route(method: str, prefix: str):
    """``async fn(emulator, request) -> aiohttp.web.StreamResponse`` for paths under ``prefix``."""

    def register(fn):
        RAW_ROUTES.append((method.upper(), prefix, fn))
        return fn

    return register


def rest_operations(product: str, names) -> None:
    """Declare the operations ``product`` serves over REST (e.g. ``rest_operations("oss", HANDLERS)``)."""
    REST_OPERATIONS.update(f"{product}:{name}" for name in names)


def initialise(state: State) -> None:
    for _, hook in INIT_HOOKS:
        hook(state)
