"""OSS REST API with on-disk, streamed object data.

Path-style addressing (``/bucket/key``), as ``alibabacloud_oss_v2`` uses with an IP endpoint or
``use_path_style=True``. Requests are verified with ``OSS4-HMAC-SHA256`` (:mod:`emulator.oss_auth`);
the signing scope's region selects the buckets: a bucket lives in the region it was created in,
and using it through another region's scope answers 403 ``AccessDenied`` with the bucket's
endpoint, as OSS does for a wrong-region endpoint.

State tables (plain data):

* ``oss.buckets``  name -> {name, region, acl, storage_class, created, lifecycle?}; ``lifecycle`` (set by
  PutBucketLifecycle) is the list of rules, each a dict keyed by the XML element names (``ID``,
  ``Prefix``, ``Status``, ``Transition``: [{``Days``, ``StorageClass``}], ``Expiration``: {``Days``}...)
* ``oss.objects``  "bucket/key" -> {bucket, key, segments: [[blob, size], ...], size, etag, crc,
  content_type, meta, headers, last_modified, storage_class, type}
* ``oss.uploads``  upload id -> {bucket, key, initiated, content_type, meta, headers, storage_class,
  parts: {number: {blob, size, etag, md5, crc, last_modified}}}

Object bytes live in blob files (:mod:`emulator.oss_store`) named by random ids, written to a
temporary file and renamed, so an interrupted upload never becomes visible.

Calls are recorded (and faults matched) as ``oss:<Operation>`` (``oss:PutObject``,
``oss:UploadPart``, ``oss:GetObject``...); permissions use RAM action names (UploadPart needs
``oss:PutObject``, HeadObject needs ``oss:GetObject``, ...).

Limits checked before a body is read (by ``Content-Length``; a chunked body is cut off when it passes the
limit): uploads (PutObject, UploadPart, AppendObject) at most 5 GiB (``EntityTooLarge``), XML bodies
(PutBucket, PutBucketLifecycle, CompleteMultipartUpload, DeleteMultipleObjects) at most 2 MiB
(``MalformedXML``). An anonymous request is refused (``AccessDenied``) before its body is read: anonymous
callers may read public-read(-write) buckets and write objects to public-read-write ones, nothing else
(no PutBucket, no bucket configuration).

Bucket lifecycle rules are validated and stored (Get/Put/DeleteBucketLifecycle) but never run:
no object changes storage class or expires. The fault kind ``corrupt`` (:mod:`emulator.faults`)
flips the first byte of an upload's body as it is received.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

from aliyun_ops.logic.crc64 import crc64_combine

from . import registry
from .errors import ApiError
from .faults import CORRUPT, DROP, DROP_AFTER
from .oss_auth import Identity, authenticate
from .oss_store import CHUNK, BlobStore
from .oss_xml import doc, el, error_header, error_xml, http_date, iso_ms, parse, url_encode
from .registry import fleet_section
from .security import MAX_OBJECT_SIZE, MAX_XML_BODY, read_limited

log = logging.getLogger("emulator.oss")

BUCKETS, OBJECTS, UPLOADS = "oss.buckets", "oss.objects", "oss.uploads"
OWNER_ID = "1234567890123456"
STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")
ACLS = ("private", "public-read", "public-read-write")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
MAX_KEYS = 1000
MAX_PART_NUMBER = 10000
COPY_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires")

# operation -> RAM action checked against the caller's allow list
RAM_ACTIONS = {
    "PutObject": "oss:PutObject", "AppendObject": "oss:PutObject", "CopyObject": "oss:PutObject",
    "InitiateMultipartUpload": "oss:PutObject", "UploadPart": "oss:PutObject",
    "UploadPartCopy": "oss:PutObject", "CompleteMultipartUpload": "oss:PutObject",
    "GetObject": "oss:GetObject", "HeadObject": "oss:GetObject", "GetObjectMeta": "oss:GetObject",
    "DeleteObject": "oss:DeleteObject", "DeleteMultipleObjects": "oss:DeleteObject",
    "AbortMultipartUpload": "oss:AbortMultipartUpload", "ListParts": "oss:ListParts",
    "ListMultipartUploads": "oss:ListMultipartUploads",
    "ListObjects": "oss:ListObjects", "ListObjectsV2": "oss:ListObjects",
    "ListBuckets": "oss:ListBuckets", "PutBucket": "oss:PutBucket", "DeleteBucket": "oss:DeleteBucket",
    "GetBucketInfo": "oss:GetBucketInfo", "HeadBucket": "oss:GetBucketInfo",
    "GetBucketLocation": "oss:GetBucketLocation", "GetBucketStat": "oss:GetBucketStat",
    "GetBucketAcl": "oss:GetBucketAcl", "PutBucketAcl": "oss:PutBucketAcl",
    "PutBucketLifecycle": "oss:PutBucketLifecycle", "GetBucketLifecycle": "oss:GetBucketLifecycle",
    "DeleteBucketLifecycle": "oss:DeleteBucketLifecycle",
}
READ_OPS = {"GetObject", "HeadObject", "GetObjectMeta", "ListObjects", "ListObjectsV2"}
OBJECT_WRITE_OPS = {"PutObject", "AppendObject", "CopyObject", "InitiateMultipartUpload", "UploadPart",
                    "UploadPartCopy", "CompleteMultipartUpload", "DeleteObject", "DeleteMultipleObjects",
                    "AbortMultipartUpload", "ListParts"}
UPLOAD_OPS = {"PutObject", "UploadPart", "AppendObject"}  # streamed bodies, at most MAX_OBJECT_SIZE
XML_BODY_OPS = {"PutBucket", "PutBucketLifecycle", "CompleteMultipartUpload", "DeleteMultipleObjects",
                "InitiateMultipartUpload"}  # bodies read whole, at most MAX_XML_BODY
# sub-resources OSS has but the emulator does not implement: answer NotImplemented, never 500
UNSUPPORTED = ("tagging", "cors", "website", "logging", "referer", "policy", "versioning",
               "versions", "replication", "encryption", "worm", "symlink", "restore", "inventory", "qos",
               "cname", "x-oss-process", "select", "accessPoint", "requestPayment", "transferAcceleration")

_MALFORMED = "The XML you provided was not well-formed or did not validate against our published schema."


# -- errors -------------------------------------------------------------------------------
def _err(code: str, message: str, status: int, ec: str = "0000-00000000", **extra) -> ApiError:
    return ApiError(code, message, status, extra={"EC": ec, **extra})


def no_such_bucket(bucket: str) -> ApiError:
    return _err("NoSuchBucket", "The specified bucket does not exist.", 404, "0015-00000101", BucketName=bucket)


def no_such_key(key: str) -> ApiError:
    return _err("NoSuchKey", "The specified key does not exist.", 404, "0026-00000001", Key=key)


def no_such_upload(upload_id: str) -> ApiError:
    return _err("NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload "
                "may have been aborted or completed.", 404, "0042-00000002", UploadId=upload_id)


def invalid_argument(message: str, name: str = "", value: str = "") -> ApiError:
    extra = {"ArgumentName": name, "ArgumentValue": value} if name else {}
    return _err("InvalidArgument", message, 400, "0017-00000000", **extra)


def invalid_digest() -> ApiError:
    return _err("InvalidDigest", "The Content-MD5 you specified is not valid.", 400, "0016-00000403")


def access_denied(message: str = "You have no right to access this object because of bucket acl.") -> ApiError:
    return _err("AccessDenied", message, 403, "0003-00000001")


def entity_too_large(limit: int = MAX_OBJECT_SIZE) -> ApiError:
    return _err("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.", 400,
                MaxSizeAllowed=limit)


def xml_too_large() -> ApiError:
    return _err("MalformedXML", f"The XML you provided is larger than {MAX_XML_BODY} bytes.", 400)


async def read_xml_body(ctx: Ctx) -> bytes:
    """A configuration body (XML), refused past :data:`MAX_XML_BODY` before it is read."""
    return await read_limited(ctx.request, MAX_XML_BODY, xml_too_large)


def _number(raw: str) -> int | None:
    """A non-negative decimal of ASCII digits (``"²"`` and ``"١"`` are digits to ``str.isdigit``, not here)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 20 else None


def _check_text(request: web.Request) -> None:
    """Header values must be text: undecodable bytes would break the answer (stored metadata) later."""
    for name, value in request.headers.items():
        try:
            name.encode()
            value.encode()
        except UnicodeEncodeError:
            raise invalid_argument("A header is not valid UTF-8 text.", name.encode("utf-8", "replace").decode(),
                                   "") from None


# -- request context ------------------------------------------------------------------------
@dataclass
class Ctx:
    emulator: object
    request: web.Request
    request_id: str
    op: str
    bucket: str | None
    key: str | None
    query: dict[str, str]
    identity: Identity = field(default_factory=lambda: Identity(None, None))
    drop_after: bool = False  # fault drop_after: run the operation, then cut the connection unanswered
    corrupt: bool = False  # fault corrupt: the upload body's first byte arrives flipped (see _receive)

    @property
    def state(self):
        return self.emulator.state  # type: ignore[attr-defined]

    @property
    def now(self) -> float:
        return self.state.now()

    @property
    def headers(self):
        return self.request.headers

    def headers_out(self, extra: dict | None = None) -> dict[str, str]:
        out = {"x-oss-request-id": self.request_id, "Date": http_date(self.now), "Server": "AliyunOSS"}
        if extra:
            out.update(extra)
        return out

    def xml(self, body: bytes, status: int = 200, headers: dict | None = None) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/xml",
                            headers=self.headers_out(headers))

    def empty(self, status: int = 200, headers: dict | None = None) -> web.Response:
        return web.Response(status=status, headers=self.headers_out(headers))


_STORES: dict[int, BlobStore] = {}
_TMP_DIRS: list[tempfile.TemporaryDirectory] = []


def store_of(emulator) -> BlobStore:
    store = _STORES.get(id(emulator))
    if store is None:
        data_dir = emulator.state.data_dir
        if data_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="emulator-oss-")
            _TMP_DIRS.append(tmp)
            data_dir = Path(tmp.name)
        store = _STORES[id(emulator)] = BlobStore(Path(data_dir) / "oss")
    return store


def _parse_query(raw: str) -> dict[str, str]:
    query: dict[str, str] = {}
    for pair in raw.split("&") if raw else []:
        if not pair:
            continue
        k, _, v = pair.partition("=")
        query[unquote(k)] = unquote(v)
    return query


def _operation(method: str, bucket: str | None, key: str | None, q: dict, headers) -> str:
    if bucket is None:
        if method == "GET":
            return "ListBuckets"
        raise _err("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)
    for sub in UNSUPPORTED:
        if sub in q:
            raise _err("NotImplemented", f"The emulator does not implement the '{sub}' sub-resource.", 501)
    if key is None:
        if "lifecycle" in q and method in ("PUT", "GET", "DELETE"):
            return {"PUT": "PutBucketLifecycle", "GET": "GetBucketLifecycle", "DELETE": "DeleteBucketLifecycle"}[method]
        if method == "PUT":
            return "PutBucketAcl" if "acl" in q else "PutBucket"
        if method == "DELETE":
            return "DeleteBucket"
        if method == "HEAD":
            return "HeadBucket"
        if method == "POST" and "delete" in q:
            return "DeleteMultipleObjects"
        if method == "GET":
            for sub, op in (("bucketInfo", "GetBucketInfo"), ("location", "GetBucketLocation"),
                            ("stat", "GetBucketStat"), ("acl", "GetBucketAcl"), ("uploads", "ListMultipartUploads")):
                if sub in q:
                    return op
            return "ListObjectsV2" if q.get("list-type") == "2" else "ListObjects"
    else:
        if "lifecycle" in q:  # a bucket sub-resource: never an object operation
            raise _err("NotImplemented", "The emulator does not implement the 'lifecycle' sub-resource on objects.",
                       501)
        if method == "PUT":
            if "acl" in q:
                raise _err("NotImplemented", "The emulator does not implement object ACLs.", 501)
            if "uploadId" in q or "partNumber" in q:
                return "UploadPartCopy" if "x-oss-copy-source" in headers else "UploadPart"
            return "CopyObject" if "x-oss-copy-source" in headers else "PutObject"
        if method == "GET":
            return "ListParts" if "uploadId" in q else "GetObject"
        if method == "HEAD":
            return "GetObjectMeta" if "objectMeta" in q else "HeadObject"
        if method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in q else "DeleteObject"
        if method == "POST":
            if "uploads" in q:
                return "InitiateMultipartUpload"
            if "uploadId" in q:
                return "CompleteMultipartUpload"
            if "append" in q:
                return "AppendObject"
    raise _err("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)


# -- entry point ----------------------------------------------------------------------------
async def handle(emulator, request: web.Request) -> web.StreamResponse:
    request_id = uuid.uuid4().hex[:24].upper()
    op = "Unknown"
    ctx: Ctx | None = None
    region = None
    ak = None
    try:
        path = unquote(request.rel_url.raw_path)
        bucket, _, key = path[1:].partition("/") if path != "/" else ("", "", "")
        bucket_name = bucket or None
        key_name = key or None
        query = _parse_query(request.rel_url.raw_query_string)
        _check_text(request)
        identity = authenticate(emulator, request, bucket_name, key_name)
        region = identity.region
        ak = identity.key.access_key_id if identity.key else None
        op = _operation(request.method, bucket_name, key_name, query, request.headers)
        ctx = Ctx(emulator, request, request_id, op, bucket_name, key_name, query, identity)
        if identity.key is not None:
            emulator.keys.check_permission(identity.key, RAM_ACTIONS[op])
        elif bucket_name is None:
            raise access_denied("AccessDenied: anonymous access to ListBuckets is not allowed.")
        else:  # anonymous: reads and object writes, as the bucket's ACL allows; never a bucket or its config
            if op not in READ_OPS and op not in OBJECT_WRITE_OPS:
                raise access_denied("AccessDenied: anonymous access to this operation is not allowed.")
            _bucket(ctx, for_write=op in OBJECT_WRITE_OPS)  # the ACL decides before the body is read
        length = request.content_length
        if op in UPLOAD_OPS and length is not None and length > MAX_OBJECT_SIZE:
            raise entity_too_large()
        if op in XML_BODY_OPS and length is not None and length > MAX_XML_BODY:
            raise xml_too_large()
        fault = emulator.faults.before_call(f"oss:{op}")
        if fault == DROP:
            return emulator.drop_connection(request, f"oss:{op}", region, fault, request_id, ak)
        ctx.drop_after = fault == DROP_AFTER
        ctx.corrupt = fault == CORRUPT
        response = await HANDLERS[op](ctx)
        status, code = response.status, "BodyCorrupted" if ctx.corrupt else None
    except ApiError as exc:
        exc = _as_oss_error(exc)
        status, code, response = exc.status, exc.code, _error_response(emulator, request, exc, request_id)
    except (ConnectionError, asyncio.CancelledError):  # the client went away mid-request
        emulator.calls.record(f"oss:{op}", region, 499, "ClientDisconnected", request_id, ak)
        raise
    except RecursionError:  # XML nested beyond reason
        exc = _err("MalformedXML", _MALFORMED, 400)
        status, code, response = exc.status, exc.code, _error_response(emulator, request, exc, request_id)
    except Exception:
        log.exception("internal error in oss:%s", op)
        status, code = 500, "InternalError"
        response = _error_response(emulator, request, _err("InternalError", "We encountered an internal error. "
                                                           "Please try again.", 500), request_id)
    if ctx is not None and ctx.drop_after:  # executed, but the answer never leaves
        return emulator.drop_connection(request, f"oss:{op}", region, DROP_AFTER, request_id, ak)
    emulator.calls.record(f"oss:{op}", region, status, code, request_id, ak)
    return response


def _as_oss_error(exc: ApiError) -> ApiError:
    """Translate errors raised by shared code (RAM checks, fault injection) into OSS's codes."""
    if exc.code == "Forbidden.RAM":  # OSS's shape: AccessDenied with the same AccessDeniedDetail (AuthAction)
        detail = exc.extra.get("AccessDeniedDetail", {})
        if detail.get("NoPermissionType") == "ExplicitDeny":
            return _err("AccessDenied", "Access denied by bucket policy.", 403, "0003-00000201",
                        AccessDeniedDetail=detail)
        return _err("AccessDenied", "You have no right to access this object because of bucket acl.", 403,
                    "0003-00000001", AccessDeniedDetail=detail)
    if exc.code.startswith("Throttling"):
        return _err("ServerBusy", "Please reduce your request rate.", 503, "0003-00000503")
    return exc


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


# -- buckets --------------------------------------------------------------------------------
def _bucket(ctx: Ctx, name: str | None = None, for_write: bool = False, any_region: bool = False) -> dict:
    name = name or ctx.bucket
    bucket = ctx.state.table(BUCKETS).get(name)
    if bucket is None:
        raise no_such_bucket(name or "")
    region = ctx.identity.region
    if region and bucket["region"] != region and not any_region:
        raise access_denied("The bucket you are attempting to access must be addressed using the specified "
                            f"endpoint. Please send all future requests to this endpoint. "
                            f"(bucket region {bucket['region']}, request signed for {region})")
    if ctx.identity.key is None:
        acl = bucket.get("acl", "private")
        allowed = (acl in ("public-read", "public-read-write") and ctx.op in READ_OPS) or \
                  (acl == "public-read-write" and ctx.op in OBJECT_WRITE_OPS)
        if not allowed or for_write and acl != "public-read-write":
            raise access_denied()
    return bucket


def _validate_bucket_name(name: str) -> None:
    if not _BUCKET_RE.match(name):
        raise _err("InvalidBucketName", "The specified bucket is not valid.", 400, "0015-00000001",
                   BucketName=name)


def _endpoint(region: str) -> str:
    return f"oss-{region}.aliyuncs.com"


async def put_bucket(ctx: Ctx) -> web.StreamResponse:
    name = ctx.bucket or ""
    _validate_bucket_name(name)
    region = ctx.identity.region or "cn-hangzhou"
    acl = ctx.headers.get("x-oss-acl", "private")
    if acl not in ACLS:
        raise invalid_argument("no such bucket access control exists", "x-oss-acl", acl)
    storage_class = "Standard"
    body = await read_xml_body(ctx)
    if body:
        tree = parse(body, "CreateBucketConfiguration")
        storage_class = tree.findtext("StorageClass") or "Standard"
        if storage_class not in STORAGE_CLASSES:
            raise invalid_argument("Invalid storage class.", "StorageClass", storage_class)
    buckets = ctx.state.table(BUCKETS)
    if name in buckets:
        raise _err("BucketAlreadyExists", "The requested bucket name is not available. The bucket namespace is "
                   "shared by all users of the system. Please select a different name and try again.", 409,
                   "0015-00000104", BucketName=name)
    buckets[name] = {"name": name, "region": region, "acl": acl, "storage_class": storage_class,
                     "created": ctx.now}
    ctx.state.dirty = True
    return ctx.empty(headers={"Location": f"/{name}"})


async def delete_bucket(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx)
    prefix = f"{ctx.bucket}/"
    if any(k.startswith(prefix) for k in ctx.state.table(OBJECTS)):
        raise _err("BucketNotEmpty", "The bucket you tried to delete is not empty.", 409, "0015-00000301",
                   BucketName=ctx.bucket)
    uploads = ctx.state.table(UPLOADS)
    if any(u["bucket"] == ctx.bucket for u in uploads.values()):
        raise _err("BucketNotEmpty", "The bucket has multipart uploads. Please delete them first.", 409,
                   "0015-00000302", BucketName=ctx.bucket)
    del ctx.state.table(BUCKETS)[ctx.bucket]
    ctx.state.dirty = True
    return ctx.empty(204)


def _owner() -> str:
    return "<Owner>" + el("ID", OWNER_ID) + el("DisplayName", OWNER_ID) + "</Owner>"


async def list_buckets(ctx: Ctx) -> web.StreamResponse:
    q = ctx.query
    prefix = q.get("prefix", "")
    marker = q.get("marker", "")
    max_keys = _int_arg(q, "max-keys", 100, 1, 1000)
    names = sorted(n for n in ctx.state.table(BUCKETS) if n.startswith(prefix) and n > marker)
    page, truncated = names[:max_keys], len(names) > max_keys
    buckets = ctx.state.table(BUCKETS)
    parts = [el("Prefix", prefix), el("Marker", marker), el("MaxKeys", max_keys), el("IsTruncated", truncated)]
    if truncated:
        parts.append(el("NextMarker", page[-1]))
    parts.append(_owner())
    items = []
    for n in page:
        b = buckets[n]
        items.append("<Bucket>" + el("CreationDate", iso_ms(b["created"])) + el("ExtranetEndpoint", _endpoint(
            b["region"])) + el("IntranetEndpoint", _endpoint(b["region"] + "-internal")) + el(
            "Location", f"oss-{b['region']}") + el("Name", n) + el("Region", b["region"]) + el(
            "StorageClass", b["storage_class"]) + "</Bucket>")
    parts.append("<Buckets>" + "".join(items) + "</Buckets>")
    return ctx.xml(doc("ListAllMyBucketsResult", *parts))


async def get_bucket_info(ctx: Ctx) -> web.StreamResponse:
    b = _bucket(ctx)
    body = doc("BucketInfo", "<Bucket>" + el("AccessMonitor", "Disabled") + el("CreationDate", iso_ms(b["created"]))
               + el("ExtranetEndpoint", _endpoint(b["region"]))
               + el("IntranetEndpoint", _endpoint(b["region"] + "-internal"))
               + el("Location", f"oss-{b['region']}") + el("StorageClass", b["storage_class"])
               + el("TransferAcceleration", "Disabled") + el("CrossRegionReplication", "Disabled")
               + el("Name", b["name"]) + el("DataRedundancyType", "LRS") + _owner()
               + "<AccessControlList>" + el("Grant", b.get("acl", "private")) + "</AccessControlList>"
               + "</Bucket>")
    return ctx.xml(body)


async def head_bucket(ctx: Ctx) -> web.StreamResponse:
    b = _bucket(ctx)
    return ctx.empty(headers={"x-oss-bucket-region": b["region"]})


async def get_bucket_location(ctx: Ctx) -> web.StreamResponse:
    """Answered whatever region the request was signed for: it is how a client discovers the bucket's region."""
    b = _bucket(ctx, any_region=True)
    return ctx.xml((f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint>oss-{b["region"]}'
                    "</LocationConstraint>").encode())


async def get_bucket_acl(ctx: Ctx) -> web.StreamResponse:
    b = _bucket(ctx)
    return ctx.xml(doc("AccessControlPolicy", _owner(), "<AccessControlList>" + el("Grant", b.get("acl", "private"))
                       + "</AccessControlList>"))


async def put_bucket_acl(ctx: Ctx) -> web.StreamResponse:
    b = _bucket(ctx)
    acl = ctx.headers.get("x-oss-acl", "")
    if acl not in ACLS:
        raise invalid_argument("no such bucket access control exists", "x-oss-acl", acl)
    b["acl"] = acl
    ctx.state.dirty = True
    return ctx.empty()


async def get_bucket_stat(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx)
    objs = _bucket_objects(ctx, ctx.bucket or "")
    storage = sum(o["size"] for o in objs)
    uploads = sum(1 for u in ctx.state.table(UPLOADS).values() if u["bucket"] == ctx.bucket)
    last = int(max((o["last_modified"] for o in objs), default=0))
    return ctx.xml(doc("BucketStat", el("Storage", storage), el("ObjectCount", len(objs)),
                       el("MultipartUploadCount", uploads), el("LiveChannelCount", 0),
                       el("LastModifiedTime", last), el("StandardStorage", storage),
                       el("StandardObjectCount", len(objs))))


# -- bucket lifecycle -------------------------------------------------------------------------
# Rules are kept as plain data keyed by the XML element names; a schema maps an element to its
# children (dict), a repeatable child ([schema]) or a leaf type. Order here is the answer's order.
_TAG = {"Key": "str", "Value": "str"}
_LIFECYCLE_RULE = {
    "ID": "str", "Prefix": "str", "Tag": [_TAG],
    "Filter": {"ObjectSizeGreaterThan": "size", "ObjectSizeLessThan": "size",
               "Not": [{"Prefix": "str", "Tag": _TAG}]},
    "Status": "str",
    "Expiration": {"Days": "days", "CreatedBeforeDate": "date", "ExpiredObjectDeleteMarker": "bool"},
    "Transition": [{"Days": "days", "CreatedBeforeDate": "date", "StorageClass": "class", "IsAccessTime": "bool",
                    "ReturnToStdWhenVisit": "bool", "AllowSmallFile": "bool"}],
    "AbortMultipartUpload": {"Days": "days", "CreatedBeforeDate": "date"},
    "NoncurrentVersionExpiration": {"NoncurrentDays": "days"},
    "NoncurrentVersionTransition": [{"NoncurrentDays": "days", "StorageClass": "class", "IsAccessTime": "bool",
                                     "ReturnToStdWhenVisit": "bool", "AllowSmallFile": "bool"}],
}
_LIFECYCLE_ACTIONS = ("Expiration", "Transition", "AbortMultipartUpload", "NoncurrentVersionExpiration",
                      "NoncurrentVersionTransition")
TRANSITION_CLASSES = ("IA", "Archive", "ColdArchive", "DeepColdArchive")
MAX_LIFECYCLE_RULES = 1000
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T00:00:00(?:\.0{1,3})?Z$")


def no_such_lifecycle(bucket: str) -> ApiError:
    return _err("NoSuchLifecycle", "The lifecycle configuration does not exist.", 404, BucketName=bucket)


def _lifecycle_malformed(message: str = _MALFORMED) -> ApiError:
    return _err("MalformedXML", message, 400, "0014-00000011")


def _lifecycle_invalid(message: str, name: str, value, ec: str = "0000-00000000") -> ApiError:
    """InvalidArgument (400) with the error-center code OSS documents for the case, where known."""
    return _err("InvalidArgument", message, 400, ec, ArgumentName=name, ArgumentValue=str(value))


def _lifecycle_leaf(kind: str, text: str, path: str):
    if kind == "str":
        return text
    if kind == "bool":
        if text not in ("true", "false"):
            raise _lifecycle_invalid(f"{path} must be true or false.", path, text)
        return text == "true"
    if kind in ("days", "size"):
        number = _number(text)
        value = -1 if number is None else number
        if value < (1 if kind == "days" else 0):
            what = "a positive integer" if kind == "days" else "a non-negative integer"
            raise _lifecycle_invalid(f"{path} must be {what}.", path, text,
                                     "0014-00000086" if kind == "days" else "0014-00000039")
        return value
    if kind == "class":
        if text not in TRANSITION_CLASSES:
            raise _lifecycle_invalid(f"{path} must be one of {', '.join(TRANSITION_CLASSES)}.", path, text)
        return text
    m = _DATE_RE.match(text)  # "date": midnight UTC, ISO 8601
    try:
        day = date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
    except ValueError:
        day = None
    if day is None:
        raise _lifecycle_invalid(f"{path} must be a date at midnight UTC such as 2024-01-01T00:00:00.000Z.",
                                 path, text)
    return f"{day.isoformat()}T00:00:00.000Z"


def _lifecycle_node(node, schema: dict, path: str) -> dict:
    out: dict = {}
    for child in node:
        spec = schema.get(child.tag)
        if spec is None:
            raise _err("MalformedXML", f"The node {path}/{child.tag} is not supported.", 400, "0014-00000017")
        where = f"{path}/{child.tag}"
        if isinstance(spec, list):
            out.setdefault(child.tag, []).append(_lifecycle_node(child, spec[0], where))
            continue
        if child.tag in out:
            raise _err("MalformedXML", f"The node {where} appears more than once.", 400, "0014-00000089")
        if isinstance(spec, dict):
            out[child.tag] = _lifecycle_node(child, spec, where)
        elif len(child):
            raise _lifecycle_malformed(f"The node {where} must hold a value, not elements.")
        else:
            text = child.text or ""
            out[child.tag] = _lifecycle_leaf(spec, text if spec == "str" else text.strip(), where)
    return out


def _check_when(action: dict, where: str, allow_marker: bool = False) -> None:
    """Exactly one of Days or CreatedBeforeDate (or, for Expiration, ExpiredObjectDeleteMarker=true)."""
    has_days, has_date = "Days" in action, "CreatedBeforeDate" in action
    marker = allow_marker and action.get("ExpiredObjectDeleteMarker") is True
    if has_days and has_date:
        raise _lifecycle_invalid(f"{where}: Days and CreatedBeforeDate cannot both be set.", where, "",
                                 "0014-00000061")
    if marker and (has_days or has_date):
        raise _lifecycle_invalid(f"{where}: ExpiredObjectDeleteMarker cannot be set with Days or CreatedBeforeDate.",
                                 where, "")
    if not (has_days or has_date or marker):
        raise _lifecycle_invalid(f"{where} needs Days or CreatedBeforeDate.", where, "", "0014-00000060")


def _parse_lifecycle(body: bytes) -> list[dict]:
    try:
        tree = parse(body, "LifecycleConfiguration")
    except ApiError as exc:  # not XML, or another root
        ec = "0014-00000012" if exc.message.startswith("The root element") else "0014-00000011"
        raise _err("MalformedXML", exc.message, 400, ec) from None
    rules = []
    for node in tree:
        if node.tag != "Rule":
            raise _err("MalformedXML", f"The node {node.tag} is not supported: LifecycleConfiguration holds only "
                       "Rule nodes.", 400, "0014-00000015")
        rules.append(_lifecycle_node(node, _LIFECYCLE_RULE, "Rule"))
    if not rules:
        raise _lifecycle_malformed("The lifecycle configuration must hold at least one Rule.")
    if len(rules) > MAX_LIFECYCLE_RULES:
        raise _lifecycle_invalid(f"A lifecycle configuration holds at most {MAX_LIFECYCLE_RULES} rules.", "Rule",
                                 len(rules), "0014-00000014")
    seen: set[str] = set()
    for rule in rules:
        if rule.get("Status") not in ("Enabled", "Disabled"):
            raise _lifecycle_invalid("Status must be Enabled or Disabled.", "Status", rule.get("Status", ""))
        rule_id = rule.get("ID") or uuid.uuid4().hex  # OSS names a rule that has no ID
        if len(rule_id) > 255:
            raise _lifecycle_invalid("The rule ID must be at most 255 characters long.", "ID", rule_id,
                                     "0014-00000019")
        if rule_id in seen:
            raise _lifecycle_invalid(f"The rule ID {rule_id} is used by more than one rule.", "ID", rule_id,
                                     "0014-00000020")
        seen.add(rule_id)
        rule["ID"] = rule_id
        if not any(a in rule for a in _LIFECYCLE_ACTIONS):
            raise _lifecycle_invalid(f"Rule {rule_id} needs an action: Expiration, Transition, AbortMultipartUpload "
                                     "or a NoncurrentVersion action.", "Rule", rule_id, "0014-00000026")
        if "Expiration" in rule:
            _check_when(rule["Expiration"], "Rule/Expiration", allow_marker=True)
        for transition in rule.get("Transition", []):
            _check_when(transition, "Rule/Transition")
            if "StorageClass" not in transition:
                raise _lifecycle_invalid("Rule/Transition needs a StorageClass.", "StorageClass", "")
        if "AbortMultipartUpload" in rule:
            _check_when(rule["AbortMultipartUpload"], "Rule/AbortMultipartUpload")
        if "NoncurrentDays" not in rule.get("NoncurrentVersionExpiration", {"NoncurrentDays": 1}):
            raise _lifecycle_invalid("Rule/NoncurrentVersionExpiration needs NoncurrentDays.", "NoncurrentDays", "")
        for transition in rule.get("NoncurrentVersionTransition", []):
            if "NoncurrentDays" not in transition or "StorageClass" not in transition:
                raise _lifecycle_invalid("Rule/NoncurrentVersionTransition needs NoncurrentDays and StorageClass.",
                                         "NoncurrentVersionTransition", "")
    return rules


def _lifecycle_xml(node: dict, schema: dict) -> str:
    """The stored rule (or part of it) back as XML, children in schema order."""
    out = []
    for tag, spec in schema.items():
        if tag not in node:
            continue
        if isinstance(spec, list):
            out += [f"<{tag}>{_lifecycle_xml(v, spec[0])}</{tag}>" for v in node[tag]]
        elif isinstance(spec, dict):
            out.append(f"<{tag}>{_lifecycle_xml(node[tag], spec)}</{tag}>")
        else:
            out.append(el(tag, node[tag]))
    return "".join(out)


async def put_bucket_lifecycle(ctx: Ctx) -> web.StreamResponse:
    """Replace the bucket's lifecycle rules (validated, stored, never run)."""
    b = _bucket(ctx)
    body = await read_xml_body(ctx)
    if not _content_md5_ok(ctx, hashlib.md5(body).digest()):
        raise invalid_digest()
    b["lifecycle"] = _parse_lifecycle(body)
    ctx.state.dirty = True
    return ctx.empty()


async def get_bucket_lifecycle(ctx: Ctx) -> web.StreamResponse:
    b = _bucket(ctx)
    rules = b.get("lifecycle")
    if not rules:
        raise no_such_lifecycle(b["name"])
    return ctx.xml(doc("LifecycleConfiguration",
                       *("<Rule>" + _lifecycle_xml(rule, _LIFECYCLE_RULE) + "</Rule>" for rule in rules)))


async def delete_bucket_lifecycle(ctx: Ctx) -> web.StreamResponse:
    """204 whether or not the bucket had rules, as OSS answers."""
    b = _bucket(ctx)
    if b.pop("lifecycle", None) is not None:
        ctx.state.dirty = True
    return ctx.empty(204)


# -- helpers --------------------------------------------------------------------------------
def _int_arg(q: dict, name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_argument(f"Argument {name} is not a valid integer.", name, raw) from None
    if value < lo or value > hi:
        raise invalid_argument(f"Argument {name} must be between {lo} and {hi}.", name, raw)
    return value


def _validate_key(key: str | None) -> str:
    if not key:
        raise invalid_argument("The object key must not be empty.")
    if len(key.encode()) > 1023 or key.startswith(("/", "\\")):
        raise _err("InvalidObjectName", "The specified object is not valid.", 400, "0016-00000005", Key=key)
    return key


def _etag(md5: bytes) -> str:
    return '"' + md5.hex().upper() + '"'


def _user_meta(headers) -> dict[str, str]:
    return {k.lower()[len("x-oss-meta-"):]: v for k, v in headers.items() if k.lower().startswith("x-oss-meta-")}


def _std_headers(headers) -> dict[str, str]:
    return {h: headers[h] for h in COPY_HEADERS if h in headers}


def _storage_class(headers, default: str = "Standard") -> str:
    sc = headers.get("x-oss-storage-class", default)
    if sc not in STORAGE_CLASSES:
        raise invalid_argument("Invalid storage class.", "x-oss-storage-class", sc)
    return sc


def _object_headers(obj: dict) -> dict[str, str]:
    out = {
        "ETag": obj["etag"],
        "Last-Modified": http_date(obj["last_modified"]),
        "x-oss-object-type": obj["type"],
        "x-oss-storage-class": obj["storage_class"],
        "x-oss-hash-crc64ecma": str(obj["crc"]),
        "Accept-Ranges": "bytes",
        "Content-Type": obj.get("content_type") or "application/octet-stream",
    }
    if obj["type"] == "Appendable":
        out["x-oss-next-append-position"] = str(obj["size"])
    for k, v in obj.get("meta", {}).items():
        out[f"x-oss-meta-{k}"] = v
    out.update(obj.get("headers", {}))
    return out


def _get_object(ctx: Ctx, bucket: str, key: str) -> dict:
    obj = ctx.state.table(OBJECTS).get(f"{bucket}/{key}")
    if obj is None:
        raise no_such_key(key)
    return obj


def _replace_object(ctx: Ctx, record: dict) -> None:
    """Publish ``record`` (its blobs already written); drop the blobs of the object it replaces."""
    objects = ctx.state.table(OBJECTS)
    name = f"{record['bucket']}/{record['key']}"
    if record["bucket"] not in ctx.state.table(BUCKETS):  # deleted (or reset) while the data streamed in
        store_of(ctx.emulator).delete(b for b, _ in record["segments"])
        raise no_such_bucket(record["bucket"])
    old = objects.get(name)
    objects[name] = record
    ctx.state.dirty = True
    if old is not None:
        store_of(ctx.emulator).delete(b for b, _ in old["segments"])


def _check_overwrite(ctx: Ctx, bucket: str, key: str) -> None:
    if ctx.headers.get("x-oss-forbid-overwrite", "").lower() == "true" and \
            f"{bucket}/{key}" in ctx.state.table(OBJECTS):
        raise _err("FileAlreadyExists", "The object you specified already exists and can not be overwritten.",
                   409, "0016-00000708")


def _content_md5_ok(ctx: Ctx, md5: bytes) -> bool:
    """True unless the request declared a ``Content-MD5`` other than ``md5`` (the digest of what arrived)."""
    declared = ctx.headers.get("Content-MD5")
    if not declared:
        return True
    try:
        return base64.b64decode(declared, validate=True) == md5
    except ValueError:
        return False


async def _flip_first_byte(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Fault ``corrupt``: the first byte of the body arrives inverted, as if bits flipped on the wire."""
    flipped = False
    async for chunk in chunks:
        if not flipped and chunk:
            chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            flipped = True
        yield chunk


async def _capped(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The body, refused (EntityTooLarge) as soon as it passes ``limit`` (a chunked body has no length)."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise entity_too_large()
        yield chunk


async def _receive(ctx: Ctx, limit: int = MAX_OBJECT_SIZE) -> tuple[str, int, bytes, int]:
    """Stream the request body into a new blob: (blob, size, md5, crc64) of the bytes as stored."""
    store = store_of(ctx.emulator)
    chunks = _capped(ctx.request.content.iter_chunked(CHUNK), limit)
    if ctx.corrupt:
        chunks = _flip_first_byte(chunks)
    blob, size, md5, crc = await store.write_stream(chunks)
    ctx.corrupt = ctx.corrupt and size > 0  # an empty body has nothing to flip: not logged as corrupted
    if not _content_md5_ok(ctx, md5):
        store.delete([blob])
        raise invalid_digest()
    return blob, size, md5, crc


def _content_type(ctx: Ctx) -> str:
    return ctx.headers.get("Content-Type") or "application/octet-stream"


# -- objects --------------------------------------------------------------------------------
async def put_object(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx, for_write=True)
    key = _validate_key(ctx.key)
    storage_class = _storage_class(ctx.headers)
    _check_overwrite(ctx, ctx.bucket or "", key)
    blob, size, md5, crc = await _receive(ctx)
    record = {"bucket": ctx.bucket, "key": key, "segments": [[blob, size]], "size": size, "etag": _etag(md5),
              "crc": crc, "content_type": _content_type(ctx), "meta": _user_meta(ctx.headers),
              "headers": _std_headers(ctx.headers), "last_modified": ctx.now, "storage_class": storage_class,
              "type": "Normal"}
    _replace_object(ctx, record)
    return ctx.empty(headers={"ETag": record["etag"], "x-oss-hash-crc64ecma": str(crc),
                              "Content-MD5": base64.b64encode(md5).decode()})


def _parse_range(header: str | None, size: int, standard: bool) -> tuple[int, int] | None:
    """(start, end) inclusive, or None for the whole object; raises InvalidRange (416)."""
    if not header:
        return None
    m = _RANGE_RE.match(header.strip())
    invalid = _err("InvalidRange", "The requested range cannot be satisfied", 416, "0026-00000002",
                   RangeRequested=header, ActualObjectSize=size)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        if standard:
            raise invalid
        return None
    first, last = m.group(1), m.group(2)
    if first == "":
        n = int(last)
        if n == 0:
            if standard:
                raise invalid
            return None
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if end < start:
        if standard:
            raise invalid
        return None
    if start >= size:
        if standard:
            raise invalid
        return None
    return start, min(end, size - 1)


async def get_object(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx)
    obj = _get_object(ctx, ctx.bucket or "", ctx.key or "")
    size = obj["size"]
    standard = ctx.headers.get("x-oss-range-behavior", "").lower() == "standard"
    rng = _parse_range(ctx.headers.get("Range"), size, standard)
    headers = _object_headers(obj)
    for name in ("content-type", "content-disposition", "cache-control", "content-encoding", "content-language",
                 "expires"):
        override = ctx.query.get(f"response-{name}")
        if override:
            headers["-".join(p.capitalize() for p in name.split("-"))] = override
    if rng is None:
        status, start, end = 200, 0, size - 1
    else:
        status, (start, end) = 206, rng
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = end - start + 1 if size else 0
    content_type = headers.pop("Content-Type")
    response = web.StreamResponse(status=status, headers=ctx.headers_out(headers))
    response.content_type = content_type
    response.content_length = length
    if ctx.drop_after:  # the connection is cut before the body: nothing of it reaches the client
        return response
    await response.prepare(ctx.request)
    if length:
        store = store_of(ctx.emulator)
        for chunk in store.iter_range(obj["segments"], start, end):
            await response.write(chunk)
    await response.write_eof()
    return response


async def head_object(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx)
    obj = _get_object(ctx, ctx.bucket or "", ctx.key or "")
    headers = _object_headers(obj)
    headers["Content-Length"] = str(obj["size"])
    return web.Response(status=200, headers=ctx.headers_out(headers))


async def get_object_meta(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx)
    obj = _get_object(ctx, ctx.bucket or "", ctx.key or "")
    headers = {"ETag": obj["etag"], "Last-Modified": http_date(obj["last_modified"]),
               "x-oss-hash-crc64ecma": str(obj["crc"]), "Content-Length": str(obj["size"]),
               "x-oss-last-access-time": http_date(obj["last_modified"])}
    return web.Response(status=200, headers=ctx.headers_out(headers))


async def delete_object(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx, for_write=True)
    obj = ctx.state.table(OBJECTS).pop(f"{ctx.bucket}/{ctx.key}", None)
    if obj is not None:
        store_of(ctx.emulator).delete(b for b, _ in obj["segments"])
        ctx.state.dirty = True
    return ctx.empty(204)


async def delete_multiple_objects(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx, for_write=True)
    tree = parse(await read_xml_body(ctx), "Delete")
    quiet = (tree.findtext("Quiet") or "false").strip().lower() == "true"
    keys = [o.findtext("Key") for o in tree.findall("Object")]
    if not keys or any(k is None or k == "" for k in keys):
        raise _err("MalformedXML", _MALFORMED, 400, "0016-00000608")
    if len(keys) > 1000:
        raise _err("MalformedXML", "The number of objects to delete must not exceed 1000.", 400, "0016-00000609")
    encode = ctx.query.get("encoding-type") == "url"
    objects = ctx.state.table(OBJECTS)
    store = store_of(ctx.emulator)
    deleted = []
    for k in keys:
        obj = objects.pop(f"{ctx.bucket}/{k}", None)
        if obj is not None:
            store.delete(b for b, _ in obj["segments"])
        deleted.append(k)
    ctx.state.dirty = True
    parts = [] if quiet else ["<Deleted>" + el("Key", url_encode(k) if encode else k) + "</Deleted>" for k in deleted]
    if encode:
        parts.append(el("EncodingType", "url"))
    return ctx.xml(doc("DeleteResult", *parts))


def _copy_source(ctx: Ctx) -> tuple[str, str]:
    raw = ctx.headers.get("x-oss-copy-source", "")
    path = raw.split("?", 1)[0]
    path = unquote(path)
    if path.startswith("/"):
        path = path[1:]
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise invalid_argument("Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.",
                               "x-oss-copy-source", raw)
    return bucket, key


def _source_object(ctx: Ctx) -> dict:
    src_bucket, src_key = _copy_source(ctx)
    _bucket(ctx, src_bucket)
    if ctx.identity.key is not None:
        ctx.emulator.keys.check_permission(ctx.identity.key, "oss:GetObject")  # type: ignore[attr-defined]
    return _get_object(ctx, src_bucket, src_key)


def _check_copy_conditions(ctx: Ctx, src: dict) -> None:
    match = ctx.headers.get("x-oss-copy-source-if-match")
    if match and match.strip('"').upper() != src["etag"].strip('"'):
        raise _err("PreconditionFailed", "At least one of the pre-conditions you specified did not hold.", 412,
                   "0026-00000003")
    none_match = ctx.headers.get("x-oss-copy-source-if-none-match")
    if none_match and none_match.strip('"').upper() == src["etag"].strip('"'):
        raise _err("PreconditionFailed", "At least one of the pre-conditions you specified did not hold.", 412,
                   "0026-00000003")


async def copy_object(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx, for_write=True)
    key = _validate_key(ctx.key)
    src = _source_object(ctx)
    _check_copy_conditions(ctx, src)
    _check_overwrite(ctx, ctx.bucket or "", key)
    directive = ctx.headers.get("x-oss-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Invalid metadata directive.", "x-oss-metadata-directive", directive)
    store = store_of(ctx.emulator)
    segments = [[store.link(b), n] for b, n in src["segments"]]
    if directive == "REPLACE":
        meta, headers, content_type = _user_meta(ctx.headers), _std_headers(ctx.headers), _content_type(ctx)
    else:
        meta, headers, content_type = dict(src["meta"]), dict(src["headers"]), src["content_type"]
    record = {**src, "bucket": ctx.bucket, "key": key, "segments": segments, "meta": meta, "headers": headers,
              "content_type": content_type, "last_modified": ctx.now,
              "storage_class": _storage_class(ctx.headers, src["storage_class"])}
    if record["type"] == "Appendable":
        record["type"] = "Normal"
    _replace_object(ctx, record)
    body = doc("CopyObjectResult", el("ETag", record["etag"]), el("LastModified", iso_ms(record["last_modified"])))
    return ctx.xml(body, headers={"x-oss-hash-crc64ecma": str(record["crc"])})


def _position_mismatch(current: int) -> ApiError:
    return ApiError("PositionNotEqualToLength", "Position is not equal to file length", 409,
                    headers={"x-oss-next-append-position": str(current)}, extra={"EC": "0026-00000006"})


async def append_object(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx, for_write=True)
    key = _validate_key(ctx.key)
    raw_pos = ctx.query.get("position", "")
    position = _number(raw_pos)  # type: ignore[assignment]
    if position is None:
        raise invalid_argument("Position is not a valid integer.", "position", raw_pos)
    length = ctx.request.content_length
    if position + (length or 0) > MAX_OBJECT_SIZE:
        raise entity_too_large()
    objects = ctx.state.table(OBJECTS)
    name = f"{ctx.bucket}/{key}"
    obj = objects.get(name)
    current = obj["size"] if obj else 0
    if obj is not None and obj["type"] != "Appendable":
        raise _err("ObjectNotAppendable", "The object you specified is not appendable.", 409, "0026-00000007")
    if position != current:
        raise _position_mismatch(current)
    store = store_of(ctx.emulator)
    blob, size, md5, crc = await _receive(ctx, MAX_OBJECT_SIZE - position)
    # re-read: another append may have won the race while we were receiving
    obj = objects.get(name)
    if (obj["size"] if obj else 0) != position:
        store.delete([blob])
        raise _position_mismatch(obj["size"] if obj else 0)
    if obj is None:
        obj = {"bucket": ctx.bucket, "key": key, "segments": [], "size": 0, "crc": 0, "md5": "",
               "content_type": _content_type(ctx), "meta": _user_meta(ctx.headers),
               "headers": _std_headers(ctx.headers), "storage_class": _storage_class(ctx.headers),
               "type": "Appendable", "etag": ""}
    if size:
        obj["segments"] = [*obj["segments"], [blob, size]]
    else:
        store.delete([blob])
    obj["crc"] = crc64_combine(obj["crc"], crc, size)
    obj["size"] = position + size
    # OSS gives appendable objects an ETag that is not the MD5 of the whole object
    obj["etag"] = '"' + hashlib.md5(f"{obj['etag']}{md5.hex()}".encode()).hexdigest().upper() + '"'
    obj["last_modified"] = ctx.now
    objects[name] = obj
    ctx.state.dirty = True
    return ctx.empty(headers={"ETag": obj["etag"], "x-oss-hash-crc64ecma": str(obj["crc"]),
                              "x-oss-next-append-position": str(obj["size"])})


# -- listing ----------------------------------------------------------------------------------
def _bucket_objects(ctx: Ctx, bucket: str) -> list[dict]:
    prefix = f"{bucket}/"
    return [o for k, o in ctx.state.table(OBJECTS).items() if k.startswith(prefix)]


def _list(ctx: Ctx, prefix: str, delimiter: str, after: str, max_keys: int):
    """Keys > ``after`` under ``prefix`` rolled up by ``delimiter``: (entries, truncated, next marker)."""
    keys = sorted(o["key"] for o in _bucket_objects(ctx, ctx.bucket or "") if o["key"].startswith(prefix))
    entries: list[tuple[str, str]] = []  # ("key"|"prefix", value)
    last = ""
    truncated = False
    seen_prefixes: set[str] = set()
    for k in keys:
        if k <= after:
            continue
        if delimiter:
            idx = k.find(delimiter, len(prefix))
            if idx >= 0:
                common = k[: idx + len(delimiter)]
                if common in seen_prefixes or common <= after:
                    continue
                if len(entries) >= max_keys:
                    truncated = True
                    break
                seen_prefixes.add(common)
                entries.append(("prefix", common))
                last = common
                continue
        if len(entries) >= max_keys:
            truncated = True
            break
        entries.append(("key", k))
        last = k
    return entries, truncated, last


def _contents(ctx: Ctx, key: str, encode: bool, owner: bool) -> str:
    o = _get_object(ctx, ctx.bucket or "", key)
    return ("<Contents>" + el("Key", url_encode(key) if encode else key)
            + el("LastModified", iso_ms(o["last_modified"])) + el("ETag", o["etag"]) + el("Type", o["type"])
            + el("Size", o["size"]) + el("StorageClass", o["storage_class"]) + (_owner() if owner else "")
            + "</Contents>")


def _list_common(ctx: Ctx):
    q = ctx.query
    encoding = q.get("encoding-type")
    if encoding not in (None, "", "url"):
        raise invalid_argument("Invalid encoding type.", "encoding-type", encoding or "")
    delimiter = q.get("delimiter", "")
    prefix = q.get("prefix", "")
    max_keys = _int_arg(q, "max-keys", 100, 0, MAX_KEYS)
    return encoding == "url", prefix, delimiter, max_keys


async def list_objects_v2(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx)
    encode, prefix, delimiter, max_keys = _list_common(ctx)
    q = ctx.query
    start_after = q.get("start-after", "")
    token = q.get("continuation-token", "")
    after = start_after
    if token:
        try:
            after = max(base64.urlsafe_b64decode(token.encode()).decode(), start_after)
        except (ValueError, UnicodeDecodeError):
            raise invalid_argument("The continuation token provided is incorrect.", "continuation-token",
                                   token) from None
    fetch_owner = q.get("fetch-owner", "").lower() == "true"
    entries, truncated, last = _list(ctx, prefix, delimiter, after, max_keys)

    def enc(v: str) -> str:
        return url_encode(v) if encode else v

    parts = [el("Name", ctx.bucket), el("Prefix", enc(prefix)), el("MaxKeys", max_keys)]
    if start_after:
        parts.append(el("StartAfter", enc(start_after)))
    if token:
        parts.append(el("ContinuationToken", token))
    if delimiter:
        parts.append(el("Delimiter", enc(delimiter)))
    if encode:
        parts.append(el("EncodingType", "url"))
    parts.append(el("IsTruncated", truncated))
    if truncated:
        parts.append(el("NextContinuationToken", base64.urlsafe_b64encode(last.encode()).decode()))
    parts.append(el("KeyCount", len(entries)))
    parts += [_contents(ctx, v, encode, fetch_owner) for t, v in entries if t == "key"]
    parts += ["<CommonPrefixes>" + el("Prefix", enc(v)) + "</CommonPrefixes>" for t, v in entries if t == "prefix"]
    return ctx.xml(doc("ListBucketResult", *parts))


async def list_objects(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx)
    encode, prefix, delimiter, max_keys = _list_common(ctx)
    marker = ctx.query.get("marker", "")
    entries, truncated, last = _list(ctx, prefix, delimiter, marker, max_keys)

    def enc(v: str) -> str:
        return url_encode(v) if encode else v

    parts = [el("Name", ctx.bucket), el("Prefix", enc(prefix)), el("Marker", enc(marker)), el("MaxKeys", max_keys),
             el("Delimiter", enc(delimiter))]
    if encode:
        parts.append(el("EncodingType", "url"))
    parts.append(el("IsTruncated", truncated))
    if truncated:
        parts.append(el("NextMarker", enc(last)))
    parts += [_contents(ctx, v, encode, True) for t, v in entries if t == "key"]
    parts += ["<CommonPrefixes>" + el("Prefix", enc(v)) + "</CommonPrefixes>" for t, v in entries if t == "prefix"]
    return ctx.xml(doc("ListBucketResult", *parts))


# -- multipart ----------------------------------------------------------------------------------
def _upload(ctx: Ctx) -> tuple[str, dict]:
    upload_id = ctx.query.get("uploadId", "")
    upload = ctx.state.table(UPLOADS).get(upload_id)
    if upload is None or upload["bucket"] != ctx.bucket or upload["key"] != ctx.key:
        raise no_such_upload(upload_id)
    return upload_id, upload


async def initiate_multipart_upload(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx, for_write=True)
    key = _validate_key(ctx.key)
    _check_overwrite(ctx, ctx.bucket or "", key)
    await read_xml_body(ctx)  # no body is expected; whatever came is drained (bounded)
    upload_id = uuid.uuid4().hex.upper()
    ctx.state.table(UPLOADS)[upload_id] = {
        "bucket": ctx.bucket, "key": key, "initiated": ctx.now, "content_type": _content_type(ctx),
        "meta": _user_meta(ctx.headers), "headers": _std_headers(ctx.headers),
        "storage_class": _storage_class(ctx.headers), "parts": {}}
    ctx.state.dirty = True
    encode = ctx.query.get("encoding-type") == "url"
    parts = [el("Bucket", ctx.bucket), el("Key", url_encode(key) if encode else key), el("UploadId", upload_id)]
    if encode:
        parts.append(el("EncodingType", "url"))
    return ctx.xml(doc("InitiateMultipartUploadResult", *parts))


def _part_number(ctx: Ctx) -> int:
    raw = ctx.query.get("partNumber", "")
    number = _number(raw)
    if number is None or not 1 <= number <= MAX_PART_NUMBER:
        raise invalid_argument(f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive.",
                               "partNumber", raw)
    return number


def _store_part(ctx: Ctx, upload_id: str, number: int, blob: str, size: int, md5: bytes, crc: int) -> dict:
    upload = ctx.state.table(UPLOADS).get(upload_id)
    store = store_of(ctx.emulator)
    if upload is None:  # aborted while the part was streaming in
        store.delete([blob])
        raise no_such_upload(upload_id)
    old = upload["parts"].get(number)
    part = {"blob": blob, "size": size, "md5": md5.hex(), "etag": _etag(md5), "crc": crc,
            "last_modified": ctx.now}
    upload["parts"][number] = part
    ctx.state.dirty = True
    if old is not None:
        store.delete([old["blob"]])
    return part


async def upload_part(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx, for_write=True)
    upload_id, _ = _upload(ctx)
    number = _part_number(ctx)
    blob, size, md5, crc = await _receive(ctx)
    part = _store_part(ctx, upload_id, number, blob, size, md5, crc)
    return ctx.empty(headers={"ETag": part["etag"], "x-oss-hash-crc64ecma": str(crc),
                              "Content-MD5": base64.b64encode(md5).decode()})


async def upload_part_copy(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx, for_write=True)
    upload_id, _ = _upload(ctx)
    number = _part_number(ctx)
    src = _source_object(ctx)
    _check_copy_conditions(ctx, src)
    size = src["size"]
    raw_range = ctx.headers.get("x-oss-copy-source-range")
    if raw_range:
        m = _RANGE_RE.match(raw_range.strip())
        if not m or not m.group(1) or (m.group(2) and int(m.group(2)) < int(m.group(1))) or int(m.group(1)) >= size:
            raise _err("InvalidRange", "The requested range cannot be satisfied", 416, "0026-00000002",
                       RangeRequested=raw_range, ActualObjectSize=size)
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:
        start, end = 0, size - 1
    store = store_of(ctx.emulator)
    if end < start:  # empty source object
        blob, n, md5, crc = store.write_bytes(b""), 0, hashlib.md5().digest(), 0
    else:
        loop = asyncio.get_running_loop()
        blob, n, md5, crc = await loop.run_in_executor(None, store.copy_range, src["segments"], start, end)
    part = _store_part(ctx, upload_id, number, blob, n, md5, crc)
    body = doc("CopyPartResult", el("LastModified", iso_ms(part["last_modified"])), el("ETag", part["etag"]))
    return ctx.xml(body, headers={"x-oss-hash-crc64ecma": str(crc)})


async def complete_multipart_upload(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx, for_write=True)
    upload_id, upload = _upload(ctx)
    body = await read_xml_body(ctx)
    store = store_of(ctx.emulator)
    if ctx.headers.get("x-oss-complete-all", "").lower() == "yes":
        if body:
            raise invalid_argument("Should not specify a request body when x-oss-complete-all is yes.")
        wanted = [(n, upload["parts"][n]["etag"]) for n in sorted(upload["parts"])]
    else:
        tree = parse(body, "CompleteMultipartUpload")
        wanted = []
        for p in tree.findall("Part"):
            raw_n, etag = (p.findtext("PartNumber") or "").strip(), (p.findtext("ETag") or "").strip()
            n = _number(raw_n)
            if n is None:
                raise _err("MalformedXML", _MALFORMED, 400, "0042-00000204")
            wanted.append((n, etag))
        if not wanted:
            raise _err("MalformedXML", _MALFORMED, 400, "0042-00000205")
    numbers = [n for n, _ in wanted]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise _err("InvalidPartOrder", "The list of parts was not in ascending order. Parts list must specified in "
                   "order by part number.", 400, "0042-00000206", UploadId=upload_id)
    chosen = []
    for i, (n, etag) in enumerate(wanted):
        part = upload["parts"].get(n)
        if part is None or etag.strip('"').upper() != part["etag"].strip('"'):
            raise _err("InvalidPart", "One or more of the specified parts could not be found or the specified entity "
                       "tag might not have matched the part's entity tag.", 400, "0042-00000209",
                       UploadId=upload_id, PartNumber=n, ETag=etag)
        if i < len(wanted) - 1 and part["size"] < 100 * 1024:
            raise _err("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size.", 400,
                       "0042-00000210", PartNumber=n, MinSizeAllowed=102400, ProposedSize=part["size"])
        chosen.append(part)
    crc = 0
    for part in chosen:
        crc = crc64_combine(crc, part["crc"], part["size"])
    digest = hashlib.md5(b"".join(bytes.fromhex(p["md5"]) for p in chosen)).hexdigest().upper()
    etag = f'"{digest}-{len(chosen)}"'
    chosen_blobs = {p["blob"] for p in chosen}
    record = {"bucket": ctx.bucket, "key": ctx.key, "segments": [[p["blob"], p["size"]] for p in chosen],
              "size": sum(p["size"] for p in chosen), "etag": etag, "crc": crc,
              "content_type": upload["content_type"], "meta": upload["meta"], "headers": upload["headers"],
              "last_modified": ctx.now, "storage_class": upload["storage_class"], "type": "Multipart"}
    del ctx.state.table(UPLOADS)[upload_id]
    store.delete(p["blob"] for p in upload["parts"].values() if p["blob"] not in chosen_blobs)
    _replace_object(ctx, record)
    encode = ctx.query.get("encoding-type") == "url"
    key = ctx.key or ""
    parts = [el("Bucket", ctx.bucket), el("Key", url_encode(key) if encode else key),
             el("Location", f"http://{ctx.request.host}/{ctx.bucket}/{key}"), el("ETag", etag)]
    if encode:
        parts.append(el("EncodingType", "url"))
    return ctx.xml(doc("CompleteMultipartUploadResult", *parts), headers={"x-oss-hash-crc64ecma": str(crc)})


async def abort_multipart_upload(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx, for_write=True)
    upload_id, upload = _upload(ctx)
    del ctx.state.table(UPLOADS)[upload_id]
    store_of(ctx.emulator).delete(p["blob"] for p in upload["parts"].values())
    ctx.state.dirty = True
    return ctx.empty(204)


async def list_parts(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx)
    upload_id, upload = _upload(ctx)
    q = ctx.query
    max_parts = _int_arg(q, "max-parts", 1000, 1, 1000)
    marker = _int_arg(q, "part-number-marker", 0, 0, MAX_PART_NUMBER)
    numbers = [n for n in sorted(upload["parts"]) if n > marker]
    page, truncated = numbers[:max_parts], len(numbers) > max_parts
    encode = q.get("encoding-type") == "url"
    key = ctx.key or ""
    parts = [el("Bucket", ctx.bucket), el("Key", url_encode(key) if encode else key), el("UploadId", upload_id),
             el("StorageClass", upload["storage_class"]), el("PartNumberMarker", marker),
             el("NextPartNumberMarker", page[-1] if page else marker), el("MaxParts", max_parts),
             el("IsTruncated", truncated)]
    if encode:
        parts.append(el("EncodingType", "url"))
    for n in page:
        p = upload["parts"][n]
        parts.append("<Part>" + el("PartNumber", n) + el("LastModified", iso_ms(p["last_modified"]))
                     + el("ETag", p["etag"]) + el("HashCrc64ecma", p["crc"]) + el("Size", p["size"]) + "</Part>")
    return ctx.xml(doc("ListPartsResult", *parts))


async def list_multipart_uploads(ctx: Ctx) -> web.StreamResponse:
    _bucket(ctx)
    q = ctx.query
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    key_marker = q.get("key-marker", "")
    id_marker = q.get("upload-id-marker", "")
    max_uploads = _int_arg(q, "max-uploads", 1000, 1, 1000)
    encode = q.get("encoding-type") == "url"

    def enc(v: str) -> str:
        return url_encode(v) if encode else v

    items = sorted((u["key"], u["initiated"], uid) for uid, u in ctx.state.table(UPLOADS).items()
                   if u["bucket"] == ctx.bucket and u["key"].startswith(prefix))
    entries: list[tuple[str, str, float, str]] = []
    prefixes: list[str] = []
    truncated = False
    for key, initiated, uid in items:
        if key < key_marker or (key == key_marker and (not id_marker or uid <= id_marker)):
            continue
        if delimiter:
            idx = key.find(delimiter, len(prefix))
            if idx >= 0:
                common = key[: idx + len(delimiter)]
                if common not in prefixes:
                    if len(entries) + len(prefixes) >= max_uploads:
                        truncated = True
                        break
                    prefixes.append(common)
                continue
        if len(entries) + len(prefixes) >= max_uploads:
            truncated = True
            break
        entries.append(("upload", key, initiated, uid))
    parts = [el("Bucket", ctx.bucket), el("KeyMarker", enc(key_marker)), el("UploadIdMarker", id_marker),
             el("NextKeyMarker", enc(entries[-1][1]) if entries else ""),
             el("NextUploadIdMarker", entries[-1][3] if entries else ""), el("Delimiter", enc(delimiter)),
             el("Prefix", enc(prefix)), el("MaxUploads", max_uploads), el("IsTruncated", truncated)]
    if encode:
        parts.append(el("EncodingType", "url"))
    for _, key, initiated, uid in entries:
        parts.append("<Upload>" + el("Key", enc(key)) + el("UploadId", uid) + el("Initiated", iso_ms(initiated))
                     + "</Upload>")
    parts += ["<CommonPrefixes>" + el("Prefix", enc(p)) + "</CommonPrefixes>" for p in prefixes]
    return ctx.xml(doc("ListMultipartUploadsResult", *parts))


HANDLERS = {
    "ListBuckets": list_buckets, "PutBucket": put_bucket, "DeleteBucket": delete_bucket,
    "GetBucketInfo": get_bucket_info, "HeadBucket": head_bucket, "GetBucketLocation": get_bucket_location,
    "GetBucketAcl": get_bucket_acl, "PutBucketAcl": put_bucket_acl, "GetBucketStat": get_bucket_stat,
    "ListObjects": list_objects, "ListObjectsV2": list_objects_v2,
    "PutObject": put_object, "GetObject": get_object, "HeadObject": head_object, "GetObjectMeta": get_object_meta,
    "DeleteObject": delete_object, "DeleteMultipleObjects": delete_multiple_objects, "CopyObject": copy_object,
    "AppendObject": append_object, "InitiateMultipartUpload": initiate_multipart_upload,
    "UploadPart": upload_part, "UploadPartCopy": upload_part_copy,
    "CompleteMultipartUpload": complete_multipart_upload, "AbortMultipartUpload": abort_multipart_upload,
    "ListParts": list_parts, "ListMultipartUploads": list_multipart_uploads,
    "PutBucketLifecycle": put_bucket_lifecycle, "GetBucketLifecycle": get_bucket_lifecycle,
    "DeleteBucketLifecycle": delete_bucket_lifecycle,
}
registry.rest_operations("oss", HANDLERS)


# -- fleet ------------------------------------------------------------------------------------
@fleet_section("buckets", order=80)
def load_buckets(state, spec) -> list[str]:
    """``buckets: [{"name": "backups", "region": "cn-hangzhou", "acl": "private"}]``."""
    if not isinstance(spec, list):
        raise ApiError("InvalidFleetSpec", "buckets must be a list", 400)
    buckets = state.table(BUCKETS)
    created = []
    for item in spec:
        if not isinstance(item, dict) or not item.get("name"):
            raise ApiError("InvalidFleetSpec", f"bucket entry needs a name: {item!r}", 400)
        name = item["name"]
        if not _BUCKET_RE.match(name):
            raise ApiError("InvalidFleetSpec", f"invalid bucket name {name!r}", 400)
        acl = item.get("acl", "private")
        if acl not in ACLS:
            raise ApiError("InvalidFleetSpec", f"bucket {name}: acl must be one of {', '.join(ACLS)}", 400)
        storage_class = item.get("storage_class", "Standard")
        if storage_class not in STORAGE_CLASSES:
            raise ApiError("InvalidFleetSpec", f"bucket {name}: invalid storage_class {storage_class!r}", 400)
        if name not in buckets:
            buckets[name] = {"name": name, "region": item.get("region", "cn-hangzhou"), "acl": acl,
                             "storage_class": storage_class, "created": state.now()}
        else:
            buckets[name].update(acl=acl)
        created.append(name)
    state.dirty = True
    return created
