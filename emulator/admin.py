"""The admin API under ``/_emulator/`` (no signature; loopback only).

==========================  =======================================================
``GET  /_emulator/health``  liveness, simulated time
``POST /_emulator/reset``   forget everything, back to the built-in regions
``GET  /_emulator/state``   dump every table (``?table=ecs.images`` for one)
``GET|POST /_emulator/clock``  read; ``{"advance": s, "time_scale": n, "freeze": bool}``
``GET|PUT /_emulator/faults``  fault config (see :mod:`emulator.faults`; 400 InvalidFaultConfig)
``GET|DELETE /_emulator/calls``  per-action counters and recent calls; reset them
``POST /_emulator/fleet``   load a fleet spec (JSON or YAML body)
==========================  =======================================================

Product modules add their own endpoints through :func:`emulator.registry.admin_route`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from . import faults, registry
from .clock import iso
from .errors import ApiError

if TYPE_CHECKING:
    from .server import Emulator


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data, default=str).encode(), content_type="application/json")


async def _body(request: web.Request) -> dict:
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = yaml.safe_load(raw) if "yaml" in (request.content_type or "") else json.loads(raw)
    except ValueError as exc:
        raise ApiError("InvalidBody", f"body is not valid JSON/YAML: {exc}", 400) from None
    if not isinstance(data, dict):
        raise ApiError("InvalidBody", "body must be an object", 400)
    return data


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
    state = emulator.state
    state.advance()
    try:
        if name == "health":
            return _json({"status": "ok", "now": iso(state.now()), "time_scale": state.clock.time_scale})
        if name == "reset" and method == "POST":
            emulator.reset()
            return _json({"status": "reset"})
        if name == "state" and method == "GET":
            table = request.query.get("table")
            data = {table: state.table(table)} if table else state.tables
            return _json({"now": state.now(), "tables": data})
        if name == "clock":
            if method == "POST":
                body = await _body(request)
                if "time_scale" in body:
                    state.clock.set_scale(float(body["time_scale"]))
                if "freeze" in body:
                    state.clock.freeze(bool(body["freeze"]))
                if "advance" in body:
                    state.clock.advance(float(body["advance"]))
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
            return _json({"counters": emulator.calls.counters(),
                          "recent": emulator.calls.recent(limit, request.query.get("action"))})
        if name == "fleet" and method == "POST":
            return _json(load_fleet(emulator, await _body(request)))
        route = registry.ADMIN_ROUTES.get((method, name))
        if route is not None:
            body = await _body(request) if method in ("POST", "PUT") else {}
            result = route(emulator, body, dict(request.query))
            state.dirty = True
            return _json(result)
        return _json({"Code": "NotFound", "Message": f"no admin endpoint {method} /_emulator/{name}"}, 404)
    except ApiError as exc:
        return _json({"Code": exc.code, "Message": exc.message}, exc.status)
    except (ValueError, TypeError, KeyError) as exc:
        return _json({"Code": "InvalidRequest", "Message": str(exc)}, 400)
