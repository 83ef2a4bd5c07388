"""XML and HTTP-date helpers for the OSS emulator (responses are built as text, requests parsed with ET)."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import formatdate
from urllib.parse import quote
from xml.sax.saxutils import escape

from ..errors import ApiError

XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def http_date(ts: float) -> str:
    """``Mon, 02 Jan 2006 15:04:05 GMT``."""
    return formatdate(ts, usegmt=True)


def iso_ms(ts: float) -> str:
    """``2024-01-01T00:00:00.000Z`` as OSS lists use it."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def url_encode(value: str) -> str:
    """``encoding-type=url`` form of a key or prefix (what OSS sends; the SDK unquotes it)."""
    return quote(value, safe="")


def el(tag: str, value) -> str:
    """``<Tag>escaped value</Tag>``; None gives ``<Tag/>``; a bool gives true/false."""
    if value is None:
        return f"<{tag}/>"
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def doc(root: str, *parts: str) -> bytes:
    return (XML_DECL + f"<{root}>" + "".join(parts) + f"</{root}>").encode()


def error_xml(code: str, message: str, request_id: str, host_id: str, ec: str, extra: dict | None = None) -> bytes:
    parts = [el("Code", code), el("Message", message), el("RequestId", request_id), el("HostId", host_id)]
    for k, v in (extra or {}).items():
        if isinstance(v, str | int | float):
            parts.append(el(k, v))
        elif isinstance(v, dict):  # e.g. AccessDeniedDetail: one level of child elements
            parts.append(f"<{k}>" + "".join(el(ck, cv) for ck, cv in v.items()) + f"</{k}>")
    parts.append(el("EC", ec))
    return doc("Error", *parts)


def error_header(body: bytes) -> str:
    """The base64 ``x-oss-err`` header a HEAD error carries instead of a body."""
    return base64.b64encode(body).decode()


def parse(body: bytes, root: str) -> ET.Element:
    """Parse a request body whose root must be ``root``; anything else is MalformedXML.

    A document type declaration (and so any entity definition) is refused: OSS bodies never have one,
    and entities are how small XML bodies expand into huge ones."""
    if not body or b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise ApiError("MalformedXML", "The XML you provided was not well-formed or did not validate "
                       "against our published schema.", 400)
    try:
        tree = ET.fromstring(body)
    except (ET.ParseError, ValueError, LookupError, UnicodeError):
        raise ApiError("MalformedXML", "The XML you provided was not well-formed or did not validate "
                       "against our published schema.", 400) from None
    if tree.tag != root:
        raise ApiError("MalformedXML", f"The root element must be {root}.", 400)
    return tree
