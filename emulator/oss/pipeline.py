"""One OSS request through :meth:`emulator.server.Emulator.serve`, the pipeline RPC calls take too: route it,
authenticate and authorise it, run its handler with the fault that matched, answer errors as OSS does (XML, or
``x-oss-err`` for HEAD). Calls are logged (and faults matched) as ``oss:<Operation>``."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import unquote

from aiohttp import web

from ..arns import oss_resources
from ..errors import ApiError
from ..fault_kinds import CORRUPT, DROP_AFTER
from ..security import MAX_OBJECT_SIZE, MAX_XML_BODY
from .auth import Identity, authenticate
from .codec import error_header, error_xml, http_date
from .common import use_bucket
from .context import Ctx
from .errors import (
    MALFORMED,
    access_denied,
    as_oss_error,
    entity_too_large,
    err,
    internal_error,
    invalid_argument,
    xml_too_large,
)
from .routing import (
    HANDLERS,
    OBJECT_WRITE_OPS,
    RAM_ACTIONS,
    READ_OPS,
    UPLOAD_OPS,
    XML_BODY_OPS,
    operation_of,
    parse_query,
)

log = logging.getLogger("emulator.oss")


class OssCall:
    """An OSS request (path-style ``/bucket/key``); see :class:`emulator.server.Exchange`."""

    log = log

    def __init__(self, emulator, request: web.Request) -> None:
        self.emulator, self.request = emulator, request
        self.request_id = uuid.uuid4().hex[:24].upper()
        self.label = "oss:Unknown"
        self.region: str | None = None
        self.access_key_id: str | None = None
        self.fault: str | None = None
        self.ctx: Ctx | None = None

    async def admit(self) -> None:
        request = self.request
        path = unquote(request.rel_url.raw_path)
        bucket, _, key = path[1:].partition("/") if path != "/" else ("", "", "")
        bucket_name = bucket or None
        key_name = key or None
        query = parse_query(request.rel_url.raw_query_string)
        _check_text(request)
        identity = authenticate(self.emulator, request, bucket_name, key_name)
        self.region = identity.region
        self.access_key_id = identity.key.access_key_id if identity.key else None
        op = operation_of(request.method, bucket_name, key_name, query, request.headers)
        self.label = f"oss:{op}"
        self.ctx = Ctx(self.emulator, request, self.request_id, op, bucket_name, key_name, query, identity)
        self._authorise(self.ctx, identity)
        length = request.content_length
        if op in UPLOAD_OPS and length is not None and length > MAX_OBJECT_SIZE:
            raise entity_too_large()
        if op in XML_BODY_OPS and length is not None and length > MAX_XML_BODY:
            raise xml_too_large()

    def _authorise(self, ctx: Ctx, identity: Identity) -> None:
        if identity.key is not None:
            if ctx.op != "DeleteMultipleObjects":  # its keys are in the body: checked by the handler, each of them
                self.emulator.keys.check_permission(identity.key, RAM_ACTIONS[ctx.op],
                                                    lambda: oss_resources(ctx.bucket, ctx.key))
        elif ctx.bucket is None:
            raise access_denied("AccessDenied: anonymous access to ListBuckets is not allowed.")
        else:  # anonymous: reads and object writes, as the bucket's ACL allows; never a bucket or its config
            if ctx.op not in READ_OPS and ctx.op not in OBJECT_WRITE_OPS:
                raise access_denied("AccessDenied: anonymous access to this operation is not allowed.")
            use_bucket(ctx, for_write=ctx.op in OBJECT_WRITE_OPS)  # the ACL decides before the body is read

    async def run(self) -> tuple[web.StreamResponse, str | None]:
        ctx = self.ctx
        assert ctx is not None  # admitted
        ctx.drop_after = self.fault == DROP_AFTER
        ctx.corrupt = self.fault == CORRUPT
        response = await HANDLERS[ctx.op](ctx)
        return response, "BodyCorrupted" if ctx.corrupt else None

    def fault_target(self) -> tuple[dict[str, str], list[str]]:
        """OSS calls name their bucket and object key (fault rules' ``resource_ids``); there is no DryRun."""
        ctx = self.ctx
        return {}, [i for i in ((ctx.bucket, ctx.key) if ctx else ()) if i]

    def refuse(self, exc: ApiError) -> tuple[ApiError, web.StreamResponse]:
        """Errors raised by shared code (RAM checks, fault injection) in OSS's codes, answered in XML."""
        exc = as_oss_error(exc)
        return exc, _error_response(self.emulator, self.request, exc, self.request_id)

    @staticmethod
    def nested_too_deep() -> ApiError:  # XML nested beyond reason
        return err("MalformedXML", MALFORMED, 400)

    internal_error = staticmethod(internal_error)


def _check_text(request: web.Request) -> None:
    """Header values must be text: undecodable bytes would break the answer (stored metadata) later."""
    for name, value in request.headers.items():
        try:
            name.encode()
            value.encode()
        except UnicodeEncodeError:
            raise invalid_argument("A header is not valid UTF-8 text.", name.encode("utf-8", "replace").decode(),
                                   "") from None


def _error_response(emulator, request: web.Request, exc: ApiError, request_id: str) -> web.Response:
    extra = dict(exc.extra)
    ec = str(extra.pop("EC", "0000-00000000"))
    body = error_xml(exc.code, exc.message, request_id, request.host or "oss.emulator", ec, extra)
    headers = {"x-oss-request-id": request_id, "Date": http_date(emulator.state.now()), "Server": "AliyunOSS",
               "x-oss-ec": ec, **exc.headers}
    if request.method == "HEAD":
        headers["x-oss-err"] = error_header(body)
        return web.Response(status=exc.status, headers=headers)
    return web.Response(status=exc.status, body=body, content_type="application/xml", headers=headers)
