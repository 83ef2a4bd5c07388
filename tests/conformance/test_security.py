"""An emulator that is safe to leave running (issue 13): loopback bind, admin token, JSON-only admin API,
Origin refusal, redacted state dumps, RPC timestamp/nonce checks, OSS presigned expiry, anonymous limits,
body limits -- each driven through the official SDKs or plain HTTP, as a caller would."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import alibabacloud_oss_v2 as oss
import psutil
import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi.utils import Utils
from Tea.exceptions import TeaException

from emulator import security
from emulator.control import AdminClient, AdminError, read_admin_token

from .helpers import api_error

ROOT = Path(__file__).resolve().parents[2]
ROLE_ARN = "acs:ram::1234567890123456:role/ops-backup"


# -- helpers ------------------------------------------------------------------------------------------
def raw(emulator, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of a plain HTTP request; never raises for an HTTP error status."""
    parts = urlsplit(emulator.base_url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def admin_http(emulator, method: str, name: str, body: bytes | None = None, **headers):
    return raw(emulator, method, f"/_emulator/{name}", body, headers)


def bearer(emulator) -> dict:
    return {"Authorization": f"Bearer {emulator.admin_token}"}


def rpc_v1_url(emulator, params: dict, *, timestamp: str | None = None, nonce: str | None = None,
               secret: str | None = None) -> str:
    """A classic (HMAC-SHA1) signed RPC GET URL, built as aliyun-python-sdk-core builds it."""
    query = {"Format": "JSON", "Version": "2014-05-26", "AccessKeyId": emulator.access_key_id,
             "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
             "Timestamp": timestamp or datetime.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "SignatureNonce": nonce or uuid.uuid4().hex, **params}
    query = {k: v for k, v in query.items() if v is not None}
    canonical = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query.items()))
    to_sign = f"GET&%2F&{quote(canonical, safe='~')}"
    key = f"{secret or emulator.access_key_secret}&".encode()
    query["Signature"] = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha1).digest()).decode()
    return f"/?{urlencode(query, quote_via=quote)}"


def rpc_get(emulator, path: str) -> tuple[int, dict]:
    status, _, body = raw(emulator, "GET", path)
    return status, json.loads(body)


def service_error(exc_info) -> oss.exceptions.ServiceError:
    err = exc_info.value
    inner = err.unwrap() if hasattr(err, "unwrap") else err
    assert isinstance(inner, oss.exceptions.ServiceError), repr(err)
    return inner


def anonymous_oss(emulator) -> oss.Client:
    cfg = oss.config.load_default()
    cfg.region, cfg.endpoint, cfg.use_path_style = "cn-hangzhou", emulator.base_url, True
    cfg.credentials_provider = oss.credentials.AnonymousCredentialsProvider()
    cfg.retry_max_attempts = 1
    return oss.Client(cfg)


def serve(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, list[str], str]:
    """Start ``python -m emulator serve`` by hand; returns (process, stdout lines up to ready, base URL)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if env is None or security.TOKEN_ENV not in env:
        full_env.pop(security.TOKEN_ENV, None)
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "serve", "--port", "0", "--data-dir",
                             str(tmp_path / "data"), *args], stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "stderr.log", "wb"), env=full_env, cwd=ROOT)
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line and proc.poll() is not None:
            raise RuntimeError((tmp_path / "stderr.log").read_text())
        lines.append(line.rstrip("\n"))
        if line.startswith("emulator ready on "):
            return proc, lines, line.split("emulator ready on ", 1)[1].strip()
    proc.kill()
    raise RuntimeError("emulator did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- 1. bind ------------------------------------------------------------------------------------------
def test_loopback_detection():
    assert security.is_loopback("127.0.0.1") and security.is_loopback("127.3.2.1")
    assert security.is_loopback("::1") and security.is_loopback("[::1]") and security.is_loopback("localhost")
    assert not security.is_loopback("0.0.0.0") and not security.is_loopback("::")
    assert not security.is_loopback("192.0.2.10") and not security.is_loopback("no-such-host.invalid")


def test_default_bind_is_loopback_and_quiet(tmp_path):
    proc, _, base = serve(tmp_path)
    try:
        assert urlsplit(base).hostname == "127.0.0.1"
    finally:
        stop(proc)
    assert "WARNING" not in (tmp_path / "stderr.log").read_text()


def test_non_loopback_bind_logs_a_warning(tmp_path):
    proc, _, base = serve(tmp_path, "--host", "0.0.0.0")
    try:
        with urllib.request.urlopen(base.replace("0.0.0.0", "127.0.0.1") + "/_emulator/health") as resp:
            assert resp.status == 200
    finally:
        stop(proc)
    log = (tmp_path / "stderr.log").read_text()
    warning = next(line for line in log.splitlines() if "WARNING" in line)
    assert "0.0.0.0" in warning and "not a loopback address" in warning


# -- 2. admin token -------------------------------------------------------------------------------------
def test_generated_token_is_printed_written_0600_and_required(tmp_path):
    proc, lines, base = serve(tmp_path)
    try:
        printed = [ln for ln in lines if ln.startswith("admin token: ")]
        assert len(printed) == 1
        token = printed[0].removeprefix("admin token: ").strip()
        assert len(token) >= 32
        path = tmp_path / "data" / "admin-token"
        assert path.read_text().strip() == token == read_admin_token(tmp_path / "data")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

        with pytest.raises(AdminError) as err:
            AdminClient(base).request("GET", "state")
        assert err.value.status == 401 and err.value.body["Code"] == "Unauthorized"
        with pytest.raises(AdminError) as err:
            AdminClient(base, token=token + "x").clock()
        assert err.value.status == 401
        assert AdminClient(base, token=token).clock()["time_scale"] == 1.0
        assert AdminClient(base).health()["status"] == "ok"  # readiness probes need no token
    finally:
        stop(proc)


def test_token_from_the_environment_is_used_and_not_printed(tmp_path, monkeypatch):
    proc, lines, base = serve(tmp_path, env={security.TOKEN_ENV: "env-token-123"})
    try:
        assert not [ln for ln in lines if "env-token-123" in ln or ln.startswith("admin token")]
        assert read_admin_token(tmp_path / "data") == "env-token-123"
        monkeypatch.setenv(security.TOKEN_ENV, "env-token-123")
        assert AdminClient(base).clock()["frozen"] is False  # the client reads the same variable
        monkeypatch.delenv(security.TOKEN_ENV)
        with pytest.raises(AdminError) as err:
            AdminClient(base).reset()
        assert err.value.status == 401
    finally:
        stop(proc)


def test_emulator_process_passes_its_token(emulator):
    assert emulator.admin.token == emulator.admin_token
    status, headers, body = admin_http(emulator, "GET", "calls")
    assert status == 401 and json.loads(body)["Code"] == "Unauthorized"
    assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    for bad in ("Bearer", "Bearer ", f"Basic {emulator.admin_token}", f"bearer {emulator.admin_token}",
                f"Bearer {emulator.admin_token[:-1]}", "Bearer \u00e9t\u00e9"):
        assert admin_http(emulator, "GET", "calls", Authorization=bad)[0] == 401, bad
    assert admin_http(emulator, "GET", "calls", **bearer(emulator))[0] == 200
    assert AdminClient(emulator.base_url, token=emulator.admin_token).calls()["counters"] == {}


@pytest.mark.parametrize("method, name", [("POST", "reset"), ("GET", "state"), ("POST", "clock"),
                                          ("PUT", "faults"), ("DELETE", "calls"), ("POST", "fleet"),
                                          ("POST", "keys"), ("GET", "keys"), ("POST", "timings"),
                                          ("POST", "health"), ("GET", "no-such-endpoint")])
def test_every_admin_endpoint_but_health_needs_the_token(emulator, method, name):
    emulator.admin.load_fleet({"buckets": [{"name": "keep-me"}]})
    status, _, body = admin_http(emulator, method, name, b"{}", **{"Content-Type": "application/json"})
    assert status == 401 and json.loads(body)["Code"] == "Unauthorized"
    assert "keep-me" in emulator.admin.table("oss.buckets")  # nothing was reset


def test_backup_download_url_needs_no_admin_token(emulator, rds_client):
    from alibabacloud_rds20140815 import models as rds_models

    emulator.admin.load_fleet({"rds_instances": [{"region": "cn-hangzhou", "id": "rm-sec1", "engine": "MySQL",
                                                  "backup_count": 1, "backup_size": 4096}]})
    backups = rds_client().describe_backups(rds_models.DescribeBackupsRequest(dbinstance_id="rm-sec1")).body
    url = backups.items.backup[0].backup_download_url
    with urllib.request.urlopen(url) as resp:  # the cloud's signed URL, not an admin call
        assert len(resp.read()) == 4096


def test_origin_header_is_refused_even_with_the_token(emulator):
    for name in ("state", "health"):
        status, _, body = admin_http(emulator, "GET", name, Origin="http://evil.example", **bearer(emulator))
        assert status == 403 and json.loads(body)["Code"] == "Forbidden"
    status, _, _ = admin_http(emulator, "POST", "reset", b"{}", Origin="null", **bearer(emulator),
                              **{"Content-Type": "application/json"})
    assert status == 403


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/yaml", "multipart/form-data; boundary=x"])
def test_admin_bodies_must_be_json(emulator, content_type):
    headers = {**bearer(emulator), **({"Content-Type": content_type} if content_type else {})}
    status, _, body = admin_http(emulator, "POST", "clock", b'{"advance": 3600}', **headers)
    assert status == 415 and json.loads(body)["Code"] == "UnsupportedMediaType"
    status, _, body = admin_http(emulator, "POST", "clock", b'{"advance": 1}', **bearer(emulator),
                                 **{"Content-Type": "application/json; charset=utf-8"})
    assert status == 200


def test_unauthenticated_admin_body_is_not_read(emulator):
    """A 64 MiB POST without the token is answered 401 from its headers alone."""
    proc = psutil.Process(emulator.proc.pid)
    before = proc.memory_info().rss
    status, _, _ = admin_http(emulator, "POST", "fleet", b"{" + b" " * (64 << 20) + b"}",
                              **{"Content-Type": "application/json"})
    assert status == 401
    assert proc.memory_info().rss - before < 16 << 20
    status, _, body = admin_http(emulator, "POST", "fleet", b" " * (security.MAX_ADMIN_BODY + 1),
                                 **bearer(emulator), **{"Content-Type": "application/json"})
    assert status == 413 and json.loads(body)["Code"] == "RequestEntityTooLarge"


# -- 3. redaction ------------------------------------------------------------------------------------------
def test_state_dump_never_shows_secrets(emulator):
    from alibabacloud_sts20150401 import models as sts_models
    from alibabacloud_sts20150401.client import Client as StsClient
    from alibabacloud_tea_openapi.models import Config

    sts = StsClient(Config(access_key_id=emulator.access_key_id, access_key_secret=emulator.access_key_secret,
                           endpoint=emulator.endpoint, protocol="http", region_id="cn-hangzhou"))
    creds = sts.assume_role(sts_models.AssumeRoleRequest(role_arn=ROLE_ARN, role_session_name="s1")).body.credentials
    emulator.admin.put_keys({"access_key_id": "EXTRA_AK", "access_key_secret": "extra-secret-value"})

    for query in ("", "?table=sts.keys"):
        status, _, raw = admin_http(emulator, "GET", f"state{query}", **bearer(emulator))
        assert status == 200
        text = raw.decode()
        for secret in (creds.access_key_secret, creds.security_token, emulator.access_key_secret,
                       "extra-secret-value", emulator.admin_token):
            assert secret not in text
        record = json.loads(raw)["tables"]["sts.keys"][creds.access_key_id]
        assert record["access_key_id"] == creds.access_key_id  # ids stay: they are not secrets
        assert record["secret"] == "***" and record["security_token"] == "***"
        assert record["principal"] == "ops-backup:s1"
    # redaction is of the answer, not of the state: the temporary key still works
    from alibabacloud_ecs20140526.client import Client as EcsClient

    ecs = EcsClient(Config(access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret,
                           security_token=creds.security_token, endpoint=emulator.endpoint, protocol="http",
                           region_id="cn-hangzhou"))
    assert ecs.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions.region


def test_redact_replaces_fields_named_like_secrets():
    data = {"a": {"Password": "p", "MasterUserPassword": "q", "AccessKeySecret": "s", "SecurityToken": "t",
                  "private_key": "k", "ClientToken": "idempotency", "NextToken": "2", "Name": "x", "Empty": ""},
            "list": [{"token": "t2"}, "plain", "known-secret"]}
    out = security.redact(data, ["known-secret"])
    assert out["a"] == {"Password": "***", "MasterUserPassword": "***", "AccessKeySecret": "***",
                        "SecurityToken": "***", "private_key": "***", "ClientToken": "idempotency", "NextToken": "2",
                        "Name": "x", "Empty": ""}
    assert out["list"] == [{"token": "***"}, "plain", "***"]


# -- 4. RPC signature freshness and replay --------------------------------------------------------------
def _iso(offset_seconds: float) -> str:
    return (datetime.datetime.now(UTC) + datetime.timedelta(seconds=offset_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("offset", [-16 * 60, 16 * 60, -86400 * 365])
def test_acs3_timestamp_off_the_real_clock_is_expired(emulator, ecs_client, monkeypatch, offset):
    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: _iso(offset)))
    code, status = api_error(ecs_client().describe_regions, ecs_models.DescribeRegionsRequest())
    assert (code, status) == ("InvalidTimeStamp.Expired", 400)
    with pytest.raises(TeaException) as err:
        ecs_client().describe_regions(ecs_models.DescribeRegionsRequest())
    assert "Specified time stamp or date value is expired." in err.value.message


@pytest.mark.parametrize("offset", [-14 * 60, 14 * 60])
def test_acs3_timestamp_within_15_minutes_is_accepted(emulator, ecs_client, monkeypatch, offset):
    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: _iso(offset)))
    assert ecs_client().describe_regions(ecs_models.DescribeRegionsRequest()).body.regions.region


def test_freshness_uses_the_real_clock_not_the_simulated_one(frozen, ecs_client):
    frozen.admin.advance(30 * 86400)  # the simulated cloud is a month ahead; the SDK signs with real time
    assert ecs_client().describe_regions(ecs_models.DescribeRegionsRequest()).body.regions.region


def test_acs3_reused_nonce_is_refused(emulator, ecs_client, monkeypatch):
    monkeypatch.setattr(Utils, "get_nonce", staticmethod(lambda: "fixed-nonce-" + emulator.admin_token[:8]))
    client = ecs_client()
    assert client.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions.region
    code, status = api_error(client.describe_regions, ecs_models.DescribeRegionsRequest())
    assert (code, status) == ("SignatureNonceUsed", 400)
    with pytest.raises(TeaException) as err:
        client.describe_zones(ecs_models.DescribeZonesRequest(region_id="cn-hangzhou"))
    assert "Specified signature nonce was used already." in err.value.message
    assert emulator.admin.calls()["counters"]["ecs:DescribeZones"]["codes"] == {"SignatureNonceUsed": 1}


def test_classic_rpc_sdk_timestamp_and_nonce(emulator, monkeypatch):
    """aliyun-python-sdk-core (classic HMAC-SHA1 RPC): the same checks on Timestamp and SignatureNonce."""
    from aliyunsdkcore.acs_exception.exceptions import ServerException
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkcore.request import CommonRequest
    from aliyunsdkcore.utils import parameter_helper

    client = AcsClient(emulator.access_key_id, emulator.access_key_secret, "cn-hangzhou", auto_retry=False)

    def call():
        req = CommonRequest(domain=emulator.endpoint, version="2014-05-26", action_name="DescribeRegions")
        req.set_protocol_type("http")
        req.set_method("POST")
        return json.loads(client.do_action_with_exception(req))

    assert call()["Regions"]["Region"]
    monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: _iso(-20 * 60))
    with pytest.raises(ServerException) as err:
        call()
    assert (err.value.get_error_code(), err.value.get_http_status()) == ("InvalidTimeStamp.Expired", 400)
    monkeypatch.undo()
    monkeypatch.setattr(parameter_helper, "get_uuid", lambda: "classic-fixed-nonce")
    assert call()["Regions"]["Region"]
    with pytest.raises(ServerException) as err:
        call()
    assert (err.value.get_error_code(), err.value.get_http_status()) == ("SignatureNonceUsed", 400)
    assert err.value.get_error_msg() == "Specified signature nonce was used already."


def test_replayed_request_is_refused(emulator):
    url = rpc_v1_url(emulator, {"Action": "DescribeRegions"})
    assert rpc_get(emulator, url)[0] == 200
    status, body = rpc_get(emulator, url)  # the very same bytes again
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")


@pytest.mark.parametrize("kw, code", [
    ({"timestamp": "2020-01-01T00:00:00Z"}, "InvalidTimeStamp.Expired"),
    ({"timestamp": "yesterday"}, "InvalidTimeStamp.Format"),
    ({"timestamp": "2026-13-45T99:00:00Z"}, "InvalidTimeStamp.Format"),
])
def test_classic_timestamp_errors(emulator, kw, code):
    status, body = rpc_get(emulator, rpc_v1_url(emulator, {"Action": "DescribeRegions"}, **kw))
    assert (status, body["Code"]) == (400, code)


def test_missing_timestamp_or_nonce(emulator):
    status, body = rpc_get(emulator, rpc_v1_url(emulator, {"Action": "DescribeRegions", "Timestamp": None}))
    assert (status, body["Code"]) == (400, "MissingTimestamp")
    status, body = rpc_get(emulator, rpc_v1_url(emulator, {"Action": "DescribeRegions", "SignatureNonce": None}))
    assert (status, body["Code"]) == (400, "MissingSignatureNonce")


def test_bad_signature_is_reported_before_freshness(emulator):
    """A forged request learns nothing about the nonce memory: the signature is checked first."""
    url = rpc_v1_url(emulator, {"Action": "DescribeRegions"}, timestamp="2020-01-01T00:00:00Z", secret="wrong")
    assert rpc_get(emulator, url)[1]["Code"] == "SignatureDoesNotMatch"


def test_sdk_retries_of_throttled_and_dropped_calls_use_fresh_nonces(frozen, ecs_client):
    """tea-openapi builds x-acs-date and x-acs-signature-nonce inside its retry loop."""
    from darabonba.policy.retry import RetryCondition, RetryOptions

    retry = RetryOptions({"retryable": True, "retryCondition": [RetryCondition({
        "maxAttempts": 4, "exception": ["Throttling.User", "ServiceUnavailable"],
        "errorCode": ["Throttling.User", "ServiceUnavailable"],
        "backoff": {"policy": "Fixed", "period": 1}})]})
    frozen.admin.set_faults({"rules": [{"action": "ecs:DescribeRegions", "kind": "throttle", "count": 2,
                                        "retry_after_ms": 1},
                                       {"action": "ecs:DescribeZones", "kind": "error", "status": 503, "count": 2}]})
    client = ecs_client(retry_options=retry)
    assert client.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions.region
    assert client.describe_zones(ecs_models.DescribeZonesRequest(region_id="cn-hangzhou")).body.zones.zone
    counters = frozen.admin.calls()["counters"]
    assert counters["ecs:DescribeRegions"] == {"calls": 3, "errors": 2, "codes": {"Throttling.User": 2}}
    assert counters["ecs:DescribeZones"]["calls"] == 3
    assert "SignatureNonceUsed" not in json.dumps(counters)


def test_nonce_memory_expires_and_is_bounded():
    now = [1000.0]
    cache = security.NonceCache(ttl=900, cap=3, clock=lambda: now[0])
    cache.use("AK", "n1")
    with pytest.raises(Exception, match="SignatureNonceUsed"):
        cache.use("AK", "n1")
    cache.use("OTHER_AK", "n1")  # nonces are per key
    now[0] += 901
    cache.use("AK", "n1")  # forgotten after 15 minutes
    assert len(cache) == 1
    for i in range(10):
        cache.use("AK", f"m{i}")
    assert len(cache) == 3  # the cap holds; the oldest go first


# -- 5. OSS: presigned expiry, V1, skew, anonymous callers, body limits --------------------------------------
BUCKET = "sec-bkt"


@pytest.fixture
def bucket(emulator, oss_client):
    c = oss_client()
    c.put_bucket(oss.PutBucketRequest(bucket=BUCKET))
    c.put_object(oss.PutObjectRequest(bucket=BUCKET, key="obj", body=b"payload"))
    return c


def _v1_client(emulator, secret: str | None = None) -> oss.Client:
    cfg = oss.config.load_default()
    cfg.region, cfg.endpoint, cfg.use_path_style = "cn-hangzhou", emulator.base_url, True
    cfg.signature_version = "v1"
    cfg.retry_max_attempts = 1
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        emulator.access_key_id, secret or emulator.access_key_secret)
    return oss.Client(cfg)


def _shift_signer_clock(monkeypatch, module, seconds: float) -> None:
    """Make an OSS signer believe the time is ``seconds`` away from now (as a client with a wrong clock)."""
    real = datetime.datetime

    class Shifted(real):
        @classmethod
        def now(cls, tz=None):
            return real.now(tz) + datetime.timedelta(seconds=seconds)

    monkeypatch.setattr(module, "datetime", type(datetime)("datetime_shim"))
    module.datetime.datetime, module.datetime.timezone, module.datetime.timedelta = \
        Shifted, datetime.timezone, datetime.timedelta


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _xml_code(body: bytes) -> str:
    return body.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode()


def test_presigned_v4_url_works_until_it_expires(emulator, bucket, monkeypatch):
    from alibabacloud_oss_v2.signer import v4

    url = bucket.presign(oss.GetObjectRequest(bucket=BUCKET, key="obj")).url
    assert _get(url) == (200, b"payload")
    status, body = _get(url.replace("obj?", "other?"))
    assert status == 403 and _xml_code(body) == "SignatureDoesNotMatch"
    _shift_signer_clock(monkeypatch, v4, -3600)  # signed an hour ago, valid for 15 minutes
    old = bucket.presign(oss.GetObjectRequest(bucket=BUCKET, key="obj")).url
    monkeypatch.undo()
    status, body = _get(old)
    assert status == 403 and _xml_code(body) == "AccessDenied" and b"Request has expired." in body
    # the simulated clock does not matter: only real time expires a URL
    emulator.admin.clock(freeze=True)
    emulator.admin.advance(7 * 86400)
    assert _get(url) == (200, b"payload")


def test_presigned_v1_url_works_until_it_expires(emulator, bucket):
    v1 = _v1_client(emulator)
    url = v1.presign(oss.GetObjectRequest(bucket=BUCKET, key="obj")).url
    assert "Expires=" in url and "OSSAccessKeyId=" in url
    assert _get(url) == (200, b"payload")
    status, body = _get(url.replace("Signature=", "Signature=A"))
    assert status == 403 and _xml_code(body) == "SignatureDoesNotMatch"
    past = datetime.datetime.now(UTC) - datetime.timedelta(minutes=1)
    expired = v1.presign(oss.GetObjectRequest(bucket=BUCKET, key="obj"), expiration=past).url
    status, body = _get(expired)
    assert status == 403 and _xml_code(body) == "AccessDenied" and b"Request has expired." in body


def test_v1_signed_sdk_calls(emulator, bucket):
    v1 = _v1_client(emulator)
    v1.put_object(oss.PutObjectRequest(bucket=BUCKET, key="dir/v1 key", body=b"one"))
    assert v1.get_object(oss.GetObjectRequest(bucket=BUCKET, key="dir/v1 key")).body.read() == b"one"
    keys = [o.key for o in v1.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix="dir/")).contents]
    assert keys == ["dir/v1 key"]
    with pytest.raises(oss.exceptions.OperationError) as exc:
        _v1_client(emulator, secret="wrong").get_object(oss.GetObjectRequest(bucket=BUCKET, key="obj"))
    assert service_error(exc).code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("signer", ["v4", "v1"])
def test_header_signed_request_with_a_skewed_clock(emulator, bucket, monkeypatch, signer):
    from alibabacloud_oss_v2.signer import v1, v4

    _shift_signer_clock(monkeypatch, v4 if signer == "v4" else v1, -20 * 60)
    client = _v1_client(emulator) if signer == "v1" else bucket
    with pytest.raises(oss.exceptions.OperationError) as exc:
        client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="obj"))
    assert (service_error(exc).code, service_error(exc).status_code) == ("RequestTimeTooSkewed", 403)


def test_anonymous_callers_cannot_create_buckets(emulator):
    anon = anonymous_oss(emulator)
    with pytest.raises(oss.exceptions.OperationError) as exc:
        anon.put_bucket(oss.PutBucketRequest(bucket="anon-made"))
    assert (service_error(exc).code, service_error(exc).status_code) == ("AccessDenied", 403)
    assert "anon-made" not in emulator.admin.table("oss.buckets")


@pytest.mark.parametrize("acl, allowed", [("private", False), ("public-read", False), ("public-read-write", True)])
def test_anonymous_writes_follow_the_bucket_acl(emulator, acl, allowed):
    emulator.admin.load_fleet({"buckets": [{"name": "acl-bkt", "acl": acl}]})
    anon = anonymous_oss(emulator)
    calls = [lambda: anon.put_object(oss.PutObjectRequest(bucket="acl-bkt", key="k", body=b"x")),
             lambda: anon.append_object(oss.AppendObjectRequest(bucket="acl-bkt", key="a", position=0, body=b"x")),
             lambda: anon.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
                 bucket="acl-bkt", objects=[oss.DeleteObject(key="k")])),
             lambda: anon.delete_object(oss.DeleteObjectRequest(bucket="acl-bkt", key="k"))]
    for call in calls:
        if allowed:
            assert call().status_code in (200, 204)
        else:
            with pytest.raises(oss.exceptions.OperationError) as exc:
                call()
            assert (service_error(exc).code, service_error(exc).status_code) == ("AccessDenied", 403)
    for op in (lambda: anon.put_bucket_acl(oss.PutBucketAclRequest(bucket="acl-bkt", acl="private")),
               lambda: anon.delete_bucket(oss.DeleteBucketRequest(bucket="acl-bkt"))):
        with pytest.raises(oss.exceptions.OperationError) as exc:  # never the bucket itself
            op()
        assert service_error(exc).code == "AccessDenied"
    assert emulator.admin.table("oss.buckets")["acl-bkt"]["acl"] == acl


def _send_head_only(emulator, request_head: str) -> tuple[int, bytes]:
    """Send a request line and headers that promise a body, send none, read the answer."""
    parts = urlsplit(emulator.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request_head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(next((ln.split(b":", 1)[1] for ln in head.split(b"\r\n")
                           if ln.lower().startswith(b"content-length:")), b"0"))
        while len(rest) < length:
            rest += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), rest


def _presigned_path(client, request) -> str:
    url = urlsplit(client.presign(request).url)
    return f"{url.path}?{url.query}"


def test_oversized_upload_is_refused_by_content_length(emulator, bucket):
    path = _presigned_path(bucket, oss.PutObjectRequest(bucket=BUCKET, key="huge"))
    host = urlsplit(emulator.base_url).netloc
    status, body = _send_head_only(emulator, f"PUT {path} HTTP/1.1\r\nHost: {host}\r\n"
                                             f"Content-Length: {5 * 1024 ** 3 + 1}\r\n\r\n")
    assert status == 400 and _xml_code(body) == "EntityTooLarge"
    init = bucket.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key="mp"))
    path = _presigned_path(bucket, oss.UploadPartRequest(bucket=BUCKET, key="mp", upload_id=init.upload_id,
                                                         part_number=1))
    status, body = _send_head_only(emulator, f"PUT {path} HTTP/1.1\r\nHost: {host}\r\n"
                                             f"Content-Length: {6 * 1024 ** 3}\r\n\r\n")
    assert status == 400 and _xml_code(body) == "EntityTooLarge"
    path = _presigned_path(bucket, oss.CompleteMultipartUploadRequest(bucket=BUCKET, key="mp",
                                                                      upload_id=init.upload_id))
    status, body = _send_head_only(emulator, f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                                             f"Content-Length: {security.MAX_XML_BODY + 1}\r\n\r\n")
    assert status == 400 and _xml_code(body) == "MalformedXML"
    assert "huge" not in str(emulator.admin.table("oss.objects"))


def _chunked(emulator, method: str, path: str, first: bytes, total: int, headers: dict | None = None):
    """Send ``first`` then spaces up to ``total`` bytes with no Content-Length (chunked transfer encoding)."""
    def chunks():
        yield first
        sent = len(first)
        while sent < total:
            n = min(65536, total - sent)
            yield b" " * n
            sent += n

    parts = urlsplit(emulator.base_url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, path, body=chunks(), headers=headers or {}, encode_chunked=True)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_oversized_bodies_without_length_are_cut_off(emulator, bucket):
    """A chunked body has no Content-Length: it is refused as soon as it passes the limit."""
    emulator.admin.load_fleet({"buckets": [{"name": "pub-rw", "acl": "public-read-write"}]})
    status, body = _chunked(emulator, "POST", "/pub-rw?delete", b"<Delete>", security.MAX_XML_BODY + 1)
    assert status == 400 and _xml_code(body) == "MalformedXML" and b"larger than" in body
    status, body = _chunked(emulator, "POST", "/", b"Action=DescribeRegions&Version=2014-05-26",
                            security.MAX_RPC_BODY + 1, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and json.loads(body)["Code"] == "RequestEntityTooLarge"
    # an upload is streamed to disk, not held to the XML limit
    path = _presigned_path(bucket, oss.PutObjectRequest(bucket=BUCKET, key="chunked"))
    assert _chunked(emulator, "PUT", path, b"", 3 * security.MAX_XML_BODY)[0] == 200
    url = bucket.presign(oss.GetObjectRequest(bucket=BUCKET, key="chunked")).url
    assert len(_get(url)[1]) == 3 * security.MAX_XML_BODY


def test_rpc_body_over_1_mib_is_refused(emulator):
    host = urlsplit(emulator.base_url).netloc
    status, body = _send_head_only(emulator, f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
                                             "application/x-www-form-urlencoded\r\nx-acs-action: DescribeRegions\r\n"
                                             f"Content-Length: {security.MAX_RPC_BODY + 1}\r\n\r\n")
    assert status == 400 and json.loads(body)["Code"] == "RequestEntityTooLarge"


def test_anonymous_bodies_are_not_buffered(emulator, bucket):
    """64 MiB anonymous bodies aimed at a private bucket and at the RPC endpoint leave the emulator's memory
    where it was: they are refused from their headers (the body is drained, never kept)."""
    proc = psutil.Process(emulator.proc.pid)
    size = 64 << 20
    payload = b"A" * size
    before = proc.memory_info().rss
    for method, path, headers in [
        ("PUT", f"/{BUCKET}/anon-big", {}),
        ("POST", f"/{BUCKET}/anon-big?append&position=0", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("POST", f"/{BUCKET}?delete", {"Content-Type": "application/xml"}),
        ("POST", "/", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("PUT", "/anon-new-bucket", {}),
    ]:
        status, _, body = raw(emulator, method, path, payload, headers)
        assert 400 <= status < 500, (method, path, status, body[:200])
    grown = proc.memory_info().rss - before
    assert grown < size // 4, f"RSS grew by {grown / 2**20:.1f} MiB"
    assert "anon-new-bucket" not in emulator.admin.table("oss.buckets")
    assert f"{BUCKET}/anon-big" not in emulator.admin.table("oss.objects")


# -- 6. malformed input gets a real 4xx, never a 500 (each of these was a 500 before) --------------------------
@pytest.fixture
def public_bucket(emulator):
    emulator.admin.load_fleet({"buckets": [{"name": "pub-rw", "acl": "public-read-write"}]})
    return "pub-rw"


@pytest.mark.parametrize("name, request_of, code", [
    ("form body not UTF-8", lambda e: ("POST", "/", b"Action=DescribeRegions&Version=2014-05-26&x=\xff",
                                       {"Content-Type": "application/x-www-form-urlencoded"}), "InvalidParameter"),
    ("ACS3 header without Credential", lambda e: ("GET", "/?Action=DescribeRegions&Version=2014-05-26", None,
                                                  {"Authorization": "ACS3-HMAC-SHA256 x"}), "IncompleteSignature"),
    ("JSON parameter nested 3000 deep", lambda e: ("GET", rpc_v1_url(e, {
        "Action": "DescribeInstances", "RegionId": "cn-hangzhou", "InstanceIds": "[" * 3000}), None, {}),
     "InvalidParameter"),
    ("STS session policy nested 1500 deep", lambda e: ("GET", rpc_v1_url(e, {
        "Version": "2015-04-01", "Action": "AssumeRole", "RoleArn": ROLE_ARN, "RoleSessionName": "s1",
        "Policy": "[" * 1500}), None, {}), "InvalidParameter"),
    ("RDS NextToken of a superscript digit", lambda e: ("GET", rpc_v1_url(e, {
        "Version": "2014-08-15", "Action": "DescribeDBInstances", "RegionId": "cn-hangzhou", "NextToken": "\u00b2"}),
        None, {}), "InvalidNextToken.Malformed"),
])
def test_malformed_rpc_gets_a_4xx(emulator, name, request_of, code):
    status, _, body = raw(emulator, *request_of(emulator))
    assert (status, json.loads(body)["Code"]) == (400, code), name


@pytest.mark.parametrize("method, path, body, headers, code", [
    ("POST", "/pub-rw/k?append&position=%C2%B2", b"x", {}, "InvalidArgument"),
    ("PUT", "/pub-rw/k?uploadId=x&partNumber=%C2%B2", b"x", {}, "NoSuchUpload"),
    ("POST", "/pub-rw?delete", b"<?xml version='1.0' encoding='no-such'?><Delete/>", {}, "MalformedXML"),
    ("POST", "/pub-rw?delete", b'<!DOCTYPE d [<!ENTITY a "aaaa">]><Delete><Object><Key>&a;</Key></Object></Delete>',
     {}, "MalformedXML"),
    ("PUT", "/pub-rw/meta", b"x", {"x-oss-meta-a": b"\xff\xfe"}, "InvalidArgument"),
])
def test_malformed_oss_gets_a_4xx(emulator, public_bucket, method, path, body, headers, code):
    status, _, answer = raw(emulator, method, path, body, headers)
    assert 400 <= status < 500 and f"<Code>{code}</Code>".encode() in answer, answer[:300]


def test_malformed_oss_xml_values_get_a_4xx(emulator, bucket):
    init = bucket.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key="mp"))
    bad = "<CompleteMultipartUpload><Part><PartNumber>\u00b2</PartNumber><ETag>x</ETag></Part>" \
          "</CompleteMultipartUpload>"
    with pytest.raises(oss.exceptions.OperationError) as exc:
        bucket.invoke_operation(oss.OperationInput(
            op_name="CompleteMultipartUpload", method="POST", bucket=BUCKET, key="mp",
            parameters={"uploadId": init.upload_id}, body=bad.encode(), headers={"Content-Type": "application/xml"}))
    assert service_error(exc).code == "MalformedXML"
    rule = "<LifecycleConfiguration><Rule><Status>Enabled</Status><Expiration><Days>\u00b2</Days></Expiration>" \
           "</Rule></LifecycleConfiguration>"
    with pytest.raises(oss.exceptions.OperationError) as exc:
        bucket.invoke_operation(oss.OperationInput(
            op_name="PutBucketLifecycle", method="PUT", bucket=BUCKET, parameters={"lifecycle": ""},
            body=rule.encode(), headers={"Content-Type": "application/xml"}))
    assert service_error(exc).code == "InvalidArgument"


def test_malformed_backup_download_url_gets_a_4xx(emulator, rds_client):
    from alibabacloud_rds20140815 import models as rds_models

    emulator.admin.load_fleet({"rds_instances": [{"region": "cn-hangzhou", "id": "rm-sec2", "engine": "MySQL",
                                                  "backup_count": 1, "backup_size": 10}]})
    url = rds_client().describe_backups(rds_models.DescribeBackupsRequest(
        dbinstance_id="rm-sec2")).body.items.backup[0].backup_download_url
    status, body = _get(url.split("?", 1)[0] + "?expires=%C2%B2")
    assert status == 403 and json.loads(body)["Code"] == "AccessDenied"


@pytest.mark.parametrize("name, body", [
    ("fleet", b"[" * 5000),
    ("fleet", b'{"instances": [{"region": "cn-hangzhou", "tags": "not-a-mapping"}]}'),
    ("fleet", b'{"instances": [{"region": "cn-hangzhou", "count": 1000000000000}]}'),
    ("fleet", b'{"instances": [{"region": "cn-hangzhou", "count": 1}, {"region": "cn-hangzhou", "count": "x"}]}'),
    ("clock", b'{"advance": 1e300}'),
    ("clock", b'{"time_scale": NaN}'),
    ("clock", b'{"time_scale": "Infinity"}'),
    ("clock", b'{"advance": 10, "time_scale": -1}'),
    ("clock", b'{"freeze": "yes"}'),
])
def test_malformed_admin_bodies_get_a_400_and_change_nothing(frozen, name, body):
    before = frozen.admin.clock()
    instances = frozen.admin.table("ecs.instances")
    status, _, answer = admin_http(frozen, "POST", name, body, **bearer(frozen),
                                   **{"Content-Type": "application/json"})
    assert status == 400 and json.loads(answer)["Code"] in ("InvalidBody", "InvalidRequest", "InvalidFleetSpec")
    assert frozen.admin.clock() == before  # not advanced, still frozen, same scale
    assert frozen.admin.table("ecs.instances") == instances  # a half-loaded fleet is rolled back
    assert frozen.admin.health()["status"] == "ok"
