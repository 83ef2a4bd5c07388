"""What an OSS handler knows about the request it serves, and how it answers."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from .auth import Identity
from .codec import http_date


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
    corrupt: bool = False  # fault corrupt: the upload body's first byte arrives flipped (see common.receive)

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
