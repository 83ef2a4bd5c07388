"""``OSS4-HMAC-SHA256`` verification, as ``alibabacloud_oss_v2/signer/v4.py`` signs.

Both forms are checked: the ``Authorization`` header and presigned URLs (``x-oss-signature``
in the query). The region of the signing scope is returned: it selects the buckets a request
may use. Key-store errors are translated to the codes OSS itself returns.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote, unquote

from .auth import AccessKey
from .errors import ApiError

ALGORITHM = "OSS4-HMAC-SHA256"


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
        return emulator.keys.lookup(ak, emulator.state.now(), token)
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
    key = hmac.new(("aliyun_v4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    key = hmac.new(key, region.encode(), hashlib.sha256).digest()
    key = hmac.new(key, product.encode(), hashlib.sha256).digest()
    return hmac.new(key, b"aliyun_v4_request", hashlib.sha256).digest()


def _check(method: str, canonical_uri: str, canonical_query: str, headers, additional: list[str],
           payload: str, timestamp: str, scope: str, secret: str, signature: str) -> None:
    parts = scope.split("/")
    if len(parts) != 4 or parts[3] != "aliyun_v4_request":
        raise ApiError("InvalidArgument", "Invalid credential scope in the request.", 400)
    date, region, product, _ = parts
    canonical = (f"{method}\n{canonical_uri}\n{canonical_query}\n{_canonical_headers(headers, additional)}\n"
                 f"{';'.join(additional)}\n{payload}")
    string_to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(_signing_key(secret, date, region, product), string_to_sign.encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
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

    if authorization:
        if not authorization.startswith(ALGORITHM + " "):
            raise ApiError("InvalidArgument", "The emulator only accepts OSS4-HMAC-SHA256 signatures "
                           "(the alibabacloud-oss-v2 default).", 400)
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
        ak, _, scope = query.get("x-oss-credential", "").partition("/")
        access_key = lookup_key(emulator, ak, query.get("x-oss-security-token"))
        additional = [h for h in query.get("x-oss-additional-headers", "").split(";") if h]
        _check(request.method, canonical_uri, _canonical_query(raw_query, ("x-oss-signature",)), headers,
               additional, headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
               query.get("x-oss-date", ""), scope, access_key.secret, query["x-oss-signature"])
        return Identity(access_key, scope.split("/")[1] if scope.count("/") == 3 else None)
    return Identity(None, None)
