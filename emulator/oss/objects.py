"""OSS objects: put, get (ranged), head, meta, delete (one or many), copy, append."""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web

from ..arns import oss_resources
from ..errors import ApiError
from ..security import MAX_OBJECT_SIZE
from . import common
from .codec import doc, el, http_date, iso_ms, parse, url_encode
from .context import Ctx
from .crc64 import crc64_combine
from .errors import MALFORMED, entity_too_large, err, invalid_argument, invalid_range
from .routing import operation
from .store import store_of


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


@operation("PutObject")
async def put_object(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx, for_write=True)
    key = common.validate_key(ctx.key)
    storage_class = common.storage_class_of(ctx.headers)
    common.check_overwrite(ctx, ctx.bucket or "", key)
    blob, size, md5, crc = await common.receive(ctx)
    record = {"bucket": ctx.bucket, "key": key, "segments": [[blob, size]], "size": size, "etag": common.md5_etag(md5),
              "crc": crc, "content_type": common.content_type_of(ctx), "meta": common.user_meta(ctx.headers),
              "headers": common.std_headers(ctx.headers), "last_modified": ctx.now, "storage_class": storage_class,
              "type": "Normal"}
    common.replace_object(ctx, record)
    return ctx.empty(headers={"ETag": record["etag"], "x-oss-hash-crc64ecma": str(crc),
                              "Content-MD5": base64.b64encode(md5).decode()})


def _parse_range(header: str | None, size: int, standard: bool) -> tuple[int, int] | None:
    """(start, end) inclusive, or None for the whole object; raises InvalidRange (416)."""
    if not header:
        return None
    m = common.RANGE_RE.match(header.strip())
    invalid = invalid_range(header, size)
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


@operation("GetObject")
async def get_object(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx)
    obj = common.object_record(ctx, ctx.bucket or "", ctx.key or "")
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


@operation("HeadObject")
async def head_object(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx)
    obj = common.object_record(ctx, ctx.bucket or "", ctx.key or "")
    headers = _object_headers(obj)
    headers["Content-Length"] = str(obj["size"])
    return web.Response(status=200, headers=ctx.headers_out(headers))


@operation("GetObjectMeta")
async def get_object_meta(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx)
    obj = common.object_record(ctx, ctx.bucket or "", ctx.key or "")
    headers = {"ETag": obj["etag"], "Last-Modified": http_date(obj["last_modified"]),
               "x-oss-hash-crc64ecma": str(obj["crc"]), "Content-Length": str(obj["size"]),
               "x-oss-last-access-time": http_date(obj["last_modified"])}
    return web.Response(status=200, headers=ctx.headers_out(headers))


@operation("DeleteObject")
async def delete_object(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx, for_write=True)
    obj = ctx.state.table(common.OBJECTS).pop(f"{ctx.bucket}/{ctx.key}", None)
    if obj is not None:
        store_of(ctx.emulator).delete(b for b, _ in obj["segments"])
        ctx.state.dirty = True
    return ctx.empty(204)


@operation("DeleteMultipleObjects")
async def delete_multiple_objects(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx, for_write=True)
    tree = parse(await common.read_xml_body(ctx), "Delete")
    quiet = (tree.findtext("Quiet") or "false").strip().lower() == "true"
    keys = [o.findtext("Key") for o in tree.findall("Object")]
    if not keys or any(k is None or k == "" for k in keys):
        raise err("MalformedXML", MALFORMED, 400, "0016-00000608")
    if len(keys) > 1000:
        raise err("MalformedXML", "The number of objects to delete must not exceed 1000.", 400, "0016-00000609")
    if ctx.identity.key is not None:  # RAM: oss:DeleteObject on every object named, before any is deleted
        ctx.emulator.keys.check_permission(  # type: ignore[attr-defined]
            ctx.identity.key, "oss:DeleteObject", lambda: [n for k in keys for n in oss_resources(ctx.bucket, k)])
    encode = ctx.query.get("encoding-type") == "url"
    objects = ctx.state.table(common.OBJECTS)
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


@operation("CopyObject")
async def copy_object(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx, for_write=True)
    key = common.validate_key(ctx.key)
    src = common.source_object(ctx)
    common.check_copy_conditions(ctx, src)
    common.check_overwrite(ctx, ctx.bucket or "", key)
    directive = ctx.headers.get("x-oss-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Invalid metadata directive.", "x-oss-metadata-directive", directive)
    store = store_of(ctx.emulator)
    segments = [[store.link(b), n] for b, n in src["segments"]]
    if directive == "REPLACE":
        meta, headers = common.user_meta(ctx.headers), common.std_headers(ctx.headers)
        content_type = common.content_type_of(ctx)
    else:
        meta, headers, content_type = dict(src["meta"]), dict(src["headers"]), src["content_type"]
    record = {**src, "bucket": ctx.bucket, "key": key, "segments": segments, "meta": meta, "headers": headers,
              "content_type": content_type, "last_modified": ctx.now,
              "storage_class": common.storage_class_of(ctx.headers, src["storage_class"])}
    if record["type"] == "Appendable":
        record["type"] = "Normal"
    common.replace_object(ctx, record)
    body = doc("CopyObjectResult", el("ETag", record["etag"]), el("LastModified", iso_ms(record["last_modified"])))
    return ctx.xml(body, headers={"x-oss-hash-crc64ecma": str(record["crc"])})


def _position_mismatch(current: int) -> ApiError:
    return ApiError("PositionNotEqualToLength", "Position is not equal to file length", 409,
                    headers={"x-oss-next-append-position": str(current)}, extra={"EC": "0026-00000006"})


@operation("AppendObject")
async def append_object(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx, for_write=True)
    key = common.validate_key(ctx.key)
    raw_pos = ctx.query.get("position", "")
    position = common.ascii_decimal(raw_pos)  # type: ignore[assignment]
    if position is None:
        raise invalid_argument("Position is not a valid integer.", "position", raw_pos)
    length = ctx.request.content_length
    if position + (length or 0) > MAX_OBJECT_SIZE:
        raise entity_too_large()
    objects = ctx.state.table(common.OBJECTS)
    name = f"{ctx.bucket}/{key}"
    obj = objects.get(name)
    current = obj["size"] if obj else 0
    if obj is not None and obj["type"] != "Appendable":
        raise err("ObjectNotAppendable", "The object you specified is not appendable.", 409, "0026-00000007")
    if position != current:
        raise _position_mismatch(current)
    store = store_of(ctx.emulator)
    blob, size, md5, crc = await common.receive(ctx, MAX_OBJECT_SIZE - position)
    # re-read: another append may have won the race while we were receiving
    obj = objects.get(name)
    if (obj["size"] if obj else 0) != position:
        store.delete([blob])
        raise _position_mismatch(obj["size"] if obj else 0)
    if obj is None:
        obj = {"bucket": ctx.bucket, "key": key, "segments": [], "size": 0, "crc": 0, "md5": "",
               "content_type": common.content_type_of(ctx), "meta": common.user_meta(ctx.headers),
               "headers": common.std_headers(ctx.headers), "storage_class": common.storage_class_of(ctx.headers),
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


