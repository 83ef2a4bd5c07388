"""Helpers shared by the OSS handlers: state tables, bucket access, arguments, object records, request bodies."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from urllib.parse import unquote

from ..arns import oss_resources
from ..security import MAX_OBJECT_SIZE, MAX_XML_BODY, read_limited
from .codec import el, url_encode
from .context import Ctx
from .errors import (
    access_denied,
    entity_too_large,
    err,
    invalid_argument,
    invalid_digest,
    no_such_bucket,
    no_such_key,
    xml_too_large,
)
from .routing import OBJECT_WRITE_OPS, READ_OPS
from .store import CHUNK, store_of

BUCKETS, OBJECTS, UPLOADS = "oss.buckets", "oss.objects", "oss.uploads"
OWNER_ID = "1234567890123456"
STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")
ACLS = ("private", "public-read", "public-read-write")
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
COPY_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires")


# -- buckets --------------------------------------------------------------------------------
def use_bucket(ctx: Ctx, name: str | None = None, for_write: bool = False, any_region: bool = False) -> dict:
    """The bucket record, if the caller may use it: it exists, the request is signed for its region (unless
    ``any_region``), and an anonymous caller is allowed by its ACL."""
    name = name or ctx.bucket
    record = ctx.state.table(BUCKETS).get(name)
    if record is None:
        raise no_such_bucket(name or "")
    region = ctx.identity.region
    if region and record["region"] != region and not any_region:
        raise access_denied("The bucket you are attempting to access must be addressed using the specified "
                            f"endpoint. Please send all future requests to this endpoint. "
                            f"(bucket region {record['region']}, request signed for {region})")
    if ctx.identity.key is None:
        acl = record.get("acl", "private")
        allowed = (acl in ("public-read", "public-read-write") and ctx.op in READ_OPS) or \
                  (acl == "public-read-write" and ctx.op in OBJECT_WRITE_OPS)
        if not allowed or for_write and acl != "public-read-write":
            raise access_denied()
    return record


def bucket_objects(ctx: Ctx, bucket: str) -> list[dict]:
    prefix = f"{bucket}/"
    return [o for k, o in ctx.state.table(OBJECTS).items() if k.startswith(prefix)]


def owner() -> str:
    return "<Owner>" + el("ID", OWNER_ID) + el("DisplayName", OWNER_ID) + "</Owner>"


# -- arguments ------------------------------------------------------------------------------
def ascii_decimal(raw: str) -> int | None:
    """A non-negative decimal of ASCII digits (``"²"`` and ``"١"`` are digits to ``str.isdigit``, not here)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 20 else None


def int_arg(q: dict, name: str, default: int, lo: int, hi: int) -> int:
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


def validate_key(key: str | None) -> str:
    if not key:
        raise invalid_argument("The object key must not be empty.")
    if len(key.encode()) > 1023 or key.startswith(("/", "\\")):
        raise err("InvalidObjectName", "The specified object is not valid.", 400, "0016-00000005", Key=key)
    return key


def storage_class_of(headers, default: str = "Standard") -> str:
    sc = headers.get("x-oss-storage-class", default)
    if sc not in STORAGE_CLASSES:
        raise invalid_argument("Invalid storage class.", "x-oss-storage-class", sc)
    return sc


def encoder(encode: bool):
    """``url_encode`` when the request asked for ``encoding-type=url``, else the identity."""

    def enc(v: str) -> str:
        return url_encode(v) if encode else v

    return enc


# -- object records -------------------------------------------------------------------------
def md5_etag(md5: bytes) -> str:
    return '"' + md5.hex().upper() + '"'


def user_meta(headers) -> dict[str, str]:
    return {k.lower()[len("x-oss-meta-"):]: v for k, v in headers.items() if k.lower().startswith("x-oss-meta-")}


def std_headers(headers) -> dict[str, str]:
    return {h: headers[h] for h in COPY_HEADERS if h in headers}


def content_type_of(ctx: Ctx) -> str:
    return ctx.headers.get("Content-Type") or "application/octet-stream"


def object_record(ctx: Ctx, bucket: str, key: str) -> dict:
    obj = ctx.state.table(OBJECTS).get(f"{bucket}/{key}")
    if obj is None:
        raise no_such_key(key)
    return obj


def replace_object(ctx: Ctx, record: dict) -> None:
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


def check_overwrite(ctx: Ctx, bucket: str, key: str) -> None:
    if ctx.headers.get("x-oss-forbid-overwrite", "").lower() == "true" and \
            f"{bucket}/{key}" in ctx.state.table(OBJECTS):
        raise err("FileAlreadyExists", "The object you specified already exists and can not be overwritten.",
                  409, "0016-00000708")


# -- copy sources (CopyObject, UploadPartCopy) ----------------------------------------------
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


def source_object(ctx: Ctx) -> dict:
    src_bucket, src_key = _copy_source(ctx)
    use_bucket(ctx, src_bucket)
    if ctx.identity.key is not None:
        ctx.emulator.keys.check_permission(ctx.identity.key, "oss:GetObject",  # type: ignore[attr-defined]
                                           lambda: oss_resources(src_bucket, src_key))
    return object_record(ctx, src_bucket, src_key)


def check_copy_conditions(ctx: Ctx, src: dict) -> None:
    match = ctx.headers.get("x-oss-copy-source-if-match")
    if match and match.strip('"').upper() != src["etag"].strip('"'):
        raise err("PreconditionFailed", "At least one of the pre-conditions you specified did not hold.", 412,
                  "0026-00000003")
    none_match = ctx.headers.get("x-oss-copy-source-if-none-match")
    if none_match and none_match.strip('"').upper() == src["etag"].strip('"'):
        raise err("PreconditionFailed", "At least one of the pre-conditions you specified did not hold.", 412,
                  "0026-00000003")


# -- request bodies -------------------------------------------------------------------------
async def read_xml_body(ctx: Ctx) -> bytes:
    """A configuration body (XML), refused past :data:`MAX_XML_BODY` before it is read."""
    return await read_limited(ctx.request, MAX_XML_BODY, xml_too_large)


def content_md5_ok(ctx: Ctx, md5: bytes) -> bool:
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


async def receive(ctx: Ctx, limit: int = MAX_OBJECT_SIZE) -> tuple[str, int, bytes, int]:
    """Stream the request body into a new blob: (blob, size, md5, crc64) of the bytes as stored."""
    store = store_of(ctx.emulator)
    chunks = _capped(ctx.request.content.iter_chunked(CHUNK), limit)
    if ctx.corrupt:
        chunks = _flip_first_byte(chunks)
    blob, size, md5, crc = await store.write_stream(chunks)
    ctx.corrupt = ctx.corrupt and size > 0  # an empty body has nothing to flip: not logged as corrupted
    if not content_md5_ok(ctx, md5):
        store.delete([blob])
        raise invalid_digest()
    return blob, size, md5, crc
