"""The admin API under ``/_emulator/`` (no cloud signature: a bearer token instead).

==========================  =======================================================
``GET  /_emulator/health``  liveness, simulated time (no token needed: readiness probes)
``POST /_emulator/reset``   forget everything, back to the built-in regions
``GET  /_emulator/state``   dump every table (``?table=ecs.images`` for one), secrets redacted
``GET|POST /_emulator/clock``  read; ``{"advance": s, "time_scale": n, "freeze": bool}``
``GET|PUT /_emulator/faults``  fault config (see :mod:`emulator.faults`; 400 InvalidFaultConfig)
``GET|DELETE /_emulator/calls``  per-action counters and recent calls; reset them
``POST /_emulator/fleet``   load a fleet spec (JSON body)
==========================  =======================================================

Every request but ``GET|HEAD health`` must carry ``Authorization: Bearer <token>`` (the token the server
was started with, see :mod:`emulator.security`): else 401 ``Unauthorized``. A request with an ``Origin``
header (a browser page) is refused with 403 ``Forbidden``; a body must be JSON (``Content-Type:
application/json``, else 415) of at most 16 MiB (else 413). These checks run before the body is read.
A mutating request that fails leaves the state as it was.

Product modules add their own endpoints through :func:`emulator.registry.admin_route`.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import faults, registry, security
from .clock import iso
from .errors import ApiError

if TYPE_CHECKING:
    from .server import Emulator

log = logging.getLogger("emulator.admin")

MAX_TIME_SCALE = 1e7
MAX_ADVANCE = 100 * 366 * 86400  # a century of simulated time per call


def _json(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(data, default=str).encode(), content_type="application/json",
                        headers=headers)


def _error(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    return _json({"Code": code, "Message": message}, status, headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def _body(request: web.Request) -> dict:
    too_large = lambda: ApiError("RequestEntityTooLarge",  # noqa: E731
                                 f"admin bodies are at most {security.MAX_ADMIN_BODY} bytes", 413)
    raw = await security.read_limited(request, security.MAX_ADMIN_BODY, too_large)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError("InvalidBody", f"body is not valid JSON: {str(exc)[:200]}", 400) from None
    if not isinstance(data, dict):
        raise ApiError("InvalidBody", "body must be a JSON object", 400)
    return data


def guard(emulator: Emulator, request: web.Request, name: str) -> web.Response | None:
    """The refusal of a request the admin API must not serve, or None; runs before the body is read."""
    if "Origin" in request.headers:
        return _error(403, "Forbidden", "The admin API refuses browser requests (Origin header).")
    if name == "health" and request.method in ("GET", "HEAD"):
        return None
    if not security.token_matches(request.headers.get("Authorization"), emulator.admin_token):
        return _error(401, "Unauthorized", "The admin API needs 'Authorization: Bearer <admin token>' (printed at "
                      f"start and written to <data-dir>/{security.TOKEN_FILE}).",
                      {"WWW-Authenticate": 'Bearer realm="emulator-admin"'})
    if security.has_body(request) and request.content_type != "application/json":
        return _error(415, "UnsupportedMediaType", "Admin request bodies must be JSON (Content-Type: "
                      "application/json).")
    return None


class _Transaction:
    """Undo every change to the state's tables, ids and schedule if the block raises."""

    def __init__(self, state) -> None:
        self.state = state

    def __enter__(self) -> _Transaction:
        s = self.state
        self.saved = pickle.dumps((s.tables, s.counters, s.scheduler.to_state()), protocol=pickle.HIGHEST_PROTOCOL)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            return
        tables, counters, scheduler = pickle.loads(self.saved)
        s = self.state
        for name in list(s.tables):  # in place: other objects hold the table dicts (the key store: sts.keys)
            if name not in tables:
                del s.tables[name]
        for name, rows in tables.items():
            table = s.table(name)
            table.clear()
            table.update(rows)
        s.counters.clear()
        s.counters.update(counters)
        s.scheduler.load_state(scheduler)


def _number(body: dict, name: str, lo: float, hi: float) -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number")
    number = float(value)
    if not math.isfinite(number) or not lo <= number <= hi:
        raise ValueError(f"{name} must be a number between {lo:g} and {hi:g}")
    return number


def _clock_change(state, body: dict) -> None:
    """Validate every field first, then apply: a bad request changes nothing."""
    unknown = set(body) - {"time_scale", "freeze", "advance"}
    if unknown:
        raise ValueError(f"unknown clock fields: {', '.join(sorted(unknown))}")
    scale = _number(body, "time_scale", 1e-6, MAX_TIME_SCALE) if "time_scale" in body else None
    advance = _number(body, "advance", 0, MAX_ADVANCE) if "advance" in body else None
    if "freeze" in body and not isinstance(body["freeze"], bool):
        raise ValueError("freeze must be true or false")
    if scale is not None:
        state.clock.set_scale(scale)
    if "freeze" in body:
        state.clock.freeze(body["freeze"])
    if advance is not None:
        state.clock.advance(advance)


def redacted_tables(emulator: Emulator, tables: dict) -> dict:
    """Tables as JSON-able data with every secret (key secrets, security tokens, ...) as ``"***"``."""
    known = [k.secret for k in emulator.keys.keys.values()]
    for key in list(emulator.keys.temporary.values()):
        known += [getattr(key, "secret", None) or "", getattr(key, "security_token", None) or ""]
    return {name: security.redact(rows, known) for name, rows in tables.items()}


def load_fleet(emulator: Emulator, spec: dict) -> dict:
    """Apply each known section of a fleet spec, in the loaders' order."""
    unknown = sorted(set(spec) - set(registry.FLEET_LOADERS))
    if unknown:
        raise ApiError("InvalidFleetSpec", f"unknown fleet sections: {', '.join(unknown)}", 400)
    result = {}
    for name, (_, loader) in sorted(registry.FLEET_LOADERS.items(), key=lambda kv: kv[1][0]):
        if name in spec:
            result[name] = loader(emulator.state, spec[name])
    emulator.state.dirty = True
    return result


async def handle(emulator: Emulator, request: web.Request) -> web.StreamResponse:
    name = request.path[len("/_emulator/"):].strip("/")
    method = request.method
    refused = guard(emulator, request, name)
    if refused is not None:
        return refused
    state = emulator.state
    try:
        state.advance()
        if name == "health":
            return _json({"status": "ok", "now": iso(state.now()), "time_scale": state.clock.time_scale})
        if name == "reset" and method == "POST":
            emulator.reset()
            return _json({"status": "reset"})
        if name == "state" and method == "GET":
            table = request.query.get("table")
            data = {table: state.tables.get(table, {})} if table else state.tables
            return _json({"now": state.now(), "tables": redacted_tables(emulator, data)})
        if name == "clock":
            if method == "POST":
                _clock_change(state, await _body(request))
                state.advance()
                state.dirty = True
            return _json({"now": state.now(), "iso": iso(state.now()), **state.clock.to_state()})
        if name == "faults":
            if method in ("PUT", "POST"):
                cfg = await _body(request)
                faults.validate(cfg)  # a bad config is refused whole; the previous one stays
                emulator.faults.configure(cfg)
                state.table("admin")["faults"] = emulator.faults.cfg
                state.dirty = True
            return _json(emulator.faults.cfg)
        if name == "calls":
            if method == "DELETE":
                emulator.calls.clear()
                return _json({"status": "cleared"})
            limit = int(request.query.get("limit", "1000"))
            if limit < 0:
                raise ValueError("limit must not be negative")
            return _json({"counters": emulator.calls.counters(),
                          "recent": emulator.calls.recent(limit, request.query.get("action"))})
        if name == "fleet" and method == "POST":
            spec = await _body(request)
            with _Transaction(state):
                return _json(load_fleet(emulator, spec))
        route = registry.ADMIN_ROUTES.get((method, name))
        if route is not None:
            if method == "GET":
                return _json(route(emulator, {}, dict(request.query)))
            body = await _body(request) if method in ("POST", "PUT") else {}
            with _Transaction(state):
                result = route(emulator, body, dict(request.query))
            state.dirty = True
            return _json(result)
        return _json({"Code": "NotFound", "Message": f"no admin endpoint {method} /_emulator/{name}"}, 404)
    except ApiError as exc:
        return _json({"Code": exc.code, "Message": exc.message}, exc.status)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
        # the body or query did not have the shape the endpoint reads (a fleet section that is not a list...)
        return _json({"Code": "InvalidRequest", "Message": f"{type(exc).__name__}: {str(exc)[:300]}"}, 400)
