"""The HTTP front door: one port serves ECS, VPC, RDS, STS (RPC), OSS (REST), the ECS metadata service and the
admin API."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from urllib.parse import parse_qsl

from aiohttp import web

from . import admin, metadata, products, ram, registry, security, sts
from .auth import KeyStore, parse_acs3_authorization, verify_acs3, verify_rpc_v1
from .clock import SimClock
from .errors import ApiError
from .faults import DROP, DROP_AFTER, Faults
from .metrics import CallLog
from .rpc import VERSIONS, Call, Params, dispatch
from .state import State

log = logging.getLogger("emulator")

ADMIN_PREFIX = "/_emulator/"
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Query", "Check")
MAX_LINE = 128 * 1024


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


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
                return await self.handle_rpc(request, await self.read_rpc_body(request))
            # a classic RPC call may carry everything in a form body; RPC is always served at "/" (OSS paths
            # name a bucket), so an OSS upload is never read here
            if (path == "/" and request.method == "POST"
                    and request.content_type == "application/x-www-form-urlencoded"):
                body = await self.read_rpc_body(request)
                if b"Action=" in body:
                    return await self.handle_rpc(request, body)
            from . import oss  # imported lazily: OSS has its own streaming handler

            return await oss.handle(self, request)
        except ApiError as exc:  # errors raised outside a product handler
            return self.rpc_error(exc, new_request_id())
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("internal error serving %s %s", request.method, path)
            return self.rpc_error(ApiError("InternalError", "The request processing has failed due to some "
                                           "unknown error, exception or failure.", 500), new_request_id())

    @staticmethod
    async def read_rpc_body(request: web.Request) -> bytes:
        """The RPC form body, refused (400) past 1 MiB before it is read."""
        return await security.read_limited(request, security.MAX_RPC_BODY, lambda: ApiError(
            "RequestEntityTooLarge", f"The request body must not exceed {security.MAX_RPC_BODY} bytes.", 400))

    async def handle_rpc(self, request: web.Request, body: bytes) -> web.StreamResponse:
        request_id = new_request_id()
        query = dict(request.query)
        form: dict[str, str] = {}
        action = version = ""
        label = "?:?"
        region = None
        access_key_id = None
        fault = None
        try:
            if body and request.content_type == "application/x-www-form-urlencoded":
                try:
                    text = body.decode()
                except UnicodeDecodeError:
                    raise ApiError("InvalidParameter", "The request body is not valid UTF-8.", 400) from None
                form = dict(parse_qsl(text, keep_blank_values=True))
            params = {**query, **form}
            _check_text(request.headers, params)
            action = request.headers.get("x-acs-action") or params.get("Action", "")
            version = request.headers.get("x-acs-version") or params.get("Version", "")
            label = f"?:{action}"
            region = params.get("RegionId")
            product = VERSIONS.get(version)
            if product is None:
                raise ApiError("InvalidVersion", f"Specified parameter Version is not valid: {version!r}.", 400)
            label = f"{product}:{action}"
            key = self.authenticate(request, query, params, body)
            access_key_id = key.access_key_id
            self.keys.check_permission(key, label, lambda: ram.resource_tags(self.state, label, params))
            fault = self.faults.before_call(label)
            if fault == DROP:
                return self.drop_connection(request, label, region, fault, request_id, access_key_id)
            call = Call(self.state, product, action, request_id, access_key_id, self.base_url, region,
                        extra={"key": key, "emulator": self})
            result = dispatch(call, Params(params))
            if not action.startswith(READ_ONLY_PREFIXES):
                self.state.dirty = True
            status, code = 200, None
            response = web.Response(body=json.dumps({"RequestId": request_id, **result}).encode(),
                                    content_type="application/json", headers={"x-acs-request-id": request_id})
        except ApiError as exc:
            status, code, response = exc.status, exc.code, self.rpc_error(exc, request_id)
        except RecursionError:  # a parameter nested beyond reason (JSON of thousands of brackets)
            exc = ApiError("InvalidParameter", "A parameter is nested too deeply.", 400)
            status, code, response = exc.status, exc.code, self.rpc_error(exc, request_id)
        except Exception:
            log.exception("internal error in %s", label)
            status, code = 500, "InternalError"
            response = self.rpc_error(ApiError("InternalError", "The request processing has failed due to some "
                                               "unknown error, exception or failure.", 500), request_id)
        if fault == DROP_AFTER:  # executed (state changes stay), but the answer never leaves
            return self.drop_connection(request, label, region, fault, request_id, access_key_id)
        self.calls.record(label, region, status, code, request_id, access_key_id)
        return response

    def drop_connection(self, request: web.Request, label: str, region: str | None, kind: str, request_id: str,
                        access_key_id: str | None) -> web.Response:
        """Close the connection without an answer; the call log says ``ConnectionDropped[After]``."""
        code = "ConnectionDroppedAfter" if kind == DROP_AFTER else "ConnectionDropped"
        self.calls.record(label, region, 0, code, request_id, access_key_id)
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
