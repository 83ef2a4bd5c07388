"""Request signature checks: who signed a call, verified against the key store (:mod:`emulator.keys`).

Three signature schemes are verified, exactly as the official SDKs compute them:

* ``ACS3-HMAC-SHA256`` (tea-openapi, today's ECS/RDS/VPC SDKs),
* the classic RPC ``HMAC-SHA1`` signature (``aliyun-python-sdk-core``, the aliyun CLI, STS
  AssumeRole from ``alibabacloud-credentials``),
* ``OSS4-HMAC-SHA256`` (``alibabacloud-oss-v2``), verified in :mod:`emulator.oss.auth`.

The keys themselves (:class:`~emulator.keys.AccessKey`, :class:`~emulator.keys.KeyStore`, the default pair) live
in :mod:`emulator.keys`; their names are re-exported here for callers (and state files) that know them by this
module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote, quote_plus

from .errors import ApiError
from .keys import ACCOUNT_ID, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, AccessKey, KeyStore


def _signature_mismatch() -> ApiError:
    return ApiError("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.", 400)


def parse_acs3_authorization(header: str) -> dict[str, str]:
    """``ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex`` -> dict."""
    _, _, rest = header.partition(" ")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        k, _, v = item.strip().partition("=")
        parts[k] = v
    return parts


def verify_acs3(method: str, path: str, query: dict[str, str], headers, body: bytes, secret: str,
                authorization: str) -> None:
    """Check an ``ACS3-HMAC-SHA256`` signature as tea-openapi computes it."""
    parts = parse_acs3_authorization(authorization)
    signed = parts.get("SignedHeaders", "")
    signature = parts.get("Signature", "")
    if not signed or not signature:
        raise ApiError("IncompleteSignature", "The request signature does not conform to Aliyun standards.", 400)
    canon_query = "&".join(f"{k}={quote(query[k], safe='~')}" for k in sorted(query))
    canon_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed.split(";"))
    payload = headers.get("x-acs-content-sha256") or hashlib.sha256(body).hexdigest()
    if payload != hashlib.sha256(body).hexdigest():
        raise _signature_mismatch()
    canonical = f"{method}\n{path or '/'}\n{canon_query}\n{canon_headers}\n{signed}\n{payload}"
    string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise _signature_mismatch()


def _percent_encode(value: str) -> str:
    return quote(value, safe="~")


def verify_rpc_v1(method: str, params: dict[str, str], secret: str) -> None:
    """Check the classic RPC signature (``SignatureMethod=HMAC-SHA1``).

    aliyun-python-sdk-core percent-encodes spaces as ``%20``; alibabacloud-credentials' STS
    client uses ``quote_plus`` (space as ``+``). Either canonical form is accepted.
    """
    signature = params.get("Signature")
    if not signature:
        raise ApiError("IncompleteSignature", "The request signature does not conform to Aliyun standards.", 400)
    items = sorted((k, v) for k, v in params.items() if k != "Signature")
    key = f"{secret}&".encode()
    for encode in (_percent_encode, quote_plus):
        canonical = "&".join(f"{encode(k)}={encode(v)}" for k, v in items)
        string_to_sign = f"{method}&{encode('/')}&{encode(canonical)}"
        expected = base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha1).digest()).decode()
        if hmac.compare_digest(expected, signature):
            return
    raise _signature_mismatch()


__all__ = ["ACCOUNT_ID", "DEFAULT_ACCESS_KEY_ID", "DEFAULT_ACCESS_KEY_SECRET", "AccessKey", "KeyStore",
           "parse_acs3_authorization", "verify_acs3", "verify_rpc_v1"]
