"""OSS REST API with on-disk, streamed object data."""

from __future__ import annotations

from aiohttp import web


async def handle(emulator, request: web.Request) -> web.StreamResponse:  # replaced by the OSS implementation
    return web.Response(status=501, text="OSS not implemented yet")
