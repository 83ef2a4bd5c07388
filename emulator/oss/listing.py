"""Listing a bucket's objects: ListObjects and ListObjectsV2 (prefix, delimiter, markers, URL encoding)."""

from __future__ import annotations

import base64

from aiohttp import web

from . import common
from .codec import doc, el, iso_ms, url_encode
from .context import Ctx
from .errors import invalid_argument
from .routing import operation

MAX_KEYS = 1000


def _list(ctx: Ctx, prefix: str, delimiter: str, after: str, max_keys: int):
    """Keys > ``after`` under ``prefix`` rolled up by ``delimiter``: (entries, truncated, next marker)."""
    keys = sorted(o["key"] for o in common.bucket_objects(ctx, ctx.bucket or "") if o["key"].startswith(prefix))
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
                rolled = k[: idx + len(delimiter)]
                if rolled in seen_prefixes or rolled <= after:
                    continue
                if len(entries) >= max_keys:
                    truncated = True
                    break
                seen_prefixes.add(rolled)
                entries.append(("prefix", rolled))
                last = rolled
                continue
        if len(entries) >= max_keys:
            truncated = True
            break
        entries.append(("key", k))
        last = k
    return entries, truncated, last


def _contents(ctx: Ctx, key: str, encode: bool, with_owner: bool) -> str:
    o = common.object_record(ctx, ctx.bucket or "", key)
    return ("<Contents>" + el("Key", url_encode(key) if encode else key)
            + el("LastModified", iso_ms(o["last_modified"])) + el("ETag", o["etag"]) + el("Type", o["type"])
            + el("Size", o["size"]) + el("StorageClass", o["storage_class"]) + (common.owner() if with_owner else "")
            + "</Contents>")


def _list_common(ctx: Ctx):
    q = ctx.query
    encoding = q.get("encoding-type")
    if encoding not in (None, "", "url"):
        raise invalid_argument("Invalid encoding type.", "encoding-type", encoding or "")
    delimiter = q.get("delimiter", "")
    prefix = q.get("prefix", "")
    max_keys = common.int_arg(q, "max-keys", 100, 0, MAX_KEYS)
    return encoding == "url", prefix, delimiter, max_keys


@operation("ListObjectsV2")
async def list_objects_v2(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx)
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
    enc = common.encoder(encode)
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


@operation("ListObjects")
async def list_objects(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx)
    encode, prefix, delimiter, max_keys = _list_common(ctx)
    marker = ctx.query.get("marker", "")
    entries, truncated, last = _list(ctx, prefix, delimiter, marker, max_keys)
    enc = common.encoder(encode)
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


