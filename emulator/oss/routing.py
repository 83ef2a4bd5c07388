"""Which OSS operation a request is, what RAM action it needs, and the handler that serves it.

Handlers register themselves with :func:`operation`, as RPC actions do with :func:`emulator.rpc.action`;
the name is also declared to :mod:`emulator.registry`, so fault rules can name ``oss:<Operation>``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from .. import registry
from .errors import method_not_allowed, not_implemented

Handler = Callable[[Any], Awaitable[Any]]  # async fn(ctx: Ctx) -> aiohttp.web.StreamResponse

HANDLERS: dict[str, Handler] = {}

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


def operation(name: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of OSS operation ``name``."""

    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        registry.rest_operations("oss", [name])
        return fn

    return register


def parse_query(raw: str) -> dict[str, str]:
    query: dict[str, str] = {}
    for pair in raw.split("&") if raw else []:
        if not pair:
            continue
        k, _, v = pair.partition("=")
        query[unquote(k)] = unquote(v)
    return query


def operation_of(method: str, bucket: str | None, key: str | None, q: dict, headers) -> str:
    if bucket is None:
        if method == "GET":
            return "ListBuckets"
        raise method_not_allowed()
    for sub in UNSUPPORTED:
        if sub in q:
            raise not_implemented(f"The emulator does not implement the '{sub}' sub-resource.")
    op = _bucket_operation(method, q) if key is None else _object_operation(method, q, headers)
    if op is None:
        raise method_not_allowed()
    return op


def _bucket_operation(method: str, q: dict) -> str | None:
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
    return None


def _object_operation(method: str, q: dict, headers) -> str | None:
    if "lifecycle" in q:  # a bucket sub-resource: never an object operation
        raise not_implemented("The emulator does not implement the 'lifecycle' sub-resource on objects.")
    if method == "PUT":
        if "acl" in q:
            raise not_implemented("The emulator does not implement object ACLs.")
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
    return None
