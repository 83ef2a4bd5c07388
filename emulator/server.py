"""The HTTP front door: one port serves ECS, VPC, RDS, STS (RPC), OSS (REST), the ECS metadata service and the
admin API."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl

from aiohttp import web

from . import admin, arns, metadata, products, registry, security, sts
from .auth import parse_acs3_authorization, verify_acs3, verify_rpc_v1
from .clock import SimClock
from .errors import ApiError
from .fault_kinds import DROP, DROP_AFTER
from .faults import Faults
from .keys import KeyStore
from .metrics import CallLog
from .rpc import VERSIONS, Call, Params, dispatch
from .state import State

log = logging.getLogger("emulator")

ADMIN_PREFIX = "/_emulator/"
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Query", "Check")
MAX_LINE = 128 * 1024


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


class Exchange(Protocol):
    """One call through :meth:`Emulator.serve`: the steps RPC (:class:`RpcCall`) and OSS
    (:class:`emulator.oss.OssCall`) each take their own way. ``label`` (``product:Action``, what fault rules name),
    ``region`` and ``access_key_id`` are what the call log records; :meth:`admit` fills them in as it learns them,
    so a call refused half way is logged with what was known by then."""

    request_id: str
    label: str
    region: str | None
    access_key_id: str | None
    fault: str | None  # set by Emulator.serve: the kind of the fault rule that matched the call, if any
    log: logging.Logger

    async def admit(self) -> None:
        """Parse, authenticate and authorise the call; raise :class:`ApiError` to refuse it."""

    async def run(self) -> tuple[web.StreamResponse, str | None]:
        """Serve the admitted call: its answer, and the error code the call log records with it (if any)."""

    def fault_target(self) -> tuple[Mapping[str, str], list[str] | None]:
        """What fault rules match an admitted call on besides its label: its parameters (``DryRun``; the resource
        ids unless given) and the resource ids it names (None: read them from the parameters)."""

    def refuse(self, exc: ApiError) -> tuple[ApiError, web.StreamResponse]:
        """``exc`` in this protocol's codes, and its answer."""

    def nested_too_deep(self) -> ApiError:
        """The error of a request nested beyond reason (``RecursionError``)."""

    def internal_error(self) -> ApiError:
        """The error of an unexpected exception (500)."""


class Emulator:
    """A local Alibaba Cloud.

    Example::

        emu = Emulator(data_dir="/tmp/emu", time_scale=600)
        await emu.start("127.0.0.1", 9100)
        ...
        await emu.stop()
    """

    def __init__(self, data_dir: str | Path | None = None, time_scale: float = 1.0,
                 keys: KeyStore | None = None, seed: int = 0, save_interval: float = 1.0,
                 admin_token: str | None = None) -> None:
        products.load()
        self.keys = keys or KeyStore.default()
        self.admin_token = admin_token or security.new_token()  # the admin API's bearer token
        self.nonces = security.NonceCache()  # RPC signature nonces of the last 15 real minutes
        self.state = State(SimClock(time_scale=time_scale), data_dir, seed)
        if not self.state.load(time_scale):
            registry.initialise(self.state)
            self.state.dirty = True
        self.keys.temporary = self.state.table("sts.keys")
        self.faults = Faults(self.state.table("admin").get("faults"))
        self.calls = CallLog()
        self.save_interval = save_interval
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._saver: asyncio.Task | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        # bodies are read through security.read_limited (per-API limits) or streamed (OSS uploads)
        app = web.Application(client_max_size=security.MAX_ADMIN_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 9100) -> int:
        self._runner = web.AppRunner(self.make_app(), access_log=None, handler_cancellation=True,
                                     max_line_size=MAX_LINE, max_field_size=MAX_LINE)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{port}"
        if not security.is_loopback(host):
            log.warning("emulator listening on %s, which is not a loopback address: anyone who can reach this "
                        "host and port can call the emulated cloud with the emulator's keys (the admin API still "
                        "needs the admin token). Use --host 127.0.0.1 unless other machines or containers must "
                        "reach it.", host)
        self._saver = asyncio.create_task(self._save_loop())
        log.info("emulator listening on %s (time scale %s)", self.base_url, self.state.clock.time_scale)
        return port

    async def stop(self) -> None:
        if self._saver:
            self._saver.cancel()
        if self._runner:
            await self._runner.cleanup()
        self.state.save()

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(self.save_interval)
            if self.state.dirty:
                try:
                    self.state.save()
                except Exception:  # pragma: no cover - disk full and the like
                    log.exception("could not save emulator state")

    def reset(self) -> None:
        self.state.reset()
        registry.initialise(self.state)
        self.keys.temporary = self.state.table("sts.keys")
        self.faults.configure({})
        self.calls.clear()

    # -- dispatch ---------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        try:
            if path.startswith(ADMIN_PREFIX):
                for method, prefix, fn in registry.RAW_ROUTES:
                    if path.startswith(prefix) and request.method in (method, "HEAD"):
                        self.state.advance()
                        return await fn(self, request)
                return await admin.handle(self, request)
            if metadata.is_metadata_request(request):  # the ECS metadata service's paths (no signature, no token)
                return await metadata.handle(self, request)
            self.state.advance()
            if request.headers.get("x-acs-action") or "Action" in request.query:
                return await self.serve(request, RpcCall(self, request, await self.read_rpc_body(request)))
            # a classic RPC call may carry everything in a form body; RPC is always served at "/" (OSS paths
            # name a bucket), so an OSS upload is never read here
            if (path == "/" and request.method == "POST"
                    and request.content_type == "application/x-www-form-urlencoded"):
                body = await self.read_rpc_body(request)
                if b"Action=" in body:
                    return await self.serve(request, RpcCall(self, request, body))
            from . import oss  # imported lazily: OSS streams its bodies (uploads, downloads)

            return await self.serve(request, oss.OssCall(self, request))
        except ApiError as exc:  # errors raised outside a product handler
            return self.rpc_error(exc, new_request_id())
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("internal error serving %s %s", request.method, path)
            return self.rpc_error(RpcCall.internal_error(), new_request_id())

    @staticmethod
    async def read_rpc_body(request: web.Request) -> bytes:
        """The RPC form body, refused (400) past 1 MiB before it is read."""
        return await security.read_limited(request, security.MAX_RPC_BODY, lambda: ApiError(
            "RequestEntityTooLarge", f"The request body must not exceed {security.MAX_RPC_BODY} bytes.", 400))

    async def serve(self, request: web.Request, call: Exchange) -> web.StreamResponse:
        """The steps every call takes, RPC or OSS: admit it (parse, authenticate, authorise), apply the fault rules,
        run it, answer an error as its protocol does, and log the call (``product:Action``, status, code)."""
        fault: dict | None = None
        try:
            await call.admit()
            fired = self.faults.decide(call.label, *call.fault_target())
            if fired is not None:
                call.fault, fault = fired.kind, fired.log()
                if fired.error is not None:
                    raise fired.error
            if call.fault == DROP:
                return self.drop_connection(request, call.label, call.region, call.fault, call.request_id,
                                            call.access_key_id, fault)
            response, code = await call.run()
            status = response.status
        except ApiError as exc:
            status, code, response = self._refuse(call, exc)
        except (ConnectionError, asyncio.CancelledError):  # the client went away mid-request
            self.calls.record(call.label, call.region, 499, "ClientDisconnected", call.request_id, call.access_key_id,
                              fault)
            raise
        except RecursionError:  # a parameter or an XML body nested beyond reason
            status, code, response = self._refuse(call, call.nested_too_deep())
        except Exception:
            call.log.exception("internal error in %s", call.label)
            status, code, response = self._refuse(call, call.internal_error())
        if call.fault == DROP_AFTER:  # executed (state changes stay), but the answer never leaves
            return self.drop_connection(request, call.label, call.region, call.fault, call.request_id,
                                        call.access_key_id, fault)
        self.calls.record(call.label, call.region, status, code, call.request_id, call.access_key_id, fault)
        return response

    @staticmethod
    def _refuse(call: Exchange, exc: ApiError) -> tuple[int, str, web.StreamResponse]:
        exc, response = call.refuse(exc)
        return exc.status, exc.code, response

    def drop_connection(self, request: web.Request, label: str, region: str | None, kind: str, request_id: str,
                        access_key_id: str | None, fault: dict | None = None) -> web.Response:
        """Close the connection without an answer; the call log says ``ConnectionDropped[After]``."""
        code = "ConnectionDroppedAfter" if kind == DROP_AFTER else "ConnectionDropped"
        self.calls.record(label, region, 0, code, request_id, access_key_id, fault)
        if request.transport:
            request.transport.abort()
        return web.Response(status=500)

    def authenticate(self, request: web.Request, query: dict, params: dict, body: bytes):
        """Verify the signature, then that the signed timestamp is within 15 minutes of the real clock and
        the signed nonce was not used in the last 15 minutes (``InvalidTimeStamp.Expired``,
        ``SignatureNonceUsed``): a captured request cannot be replayed."""
        authorization = request.headers.get("Authorization", "")
        now = sts.credential_now(self.state)  # STS key expiry: the real clock (as the SDKs see it)
        if authorization.startswith("ACS3-"):
            if not authorization.startswith("ACS3-HMAC-SHA256 "):
                raise ApiError("InvalidSignatureMethod", "Only ACS3-HMAC-SHA256 is supported.", 400)
            if "Credential=" not in authorization:
                raise ApiError("IncompleteSignature", "The request signature does not conform to Aliyun standards.",
                               400)
            credential = authorization.split("Credential=", 1)[1].split(",", 1)[0].strip()
            key = self.keys.lookup(credential, now, request.headers.get("x-acs-security-token"))
            verify_acs3(request.method, request.path, query, request.headers, body, key.secret, authorization)
            signed = set(parse_acs3_authorization(authorization).get("SignedHeaders", "").split(";"))
            for header in ("x-acs-date", "x-acs-signature-nonce"):
                if header in request.headers and header not in signed:
                    raise ApiError("IncompleteSignature", f"The header {header} must be signed.", 400)
            security.check_fresh(request.headers.get("x-acs-date"))
            self.nonces.use(key.access_key_id, request.headers.get("x-acs-signature-nonce"))
            return key
        if "Signature" in params:
            key = self.keys.lookup(params.get("AccessKeyId"), now, params.get("SecurityToken"))
            verify_rpc_v1(request.method, params, key.secret)
            security.check_fresh(params.get("Timestamp"))
            self.nonces.use(key.access_key_id, params.get("SignatureNonce"))
            return key
        raise ApiError("MissingAccessKeyId", "AccessKeyId is mandatory for this action.", 400)

    @staticmethod
    def rpc_error(exc: ApiError, request_id: str) -> web.Response:
        body = {"RequestId": request_id, "HostId": "ecs.aliyuncs.com", "Code": exc.code,
                "Message": exc.message, "Recommend": f"https://api.aliyun.com/troubleshoot?q={exc.code}",
                **exc.extra}
        return web.Response(status=exc.status, body=json.dumps(body).encode(), content_type="application/json",
                            headers={"x-acs-request-id": request_id, **exc.headers})



class RpcCall:
    """An RPC call (ECS, VPC, RDS, STS) through :meth:`Emulator.serve`: parameters from the query and the form
    body, action and product from ``x-acs-action``/``Action`` and ``x-acs-version``/``Version``, JSON answers."""

    log = log

    def __init__(self, emulator: Emulator, request: web.Request, body: bytes) -> None:
        self.emulator, self.request, self.body = emulator, request, body
        self.request_id = new_request_id()
        self.query = dict(request.query)
        self.label = "?:?"
        self.region: str | None = None
        self.access_key_id: str | None = None
        self.fault: str | None = None
        self.params: dict[str, str] = {}
        self.product = self.action = ""
        self.key = None

    async def admit(self) -> None:
        request, emulator = self.request, self.emulator
        form: dict[str, str] = {}
        if self.body and request.content_type == "application/x-www-form-urlencoded":
            try:
                text = self.body.decode()
            except UnicodeDecodeError:
                raise ApiError("InvalidParameter", "The request body is not valid UTF-8.", 400) from None
            form = dict(parse_qsl(text, keep_blank_values=True))
        params = self.params = {**self.query, **form}
        _check_text(request.headers, params)
        self.action = request.headers.get("x-acs-action") or params.get("Action", "")
        version = request.headers.get("x-acs-version") or params.get("Version", "")
        self.label = f"?:{self.action}"
        self.region = params.get("RegionId")
        product = VERSIONS.get(version)
        if product is None:
            raise ApiError("InvalidVersion", f"Specified parameter Version is not valid: {version!r}.", 400)
        self.product, self.label = product, f"{product}:{self.action}"
        label = self.label
        self.key = key = emulator.authenticate(request, self.query, params, self.body)
        self.access_key_id = key.access_key_id
        emulator.keys.check_permission(key, label, lambda: arns.call_resources(emulator.state, label, params))

    async def run(self) -> tuple[web.StreamResponse, str | None]:
        emulator = self.emulator
        call = Call(emulator.state, self.product, self.action, self.request_id, self.access_key_id,
                    emulator.base_url, self.region, extra={"key": self.key, "emulator": emulator})
        result = dispatch(call, Params(self.params))
        if not self.action.startswith(READ_ONLY_PREFIXES):
            emulator.state.dirty = True
        return web.Response(body=json.dumps({"RequestId": self.request_id, **result}).encode(),
                            content_type="application/json", headers={"x-acs-request-id": self.request_id}), None

    def fault_target(self) -> tuple[Mapping[str, str], list[str] | None]:
        return self.params, None  # DryRun and the id parameters (faults.param_ids)

    def refuse(self, exc: ApiError) -> tuple[ApiError, web.StreamResponse]:
        return exc, Emulator.rpc_error(exc, self.request_id)

    @staticmethod
    def nested_too_deep() -> ApiError:  # a parameter nested beyond reason (JSON of thousands of brackets)
        return ApiError("InvalidParameter", "A parameter is nested too deeply.", 400)

    @staticmethod
    def internal_error() -> ApiError:
        return ApiError("InternalError", "The request processing has failed due to some unknown error, exception "
                        "or failure.", 500)


def _check_text(headers, params: dict) -> None:
    """Refuse header and parameter values that are not text (undecodable bytes, NUL): 400, never a 500 later."""
    for name, value in [*headers.items(), *params.items()]:
        if "\x00" in value or "\x00" in name or not _encodable(value) or not _encodable(name):
            raise ApiError("InvalidParameter", "A header or parameter is not valid UTF-8 text.", 400)


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
