"""OSS request signatures, as ``alibabacloud_oss_v2/signer/v4.py`` and ``v1.py`` sign.

``OSS4-HMAC-SHA256`` (the SDK default) and the V1 ``HMAC-SHA1`` signature, each in both forms: the
``Authorization`` header and presigned URLs (``x-oss-signature`` / ``Signature`` in the query). The region
of a V4 signing scope is returned: it selects the buckets a request may use (V1 has no scope).
Key-store errors are translated to the codes OSS itself returns.

Time is the REAL wall clock (never the emulator's simulated one): a presigned URL past its expiry
(V4 ``x-oss-date`` + ``x-oss-expires``, V1 ``Expires``) answers 403 ``AccessDenied`` "Request has expired.";
a header-signed request whose ``x-oss-date`` / ``Date`` is more than 15 minutes off answers 403
``RequestTimeTooSkewed``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from ..errors import ApiError
from ..keys import AccessKey
from ..security import MAX_SKEW
from ..sts.clock import credential_now

ALGORITHM = "OSS4-HMAC-SHA256"
# the query parameters the V1 signature covers (the SDK's list plus the sub-resources operations declare)
V1_SUBRESOURCES = frozenset([
    "acl", "bucketInfo", "location", "stat", "delete", "append", "tagging", "objectMeta", "uploads", "uploadId",
    "partNumber", "security-token", "position", "response-content-type", "response-content-language",
    "response-expires", "response-cache-control", "response-content-disposition", "response-content-encoding",
    "restore", "callback", "callback-var", "versions", "versioning", "versionId", "sequential", "continuation-token",
    "regionList", "cloudboxes", "symlink", "resourceGroup",
    "lifecycle", "cors", "website", "logging", "referer", "policy", "replication", "encryption", "worm", "inventory",
    "qos", "cname", "requestPayment", "transferAcceleration", "accessPoint"])


def _b(text: str) -> bytes:
    """Text as the bytes that arrived (aiohttp keeps undecodable header bytes as surrogates)."""
    return text.encode("utf-8", "surrogateescape")


@dataclass
class Identity:
    key: AccessKey | None  # None: anonymous
    region: str | None


def _mismatch(string_to_sign: str = "") -> ApiError:
    return ApiError("SignatureDoesNotMatch", "The request signature we calculated does not match the signature "
                    "you provided. Check your key and signing method.", 403,
                    extra={"StringToSign": string_to_sign} if string_to_sign else None)


def _invalid_ak(ak: str) -> ApiError:
    return ApiError("InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.", 403,
                    extra={"OSSAccessKeyId": ak})


def lookup_key(emulator, ak: str, token: str | None) -> AccessKey:
    try:
        return emulator.keys.lookup(ak, credential_now(emulator.state), token)  # real time, not simulated
    except ApiError as exc:
        if exc.code.startswith("InvalidAccessKeyId"):
            raise _invalid_ak(ak) from None
        if exc.code.endswith("Expired"):
            raise ApiError("SecurityTokenExpired", "The security token you provided has expired.", 403) from None
        raise ApiError("InvalidSecurityToken", "The security token you provided is invalid.", 403) from None


def _canonical_query(raw_query: str, skip: tuple[str, ...] = ()) -> str:
    pairs = []
    if raw_query:
        for pair in raw_query.split("&"):
            k, _, v = pair.partition("=")
            if k in skip:
                continue
            pairs.append((k, v))
    return "&".join(f"{k}={v}" if v else k for k, v in sorted(pairs))


def _canonical_headers(headers, additional: list[str]) -> str:
    items = []
    for k, v in headers.items():
        lk = k.lower()
        if lk.startswith("x-oss-") or lk in ("content-type", "content-md5") or lk in additional:
            items.append((lk, v))
    items.sort(key=lambda kv: kv[0])
    return "".join(f"{k}:{v}\n" for k, v in items)


def _signing_key(secret: str, date: str, region: str, product: str) -> bytes:
    key = hmac.new(_b("aliyun_v4" + secret), _b(date), hashlib.sha256).digest()
    key = hmac.new(key, _b(region), hashlib.sha256).digest()
    key = hmac.new(key, _b(product), hashlib.sha256).digest()
    return hmac.new(key, b"aliyun_v4_request", hashlib.sha256).digest()


def _check(method: str, canonical_uri: str, canonical_query: str, headers, additional: list[str],
           payload: str, timestamp: str, scope: str, secret: str, signature: str) -> None:
    parts = scope.split("/")
    if len(parts) != 4 or parts[3] != "aliyun_v4_request":
        raise ApiError("InvalidArgument", "Invalid credential scope in the request.", 400)
    date, region, product, _ = parts
    canonical = (f"{method}\n{canonical_uri}\n{canonical_query}\n{_canonical_headers(headers, additional)}\n"
                 f"{';'.join(additional)}\n{payload}")
    string_to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{hashlib.sha256(_b(canonical)).hexdigest()}"
    expected = hmac.new(_signing_key(secret, date, region, product), _b(string_to_sign),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(_b(expected), _b(signature)):
        raise _mismatch(string_to_sign)


# -- time -------------------------------------------------------------------------------------------
def _expired() -> ApiError:
    return ApiError("AccessDenied", "Request has expired.", 403, extra={"EC": "0002-00000069"})


def _skewed() -> ApiError:
    return ApiError("RequestTimeTooSkewed", "The difference between the request time and the current time is too "
                    "large.", 403, extra={"EC": "0002-00000504"})


def _bad_time(name: str, value: str, ec: str = "0002-00000505") -> ApiError:
    """A missing or malformed time: 0002-00000505 for a header, 0002-00000070 for a presigned URL's expiry."""
    return ApiError("InvalidArgument", f"{name} is missing or not a valid time.", 400,
                    extra={"EC": ec, "ArgumentName": name, "ArgumentValue": value[:100]})


def _iso_basic(value: str) -> float | None:
    """``20240101T000000Z`` (``x-oss-date``) as epoch seconds."""
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except (ValueError, OverflowError):
        return None


def _check_skew(name: str, when: float | None, value: str) -> None:
    if when is None:
        raise _bad_time(name, value)
    if abs(time.time() - when) > MAX_SKEW:
        raise _skewed()


def _http_date(value: str) -> float | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def _digits(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 15 else None


# -- V1 ----------------------------------------------------------------------------------------------
def _v1_string_to_sign(request, bucket: str | None, key: str | None, raw_query: str, date: str) -> str:
    resource = "/" + (f"{bucket}/" if bucket is not None else "") + (key or "")
    pairs = []
    for pair in raw_query.split("&") if raw_query else []:
        k, _, v = pair.partition("=")
        k, v = unquote(k), unquote(v)
        if k in V1_SUBRESOURCES:
            pairs.append((k, v))
    if pairs:  # sorted as (key, value) pairs, as the SDK does ("callback" before "callback-var")
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in sorted(pairs))
    headers = sorted((k.lower(), v) for k, v in request.headers.items() if k.lower().startswith("x-oss-"))
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in headers)
    h = request.headers
    return f"{request.method}\n{h.get('Content-MD5', '')}\n{h.get('Content-Type', '')}\n{date}\n" \
           f"{canonical_headers}{resource}"


def _check_v1(string_to_sign: str, secret: str, signature: str) -> None:
    expected = base64.b64encode(hmac.new(_b(secret), _b(string_to_sign), hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(_b(expected), _b(signature)):
        raise _mismatch(string_to_sign)


def authenticate(emulator, request, bucket: str | None, key: str | None) -> Identity:
    """Verify the request's signature; returns the key (None if anonymous) and the scope region."""
    uri = "/"
    if bucket is not None:
        uri += bucket + "/"
    if key is not None:
        uri += key
    canonical_uri = quote(uri, safe="/")
    raw_query = request.rel_url.raw_query_string
    headers = request.headers
    authorization = headers.get("Authorization", "")

    if authorization.startswith("OSS "):  # V1: "OSS AK:signature"
        ak, _, signature = authorization[4:].strip().partition(":")
        if not ak or not signature:
            raise ApiError("InvalidArgument", "Authorization header is invalid.", 400)
        access_key = lookup_key(emulator, ak, headers.get("security-token") or headers.get("x-oss-security-token"))
        date = headers.get("x-oss-date") or headers.get("Date", "")
        when = _iso_basic(date) if headers.get("x-oss-date") else _http_date(date)
        _check_skew("Date", when, date)
        _check_v1(_v1_string_to_sign(request, bucket, key, raw_query, date), access_key.secret, signature)
        return Identity(access_key, None)

    if authorization:
        if not authorization.startswith(ALGORITHM + " "):
            raise ApiError("InvalidArgument", "The emulator only accepts OSS4-HMAC-SHA256 and OSS (V1) "
                           "signatures.", 400)
        fields: dict[str, str] = {}
        for item in authorization[len(ALGORITHM) + 1:].split(","):
            k, _, v = item.strip().partition("=")
            fields[k] = v
        credential = fields.get("Credential", "")
        signature = fields.get("Signature", "")
        ak, _, scope = credential.partition("/")
        if not ak or not scope or not signature:
            raise ApiError("InvalidArgument", "Authorization header is invalid.", 400)
        access_key = lookup_key(emulator, ak, headers.get("x-oss-security-token"))
        timestamp = headers.get("x-oss-date", "")
        _check_skew("x-oss-date", _iso_basic(timestamp), timestamp)
        additional = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
        payload = headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
        _check(request.method, canonical_uri, _canonical_query(raw_query), headers, additional, payload,
               timestamp, scope, access_key.secret, signature)
        return Identity(access_key, scope.split("/")[1])

    query = {}
    for pair in raw_query.split("&") if raw_query else []:
        k, _, v = pair.partition("=")
        query[k] = unquote(v)
    if "x-oss-signature" in query:
        if query.get("x-oss-signature-version") != ALGORITHM:
            raise ApiError("InvalidArgument", "Unsupported x-oss-signature-version.", 400)
        signed_at, expires = _iso_basic(query.get("x-oss-date", "")), _digits(query.get("x-oss-expires", ""))
        if signed_at is None:
            raise _bad_time("x-oss-date", query.get("x-oss-date", ""), "0002-00000070")
        if expires is None:
            raise _bad_time("x-oss-expires", query.get("x-oss-expires", ""), "0002-00000070")
        if time.time() > signed_at + expires:
            raise _expired()
        ak, _, scope = query.get("x-oss-credential", "").partition("/")
        access_key = lookup_key(emulator, ak, query.get("x-oss-security-token"))
        additional = [h for h in query.get("x-oss-additional-headers", "").split(";") if h]
        _check(request.method, canonical_uri, _canonical_query(raw_query, ("x-oss-signature",)), headers,
               additional, headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
               query.get("x-oss-date", ""), scope, access_key.secret, query["x-oss-signature"])
        return Identity(access_key, scope.split("/")[1] if scope.count("/") == 3 else None)
    if "Signature" in query or "OSSAccessKeyId" in query:  # V1 presigned URL
        expires_raw = query.get("Expires", "")
        expires = _digits(expires_raw)
        if expires is None:
            raise _bad_time("Expires", expires_raw, "0002-00000070")
        if time.time() > expires:
            raise _expired()
        ak, signature = query.get("OSSAccessKeyId", ""), query.get("Signature", "")
        if not ak or not signature:
            raise ApiError("InvalidArgument", "A presigned URL needs OSSAccessKeyId, Expires and Signature.", 400)
        access_key = lookup_key(emulator, ak, query.get("security-token"))
        _check_v1(_v1_string_to_sign(request, bucket, key, raw_query, expires_raw), access_key.secret, signature)
        return Identity(access_key, None)
    return Identity(None, None)
