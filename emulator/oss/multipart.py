"""OSS multipart uploads: initiate, upload part (and part copy), complete, abort, list parts and uploads."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid

from aiohttp import web

from . import common
from .codec import doc, el, iso_ms, parse, url_encode
from .context import Ctx
from .crc64 import crc64_combine
from .errors import MALFORMED, err, invalid_argument, invalid_range, no_such_upload
from .routing import operation
from .store import store_of

MAX_PART_NUMBER = 10000


def _upload(ctx: Ctx) -> tuple[str, dict]:
    upload_id = ctx.query.get("uploadId", "")
    upload = ctx.state.table(common.UPLOADS).get(upload_id)
    if upload is None or upload["bucket"] != ctx.bucket or upload["key"] != ctx.key:
        raise no_such_upload(upload_id)
    return upload_id, upload


@operation("InitiateMultipartUpload")
async def initiate_multipart_upload(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx, for_write=True)
    key = common.validate_key(ctx.key)
    common.check_overwrite(ctx, ctx.bucket or "", key)
    await common.read_xml_body(ctx)  # no body is expected; whatever came is drained (bounded)
    upload_id = uuid.uuid4().hex.upper()
    ctx.state.table(common.UPLOADS)[upload_id] = {
        "bucket": ctx.bucket, "key": key, "initiated": ctx.now, "content_type": common.content_type_of(ctx),
        "meta": common.user_meta(ctx.headers), "headers": common.std_headers(ctx.headers),
        "storage_class": common.storage_class_of(ctx.headers), "parts": {}}
    ctx.state.dirty = True
    encode = ctx.query.get("encoding-type") == "url"
    parts = [el("Bucket", ctx.bucket), el("Key", url_encode(key) if encode else key), el("UploadId", upload_id)]
    if encode:
        parts.append(el("EncodingType", "url"))
    return ctx.xml(doc("InitiateMultipartUploadResult", *parts))


def _part_number(ctx: Ctx) -> int:
    raw = ctx.query.get("partNumber", "")
    number = common.ascii_decimal(raw)
    if number is None or not 1 <= number <= MAX_PART_NUMBER:
        raise invalid_argument(f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive.",
                               "partNumber", raw)
    return number


def _store_part(ctx: Ctx, upload_id: str, number: int, blob: str, size: int, md5: bytes, crc: int) -> dict:
    upload = ctx.state.table(common.UPLOADS).get(upload_id)
    store = store_of(ctx.emulator)
    if upload is None:  # aborted while the part was streaming in
        store.delete([blob])
        raise no_such_upload(upload_id)
    old = upload["parts"].get(number)
    part = {"blob": blob, "size": size, "md5": md5.hex(), "etag": common.md5_etag(md5), "crc": crc,
            "last_modified": ctx.now}
    upload["parts"][number] = part
    ctx.state.dirty = True
    if old is not None:
        store.delete([old["blob"]])
    return part


@operation("UploadPart")
async def upload_part(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx, for_write=True)
    upload_id, _ = _upload(ctx)
    number = _part_number(ctx)
    blob, size, md5, crc = await common.receive(ctx)
    part = _store_part(ctx, upload_id, number, blob, size, md5, crc)
    return ctx.empty(headers={"ETag": part["etag"], "x-oss-hash-crc64ecma": str(crc),
                              "Content-MD5": base64.b64encode(md5).decode()})


@operation("UploadPartCopy")
async def upload_part_copy(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx, for_write=True)
    upload_id, _ = _upload(ctx)
    number = _part_number(ctx)
    src = common.source_object(ctx)
    common.check_copy_conditions(ctx, src)
    size = src["size"]
    raw_range = ctx.headers.get("x-oss-copy-source-range")
    if raw_range:
        m = common.RANGE_RE.match(raw_range.strip())
        if not m or not m.group(1) or (m.group(2) and int(m.group(2)) < int(m.group(1))) or int(m.group(1)) >= size:
            raise invalid_range(raw_range, size)
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


@operation("CompleteMultipartUpload")
async def complete_multipart_upload(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx, for_write=True)
    upload_id, upload = _upload(ctx)
    body = await common.read_xml_body(ctx)
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
            n = common.ascii_decimal(raw_n)
            if n is None:
                raise err("MalformedXML", MALFORMED, 400, "0042-00000204")
            wanted.append((n, etag))
        if not wanted:
            raise err("MalformedXML", MALFORMED, 400, "0042-00000205")
    numbers = [n for n, _ in wanted]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise err("InvalidPartOrder", "The list of parts was not in ascending order. Parts list must specified in "
                  "order by part number.", 400, "0042-00000206", UploadId=upload_id)
    chosen = []
    for i, (n, etag) in enumerate(wanted):
        part = upload["parts"].get(n)
        if part is None or etag.strip('"').upper() != part["etag"].strip('"'):
            raise err("InvalidPart", "One or more of the specified parts could not be found or the specified entity "
                      "tag might not have matched the part's entity tag.", 400, "0042-00000209",
                      UploadId=upload_id, PartNumber=n, ETag=etag)
        if i < len(wanted) - 1 and part["size"] < 100 * 1024:
            raise err("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size.", 400,
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
    del ctx.state.table(common.UPLOADS)[upload_id]
    store.delete(p["blob"] for p in upload["parts"].values() if p["blob"] not in chosen_blobs)
    common.replace_object(ctx, record)
    encode = ctx.query.get("encoding-type") == "url"
    key = ctx.key or ""
    parts = [el("Bucket", ctx.bucket), el("Key", url_encode(key) if encode else key),
             el("Location", f"http://{ctx.request.host}/{ctx.bucket}/{key}"), el("ETag", etag)]
    if encode:
        parts.append(el("EncodingType", "url"))
    return ctx.xml(doc("CompleteMultipartUploadResult", *parts), headers={"x-oss-hash-crc64ecma": str(crc)})


@operation("AbortMultipartUpload")
async def abort_multipart_upload(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx, for_write=True)
    upload_id, upload = _upload(ctx)
    del ctx.state.table(common.UPLOADS)[upload_id]
    store_of(ctx.emulator).delete(p["blob"] for p in upload["parts"].values())
    ctx.state.dirty = True
    return ctx.empty(204)


@operation("ListParts")
async def list_parts(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx)
    upload_id, upload = _upload(ctx)
    q = ctx.query
    max_parts = common.int_arg(q, "max-parts", 1000, 1, 1000)
    marker = common.int_arg(q, "part-number-marker", 0, 0, MAX_PART_NUMBER)
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


@operation("ListMultipartUploads")
async def list_multipart_uploads(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx)
    q = ctx.query
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    key_marker = q.get("key-marker", "")
    id_marker = q.get("upload-id-marker", "")
    max_uploads = common.int_arg(q, "max-uploads", 1000, 1, 1000)
    encode = q.get("encoding-type") == "url"
    enc = common.encoder(encode)
    items = sorted((u["key"], u["initiated"], uid) for uid, u in ctx.state.table(common.UPLOADS).items()
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
                rolled = key[: idx + len(delimiter)]
                if rolled not in prefixes:
                    if len(entries) + len(prefixes) >= max_uploads:
                        truncated = True
                        break
                    prefixes.append(rolled)
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


