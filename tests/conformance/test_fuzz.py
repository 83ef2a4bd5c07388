"""Property-based fuzzing of every front door of the emulator: RPC (ECS, VPC, RDS, STS; unsigned and
correctly signed with garbage parameters), OSS (signed and anonymous: paths, sub-resources, headers, XML
and other bodies) and the admin API (with and without the token).

The properties, for every request:

* no 5xx answer (the one 5xx the emulator gives on purpose, OSS ``501 NotImplemented`` for a sub-resource
  it does not implement, is allowed);
* a rejected request (4xx) changes nothing: the digest of ``GET /_emulator/state`` is the same after it
  (the simulated clock is frozen, so nothing changes on its own);
* the server is still healthy afterwards.

Bounded for CI: about 250 examples in all (the ``ci`` profile: no deadline), well under a minute.
``EMULATOR_FUZZ_SCALE=20 pytest tests/conformance/test_fuzz.py`` runs twenty times as many, for a deeper search.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC
from http.client import HTTPConnection
from urllib.parse import quote, urlsplit

import alibabacloud_oss_v2 as oss
import pytest
from alibabacloud_oss_v2.signer.v4 import SignerV4
from alibabacloud_oss_v2.types import HttpRequest, SigningContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import products
from emulator.rpc import ACTIONS, VERSIONS

products.load()
VERSION_OF = {product: version for version, product in VERSIONS.items()}
RPC_ACTIONS = sorted(ACTIONS)  # (product, action)


SCALE = max(1, int(os.environ.get("EMULATOR_FUZZ_SCALE", "1")))


def fuzz_settings(examples: int):
    return settings(settings.get_profile("ci"), max_examples=examples * SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# -- the target: one emulator with a small fleet, clock frozen --------------------------------------------------
@dataclass
class Target:
    emu: object
    ids: list[str] = field(default_factory=list)
    upload_id: str = ""

    @property
    def host(self) -> str:
        return urlsplit(self.emu.base_url).netloc

    def send(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        parts = urlsplit(self.emu.base_url)
        conn = HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            headers = dict(headers or {})
            if body is not None:
                headers.setdefault("Content-Length", str(len(body)))
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders(body)
            resp = conn.getresponse()
            answer = resp.read()
            if method == "HEAD" and resp.getheader("x-oss-err"):  # OSS puts a HEAD's error body in a header
                answer = base64.b64decode(resp.getheader("x-oss-err"))
            return resp.status, answer
        finally:
            conn.close()

    def admin_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.emu.admin_token}"}

    def tables(self) -> dict:
        status, body = self.send("GET", "/_emulator/state", headers=self.admin_headers())
        assert status == 200, body[:500]
        # a lookup creates an empty table (State.table): empty and absent mean the same
        return {name: rows for name, rows in json.loads(body)["tables"].items() if rows}

    @staticmethod
    def digest(tables: dict) -> str:
        return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()

    def check(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> int:
        before = self.tables()
        status, answer = self.send(method, path, body, headers)
        what = f"{method} {path[:300]} headers={str(headers)[:300]} body={(body or b'')[:300]!r}"
        if status >= 500:
            assert status == 501 and b"NotImplemented" in answer, f"{status} for {what}: {answer[:500]!r}"
        if status >= 400:
            after = self.tables()
            if self.digest(after) != self.digest(before):
                changed = {f"{t}/{k}": (before.get(t, {}).get(k), after.get(t, {}).get(k))
                           for t in set(before) | set(after) for k in set(before.get(t, {})) | set(after.get(t, {}))
                           if before.get(t, {}).get(k) != after.get(t, {}).get(k)}
                pytest.fail(f"rejected ({status}) but the state changed: {what}: {answer[:300]!r}\n"
                            f"changed: {str(changed)[:2000]}")
        health_status, health = self.send("GET", "/_emulator/health")
        assert health_status == 200 and json.loads(health)["status"] == "ok"
        return status


@pytest.fixture(scope="module")
def target(emulator_session):
    emu = emulator_session
    emu.admin.reset()
    emu.admin.clock(freeze=True)
    emu.admin.load_fleet({
        "instances": [{"region": "cn-hangzhou", "count": 2, "status": "Running", "tags": {"backup": "daily"}},
                      {"region": "cn-hangzhou", "count": 1, "status": "Stopped"}],
        "images": [{"region": "cn-hangzhou", "name": "old-backup", "tags": {"ops:managed-by": "fuzz"}}],
        "rds_instances": [{"region": "cn-hangzhou", "id": "rm-fuzz", "engine": "MySQL", "backup_count": 1,
                           "backup_size": 1024}],
        "buckets": [{"name": "fz-bkt"}, {"name": "fz-pub", "acl": "public-read-write"}]})
    cfg = oss.config.load_default()
    cfg.region, cfg.endpoint, cfg.use_path_style = "cn-hangzhou", emu.base_url, True
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(emu.access_key_id, emu.access_key_secret)
    client = oss.Client(cfg)
    client.put_object(oss.PutObjectRequest(bucket="fz-bkt", key="obj", body=b"0123456789"))
    client.append_object(oss.AppendObjectRequest(bucket="fz-bkt", key="app", position=0, body=b"abc"))
    upload_id = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket="fz-bkt",
                                                                                    key="mp")).upload_id
    ids: list[str] = []
    for table in ("ecs.instances", "ecs.images", "ecs.snapshots", "ecs.disks", "rds.instances", "rds.backups"):
        ids += list(emu.admin.table(table))[:4]
    yield Target(emu, ids, upload_id)
    emu.admin.reset()
    emu.admin.clock(freeze=False)


# -- value strategies ----------------------------------------------------------------------------------------
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
ASCII = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
ODD = st.sampled_from([
    "", " ", "true", "false", "0", "-1", "00", "1e9", "NaN", "Infinity", "²", "١٢", "9" * 30, "[", "[]", "{}",
    "null", '["x"]', "[1,2]", '{"a":1}', "[" * 3000, "{" * 2000, '["' + "x" * 2000 + '"]', "2024-01-01T00:00:00Z",
    "2024-13-45T99:99Z", "cn-hangzhou", "mars-1", "%", "%ZZ", "\x00", "a\r\nb", "\u202e", "x" * 5000, "*", "?",
    "../../etc/passwd", "'; DROP TABLE x; --", "<x/>", "bytes=0-", "bytes=-0", "bytes=5-1", "bytes=99999999999999-",
])
NUMBERS = st.integers(-(2**70), 2**70).map(str)


def values(ids: list[str]):
    return st.one_of(TEXT, NUMBERS, ODD, st.sampled_from(ids),
                     st.lists(st.sampled_from(ids), max_size=3).map(json.dumps),
                     st.lists(st.sampled_from(ids), max_size=3).map(",".join))


RPC_PARAMS = [
    "RegionId", "InstanceId", "InstanceIds", "ImageId", "ImageName", "Description", "SnapshotId", "SnapshotIds",
    "DiskId", "DiskIds", "DestinationRegionId", "DestinationImageName", "Force", "DryRun", "PageSize",
    "PageNumber", "MaxResults", "NextToken", "Status", "Amount", "InstanceType", "ZoneId", "VSwitchId",
    "SecurityGroupId", "ClientToken", "Tag.1.Key", "Tag.1.Value", "Tag.2.Key", "Tag", "InstanceId.1", "InstanceId.2",
    "ResourceType", "ResourceId.1", "TagKey.1", "All", "AttributeName.1", "Type", "CommandContent", "CommandId",
    "InvokeId", "Parameters", "Timeout", "ContentEncoding", "AddAccount.1", "RemoveAccount.1", "ImageOwnerAlias",
    "DBInstanceId", "BackupId", "BackupJobId", "BackupMethod", "BackupMode", "StartTime", "EndTime", "Engine",
    "RoleArn", "RoleSessionName", "DurationSeconds", "Policy", "VpcId", "EventType.1", "InstanceEventType.1",
    "StoppedMode", "Platform", "OSType", "Architecture", "Usage", "Filter.1.Key", "Filter.1.Value",
]
PARAM_NAMES = st.one_of(st.sampled_from(RPC_PARAMS), st.from_regex(r"[A-Za-z][A-Za-z0-9.]{0,20}", fullmatch=True))


def rpc_signed_query(emu, product: str, action: str, params: dict, method: str) -> str:
    """Classic HMAC-SHA1 RPC parameters with a valid signature, as aliyun-python-sdk-core signs them."""
    query = {"Format": "JSON", "Version": VERSION_OF[product], "AccessKeyId": emu.access_key_id,
             "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "Action": action,
             "Timestamp": datetime.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "SignatureNonce": uuid.uuid4().hex, **params}
    canonical = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query.items()))
    to_sign = f"{method}&%2F&{quote(canonical, safe='~')}"
    digest = hmac.new(f"{emu.access_key_secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    query["Signature"] = base64.b64encode(digest).decode()
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in query.items())


# -- RPC -----------------------------------------------------------------------------------------------------
@fuzz_settings(80)
@given(data=st.data())
def test_fuzz_rpc_signed_garbage(target, data):
    """Correctly signed calls of every action the emulator serves, with garbage parameters."""
    product, action = data.draw(st.sampled_from(RPC_ACTIONS), label="action")
    params = data.draw(st.dictionaries(PARAM_NAMES, values(target.ids), max_size=6), label="params")
    reserved = {"Format", "Version", "AccessKeyId", "SignatureMethod", "SignatureVersion", "Action", "Timestamp",
                "SignatureNonce", "Signature"}
    params = {k: v for k, v in params.items() if k not in reserved}
    params.setdefault("RegionId", data.draw(st.sampled_from(["cn-hangzhou", "cn-beijing", "nowhere-1"])))
    method = data.draw(st.sampled_from(["GET", "POST"]), label="method")
    query = rpc_signed_query(target.emu, product, action, params, method)
    if method == "GET":
        target.check("GET", f"/?{query}")
    else:
        target.check("POST", "/", query.encode(), {"Content-Type": "application/x-www-form-urlencoded"})


@fuzz_settings(40)
@given(data=st.data())
def test_fuzz_rpc_unsigned_and_malformed(target, data):
    """Requests that look like RPC but are not: bad signatures, broken Authorization headers, odd bodies."""
    params = data.draw(st.dictionaries(st.sampled_from(["Action", "Version", "AccessKeyId", "Signature",
                                                        "SignatureNonce", "Timestamp", "SecurityToken",
                                                        "RegionId", "SignatureMethod"]) | PARAM_NAMES,
                                       values(target.ids) | st.sampled_from(["DescribeRegions", "2014-05-26",
                                                                             "2015-04-01", "AssumeRole"]),
                                       max_size=8))
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
    headers = data.draw(st.dictionaries(
        st.sampled_from(["Authorization", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce",
                         "x-acs-content-sha256", "x-acs-security-token", "Content-Type"]),
        st.one_of(ASCII, st.sampled_from([
            "ACS3-HMAC-SHA256", "ACS3-HMAC-SHA256 ", "ACS3-HMAC-SHA256 Credential=",
            "ACS3-HMAC-SHA256 Credential=LOCAL_EMULATOR_AK,SignedHeaders=host,Signature=00",
            "ACS3-HMAC-SHA1 Credential=x", "ACS3-", "DescribeRegions", "2014-05-26",
            "application/x-www-form-urlencoded", "application/json", "text/plain; charset=zz"]),
            st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))),
        max_size=5))
    body = data.draw(st.one_of(st.none(), st.binary(max_size=200), st.just(query.encode()),
                               st.just(b"Action=DescribeRegions&Version=2014-05-26&\xff\xfe=\xc3(")))
    method = data.draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    target.check(method, f"/?{query}" if query else "/", body, headers)


# -- OSS -----------------------------------------------------------------------------------------------------
SUBRESOURCES = ["acl", "uploads", "uploadId", "partNumber", "append", "position", "delete", "lifecycle", "location",
                "bucketInfo", "stat", "list-type", "max-keys", "continuation-token", "encoding-type", "prefix",
                "marker", "delimiter", "start-after", "fetch-owner", "objectMeta", "tagging", "max-parts",
                "part-number-marker", "max-uploads", "key-marker", "upload-id-marker", "response-content-type",
                "x-oss-process", "versions", "cors"]
OSS_HEADERS = ["x-oss-acl", "x-oss-storage-class", "Range", "x-oss-range-behavior", "x-oss-copy-source",
               "x-oss-copy-source-range", "x-oss-copy-source-if-match", "x-oss-copy-source-if-none-match",
               "x-oss-meta-a", "x-oss-metadata-directive", "Content-MD5", "x-oss-forbid-overwrite",
               "x-oss-complete-all", "Content-Type", "Cache-Control", "x-oss-security-token"]
XML_TAGS = ["Delete", "Object", "Key", "Quiet", "CompleteMultipartUpload", "Part", "PartNumber", "ETag",
            "LifecycleConfiguration", "Rule", "ID", "Prefix", "Status", "Expiration", "Days", "CreatedBeforeDate",
            "Transition", "StorageClass", "Filter", "Not", "Tag", "Value", "AbortMultipartUpload", "ObjectSizeGreaterThan",
            "NoncurrentVersionExpiration", "NoncurrentDays", "ExpiredObjectDeleteMarker", "CreateBucketConfiguration",
            "x"]


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


XML_TEXT = st.one_of(st.sampled_from(["", "1", "0", "-3", "²", "true", "Enabled", "Disabled", "IA", "Archive",
                                      "obj", "app", "2024-01-01T00:00:00.000Z", '"ETAG"', "9" * 25]),
                     st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=15)).map(_xml_text)
XML_NODES = st.recursive(
    st.tuples(st.sampled_from(XML_TAGS), XML_TEXT).map(lambda t: f"<{t[0]}>{t[1]}</{t[0]}>"),
    lambda children: st.tuples(st.sampled_from(XML_TAGS), st.lists(children, max_size=4)).map(
        lambda t: f"<{t[0]}>{''.join(t[1])}</{t[0]}>"),
    max_leaves=12)
BODIES = st.one_of(
    st.none(), st.binary(max_size=300), XML_NODES.map(str.encode),
    XML_NODES.map(lambda x: ('<?xml version="1.0" encoding="UTF-8"?>\n' + x).encode()),
    st.sampled_from([b"<?xml version='1.0' encoding='no-such-encoding'?><Delete/>",
                     b'<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><Delete>&b;</Delete>',
                     b"<Delete>" + b"<Object>" * 500 + b"</Object>" * 500 + b"</Delete>",
                     b"<Delete><Object><Key>obj</Key></Object>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
                     b"\xef\xbb\xbf<Delete/>", b"<Delete\x00/>"]))


def _oss_request(target, data):
    method = data.draw(st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"]), label="method")
    bucket = data.draw(st.sampled_from(["fz-bkt", "fz-bkt", "fz-pub", "nosuch-bkt", "Bad_Name", "ab", ""]),
                       label="bucket")
    key = data.draw(st.one_of(st.none(), st.sampled_from(["obj", "app", "mp", "dir/x", "a" * 1100]),
                              TEXT.filter(lambda k: k not in ("", "/"))), label="key")
    query = data.draw(st.dictionaries(st.sampled_from(SUBRESOURCES),
                                      st.one_of(st.just(""), values(target.ids), st.just(target.upload_id)),
                                      max_size=4), label="query")
    headers = data.draw(st.dictionaries(st.sampled_from(OSS_HEADERS),
                                        st.one_of(ASCII, st.sampled_from(["/fz-bkt/obj", "/fz-bkt/app", "private",
                                                                          "public-read-write", "IA", "REPLACE",
                                                                          "yes", "true", "bytes=0-3"])),
                                        max_size=4), label="headers")
    body = data.draw(BODIES, label="body")
    path = "/" + (bucket or "") + (f"/{key}" if key is not None else "")
    raw_query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" if v else quote(k, safe="")
                         for k, v in query.items())
    return method, bucket or None, key, quote(path, safe="/"), raw_query, headers, body


@fuzz_settings(90)
@given(data=st.data())
def test_fuzz_oss(target, data):
    method, bucket, key, path, raw_query, headers, body = _oss_request(target, data)
    url = f"{target.emu.base_url}{path}" + (f"?{raw_query}" if raw_query else "")
    mode = data.draw(st.sampled_from(["signed", "signed", "anonymous", "raw-bytes-header"]), label="auth")
    headers = {k: v.strip() for k, v in headers.items()}
    if mode == "signed":
        request = HttpRequest(method, url, headers=dict(headers))
        SignerV4().sign(SigningContext(
            product="oss", region="cn-hangzhou", bucket=bucket, key=key, request=request,
            credentials=oss.credentials.Credentials(target.emu.access_key_id, target.emu.access_key_secret)))
        headers = dict(request.headers)
    elif mode == "raw-bytes-header":
        headers = {**headers, "x-oss-meta-raw": b"\xff\xfe caf\xc3\xa9 \x80"}
    target.check(method, path + (f"?{raw_query}" if raw_query else ""), body, headers)


# -- admin ---------------------------------------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False)
                    | TEXT, lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(TEXT, children, max_size=4), max_leaves=10)
FLEET = st.fixed_dictionaries({}, optional={
    "instances": st.one_of(JSON, st.lists(st.fixed_dictionaries({}, optional={
        "region": st.sampled_from(["cn-hangzhou", "mars-1", ""]) | JSON, "count": JSON | st.integers(-2, 3),
        "status": st.sampled_from(["Running", "Stopped", "Exploded"]) | JSON, "tags": JSON,
        "system_disk_size": JSON, "data_disks": JSON, "name": JSON, "zone": JSON}), max_size=2)),
    "images": JSON, "rds_instances": JSON, "buckets": JSON | st.lists(st.fixed_dictionaries(
        {"name": st.sampled_from(["ok-bucket", "Bad_Name", ""]) | JSON}, optional={"acl": JSON}), max_size=2),
    "nonsense": JSON})


@fuzz_settings(50)
@given(data=st.data())
def test_fuzz_admin(target, data):
    """The admin API with and without the token: bodies of every shape, odd content types, browser origins."""
    name = data.draw(st.sampled_from(["health", "state", "clock", "faults", "calls", "fleet", "reset", "keys",
                                      "timings", "command-behaviour", "ecs/system-event", "download/rds/x",
                                      "no-such", ""]), label="name")
    method = data.draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]), label="method")
    token = data.draw(st.sampled_from(["right", "right", "none", "wrong"]), label="token")
    headers: dict = {}
    if token == "right":
        headers.update(target.admin_headers())
    elif token == "wrong":
        headers["Authorization"] = data.draw(st.sampled_from(["Bearer x", "Bearer", "Basic abc", "Bearer \u00e9"]))
    if data.draw(st.booleans(), label="origin?") and data.draw(st.booleans()):
        headers["Origin"] = "http://evil.example"
    content_type = data.draw(st.sampled_from(["application/json", "application/json", "text/plain",
                                              "application/yaml", None]), label="content-type")
    if content_type:
        headers["Content-Type"] = content_type
    if name == "fleet":
        payload = data.draw(FLEET, label="fleet")
    elif name in ("clock", "faults", "reset"):
        # these must never be accepted here (the clock stays frozen, no faults fire): always an unknown field
        payload = {"zz-unknown": data.draw(JSON), **data.draw(st.dictionaries(st.sampled_from(
            ["advance", "time_scale", "freeze", "rules", "qps", "seed"]), JSON | st.floats(), max_size=2))}
        if name == "reset":
            headers.pop("Authorization", None)
    else:
        payload = data.draw(JSON, label="payload")
    raw = data.draw(st.sampled_from(["json", "json", "garbage", "none"]), label="body kind")
    body = {"json": lambda: json.dumps(payload).encode(), "none": lambda: None,
            "garbage": lambda: data.draw(st.sampled_from([b"{", b"[" * 5000, b"NaN", b'{"a": Infinity}',
                                                          b"\xff\xfe", b"- a\n- b"]))}[raw]()
    query = data.draw(st.sampled_from(["", "?table=ecs.images", "?table=nope", "?limit=-1", "?limit=x",
                                       "?limit=99999999999999999999", "?action=ecs:*"]), label="query")
    status = target.check(method, f"/_emulator/{name}{query}", body, headers)
    if token != "right" and not (name == "health" and method in ("GET", "HEAD")) \
            and not name.startswith("download/"):
        assert status in (401, 403), f"{method} {name} answered {status} without the token"
