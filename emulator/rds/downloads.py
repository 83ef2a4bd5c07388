"""RDS backup downloads, served by the emulator itself: ``GET|HEAD /_emulator/download/rds/<BackupId>?expires=``.

The URL (:func:`download_url`, in DescribeBackups' answers) stands for the cloud's signed OSS URL: it expires two
simulated hours after it was handed out (403 ``AccessDenied``) and needs no admin token. The content is
deterministic bytes of exactly ``BackupSize`` (a 64 KiB pattern derived from the backup id, repeated), streamed in
chunks, with ``Range`` support (206, 416), ``Content-Length``, ``ETag`` and ``Last-Modified``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from email.utils import formatdate

from aiohttp import web

from ..clock import iso_minutes
from ..registry import raw_route
from ..rpc import Call
from .common import BACKUPS

URL_TTL = 7200
PATTERN_BLOCKS = 2048  # 2048 x 32-byte SHA-256 digests = a 64 KiB pattern
CHUNK = 1024**2
DOWNLOAD_PREFIX = "/_emulator/download/rds/"


def download_url(call: Call, backup_id: str) -> str:
    """The download URL of a backup, as DescribeBackups hands it out during ``call``."""
    return f"{call.base_url}{DOWNLOAD_PREFIX}{backup_id}?expires={int(call.now + URL_TTL)}"


_PATTERNS: OrderedDict[str, bytes] = OrderedDict()


def pattern(backup_id: str) -> bytes:
    """The 64 KiB block a backup's content repeats (deterministic per id)."""
    block = _PATTERNS.get(backup_id)
    if block is None:
        block = b"".join(hashlib.sha256(f"rds-backup:{backup_id}:{n}".encode()).digest()
                         for n in range(PATTERN_BLOCKS))
        _PATTERNS[backup_id] = block
        while len(_PATTERNS) > 16:
            _PATTERNS.popitem(last=False)
    else:
        _PATTERNS.move_to_end(backup_id)
    return block


def content_slice(backup_id: str, offset: int, length: int) -> bytes:
    """Bytes ``offset .. offset+length-1`` of a backup file (for tests and the download route)."""
    block = pattern(backup_id)
    parts = []
    pos = offset % len(block)
    remaining = length
    while remaining > 0:
        take = min(len(block) - pos, remaining)
        parts.append(block[pos:pos + take])
        remaining -= take
        pos = 0
    return b"".join(parts)


def _parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """``(first, last)``, None to serve everything, or ``"unsatisfiable"``."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # invalid or multi-range: ignore the header (RFC 9110)
    if m.group(1):
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else size - 1
        if m.group(2) and last < first:
            return None
        if first >= size:
            return "unsatisfiable"
        return first, min(last, size - 1)
    suffix = int(m.group(2))
    if suffix == 0 or size == 0:
        return "unsatisfiable"
    return max(0, size - suffix), size - 1


def _plain_error(status: int, code: str, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"Code": code, "Message": message}).encode(),
                        content_type="application/json")


@raw_route("GET", DOWNLOAD_PREFIX)
async def download_backup(emulator, request: web.Request) -> web.StreamResponse:
    backup_id = request.path[len(DOWNLOAD_PREFIX):].strip("/")
    state = emulator.state
    backup = state.table(BACKUPS).get(backup_id)
    if backup is None or backup["BackupStatus"] != "Success":
        return _plain_error(404, "NoSuchKey", f"backup {backup_id!r} does not exist")
    expires = request.query.get("expires", "")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 15):
        return _plain_error(403, "AccessDenied", "the download URL has no valid expires parameter")
    if state.now() > int(expires):
        return _plain_error(403, "AccessDenied", "Request has expired.")
    size = int(backup["BackupSize"])
    etag = '"' + hashlib.md5(f"{backup_id}:{size}".encode()).hexdigest().upper() + '"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
               "Last-Modified": _http_date(backup["EndTime"]),
               "Content-Disposition": f'attachment; filename="hins{backup_id}_{iso_minutes(backup["EndTime"])}.tar"'}
    first, last, status = 0, size - 1, 200
    if request.headers.get("Range"):
        parsed = _parse_range(request.headers["Range"], size)
        if parsed == "unsatisfiable":
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
        if isinstance(parsed, tuple):
            first, last = parsed
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    length = max(0, last - first + 1)
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = length
    await resp.prepare(request)
    if request.method == "HEAD":
        await resp.write_eof()
        return resp
    offset = first
    while offset <= last:
        n = min(CHUNK, last - offset + 1)
        await resp.write(content_slice(backup_id, offset, n))
        offset += n
    await resp.write_eof()
    return resp


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)
