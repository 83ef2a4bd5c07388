"""OSS conformance: the emulator driven only through alibabacloud_oss_v2 (CRC checks left on)."""

from __future__ import annotations

import datetime
import hashlib
import io
import os

import alibabacloud_oss_v2 as oss
import crcmod
import pytest

from emulator.control import EmulatorProcess

_crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)
BUCKET = "conf-bkt"


def service_error(exc_info) -> oss.exceptions.ServiceError:
    err = exc_info.value
    inner = err.unwrap() if hasattr(err, "unwrap") else err
    assert isinstance(inner, oss.exceptions.ServiceError), repr(err)
    return inner


@pytest.fixture
def client(oss_client):
    c = oss_client()
    c.put_bucket(oss.PutBucketRequest(bucket=BUCKET))
    return c


def _put(client, key: str, body: bytes = b"x", **kw):
    return client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=body, **kw))


# -- buckets ----------------------------------------------------------------------------------
def test_bucket_create_list_delete(oss_client):
    c = oss_client()
    assert c.put_bucket(oss.PutBucketRequest(bucket="b-one")).status_code == 200
    c.put_bucket(oss.PutBucketRequest(bucket="b-two", acl="public-read"))
    names = [b.name for b in c.list_buckets(oss.ListBucketsRequest()).buckets]
    assert names == ["b-one", "b-two"]
    with pytest.raises(oss.exceptions.OperationError) as exc:
        c.put_bucket(oss.PutBucketRequest(bucket="b-one"))
    assert service_error(exc).code == "BucketAlreadyExists"
    assert service_error(exc).status_code == 409

    info = c.get_bucket_info(oss.GetBucketInfoRequest(bucket="b-two")).bucket_info
    assert info.name == "b-two" and info.location == "oss-cn-hangzhou" and info.acl == "public-read"
    assert c.is_bucket_exist("b-one") and not c.is_bucket_exist("b-nope")

    c.put_object(oss.PutObjectRequest(bucket="b-one", key="k", body=b"1"))
    with pytest.raises(oss.exceptions.OperationError) as exc:
        c.delete_bucket(oss.DeleteBucketRequest(bucket="b-one"))
    assert service_error(exc).code == "BucketNotEmpty"
    c.delete_object(oss.DeleteObjectRequest(bucket="b-one", key="k"))
    assert c.delete_bucket(oss.DeleteBucketRequest(bucket="b-one")).status_code == 204
    assert [b.name for b in c.list_buckets(oss.ListBucketsRequest()).buckets] == ["b-two"]


def test_bucket_region_is_enforced(oss_client):
    hz, bj = oss_client("cn-hangzhou"), oss_client("cn-beijing")
    bj.put_bucket(oss.PutBucketRequest(bucket="bj-bkt"))
    assert bj.get_bucket_location(oss.GetBucketLocationRequest(bucket="bj-bkt")).location == "oss-cn-beijing"
    with pytest.raises(oss.exceptions.OperationError) as exc:
        hz.put_object(oss.PutObjectRequest(bucket="bj-bkt", key="k", body=b"1"))
    assert service_error(exc).code == "AccessDenied"
    # (bucket names are validated by the SDK before any request, so InvalidBucketName is not reachable here)


def test_fleet_buckets_and_public_read(emulator, oss_client):
    emulator.admin.load_fleet({"buckets": [{"name": "pub-bkt", "region": "cn-hangzhou", "acl": "public-read"},
                                           {"name": "priv-bkt", "region": "cn-hangzhou"}]})
    c = oss_client()
    c.put_object(oss.PutObjectRequest(bucket="pub-bkt", key="f", body=b"open"))
    c.put_object(oss.PutObjectRequest(bucket="priv-bkt", key="f", body=b"closed"))
    cfg = oss.config.load_default()
    cfg.region, cfg.endpoint, cfg.use_path_style = "cn-hangzhou", emulator.base_url, True
    cfg.credentials_provider = oss.credentials.AnonymousCredentialsProvider()
    anon = oss.Client(cfg)
    assert anon.get_object(oss.GetObjectRequest(bucket="pub-bkt", key="f")).body.read() == b"open"
    with pytest.raises(oss.exceptions.OperationError) as exc:
        anon.get_object(oss.GetObjectRequest(bucket="priv-bkt", key="f"))
    assert service_error(exc).code == "AccessDenied"
    with pytest.raises(oss.exceptions.OperationError) as exc:
        anon.put_object(oss.PutObjectRequest(bucket="pub-bkt", key="g", body=b"no"))
    assert service_error(exc).code == "AccessDenied"


# -- objects ----------------------------------------------------------------------------------
def test_put_get_head_delete_with_crc(client):
    body = b"hello world"
    put = _put(client, "dir/hello.txt", body, metadata={"owner": "ops"}, content_type="text/plain",
               storage_class="IA")
    assert put.etag == '"' + hashlib.md5(body).hexdigest().upper() + '"'
    assert put.hash_crc64 == str(_crc64(body))

    got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="dir/hello.txt"))
    assert got.body.read() == body
    assert got.metadata == {"owner": "ops"} and got.content_type == "text/plain"
    assert got.hash_crc64 == put.hash_crc64 and got.etag == put.etag

    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="dir/hello.txt"))
    assert head.content_length == len(body) and head.storage_class == "IA" and head.object_type == "Normal"
    assert head.hash_crc64 == put.hash_crc64 and head.last_modified is not None
    meta = client.get_object_meta(oss.GetObjectMetaRequest(bucket=BUCKET, key="dir/hello.txt"))
    assert meta.content_length == len(body) and meta.etag == put.etag

    assert client.is_object_exist(BUCKET, "dir/hello.txt")
    assert client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key="dir/hello.txt")).status_code == 204
    assert not client.is_object_exist(BUCKET, "dir/hello.txt")
    # deleting a missing key is not an error in OSS
    assert client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key="dir/hello.txt")).status_code == 204


def test_empty_object_and_overwrite(client):
    assert _put(client, "empty", b"").hash_crc64 == "0"
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="empty")).body.read() == b""
    _put(client, "k", b"first")
    _put(client, "k", b"second")
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="k")).body.read() == b"second"
    with pytest.raises(oss.exceptions.OperationError) as exc:
        _put(client, "k", b"third", forbid_overwrite=True)
    assert service_error(exc).code == "FileAlreadyExists"


def test_ranged_get(client):
    data = bytes(range(256)) * 4
    _put(client, "r", data)

    def get(rng):
        return client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="r", range_header=rng,
                                                      range_behavior="standard"))

    part = get("bytes=10-19")
    assert part.status_code == 206 and part.content_range == "bytes 10-19/1024" and part.body.read() == data[10:20]
    assert get("bytes=1000-").body.read() == data[1000:]
    assert get("bytes=-24").body.read() == data[-24:]
    assert get("bytes=1000-5000").content_range == "bytes 1000-1023/1024"
    with pytest.raises(oss.exceptions.OperationError) as exc:
        get("bytes=2000-3000")
    assert service_error(exc).code == "InvalidRange" and service_error(exc).status_code == 416
    # without the standard behaviour an unsatisfiable range returns the whole object
    whole = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="r", range_header="bytes=2000-3000"))
    assert whole.status_code == 200 and whole.body.read() == data


def test_copy_object_metadata_directive(client):
    _put(client, "src", b"payload", metadata={"a": "1"}, content_type="text/csv")
    res = client.copy_object(oss.CopyObjectRequest(bucket=BUCKET, key="dst-copy", source_key="src"))
    assert res.hash_crc64 == str(_crc64(b"payload"))
    got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="dst-copy"))
    assert got.body.read() == b"payload" and got.metadata == {"a": "1"} and got.content_type == "text/csv"
    client.copy_object(oss.CopyObjectRequest(bucket=BUCKET, key="dst-repl", source_key="src",
                                             metadata_directive="REPLACE", metadata={"b": "2"}))
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="dst-repl"))
    assert head.metadata == {"b": "2"}
    # the source survives the deletion of a copy (copies share data through hard links)
    client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key="dst-copy"))
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="src")).body.read() == b"payload"
    with pytest.raises(oss.exceptions.OperationError) as exc:
        client.copy_object(oss.CopyObjectRequest(bucket=BUCKET, key="x", source_key="missing"))
    assert service_error(exc).code == "NoSuchKey"


def test_append_object(client):
    r1 = client.append_object(oss.AppendObjectRequest(bucket=BUCKET, key="log", position=0, body=b"abc"))
    assert r1.next_position == 3 and r1.hash_crc64 == str(_crc64(b"abc"))
    r2 = client.append_object(oss.AppendObjectRequest(bucket=BUCKET, key="log", position=3, body=b"defg",
                                                      init_hash_crc64=r1.hash_crc64))
    assert r2.next_position == 7 and r2.hash_crc64 == str(_crc64(b"abcdefg"))
    with pytest.raises(oss.exceptions.OperationError) as exc:
        client.append_object(oss.AppendObjectRequest(bucket=BUCKET, key="log", position=1, body=b"z"))
    assert service_error(exc).code == "PositionNotEqualToLength" and service_error(exc).status_code == 409
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="log"))
    assert head.object_type == "Appendable" and head.next_append_position == 7
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="log")).body.read() == b"abcdefg"
    _put(client, "normal", b"n")
    with pytest.raises(oss.exceptions.OperationError) as exc:
        client.append_object(oss.AppendObjectRequest(bucket=BUCKET, key="normal", position=1, body=b"z"))
    assert service_error(exc).code == "ObjectNotAppendable"


def test_delete_multiple_objects(client):
    keys = ["a", "b c", "ü+1", "d/e"]
    for k in keys:
        _put(client, k)
    res = client.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
        bucket=BUCKET, objects=[oss.DeleteObject(key=k) for k in [*keys[:3], "never-existed"]]))
    assert sorted(d.key for d in res.deleted_objects) == sorted([*keys[:3], "never-existed"])
    quiet = client.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
        bucket=BUCKET, objects=[oss.DeleteObject(key="d/e")], quiet=True))
    assert not quiet.deleted_objects
    assert client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET)).key_count == 0


# -- listing ----------------------------------------------------------------------------------
def test_list_objects_v2_pagination_prefix_delimiter_and_encoding(client):
    keys = ["logs/2024/a b.txt", "logs/2024/ü+é.txt", "logs/2025/x", "logs/top+level", "logs/ space",
            "other/z", "root.txt"]
    for k in keys:
        _put(client, k)
    seen, pages = [], 0
    paginator = client.list_objects_v2_paginator(limit=2)
    for page in paginator.iter_page(oss.ListObjectsV2Request(bucket=BUCKET, prefix="logs/")):
        pages += 1
        assert page.key_count <= 2
        seen += [o.key for o in page.contents or []]
    assert seen == sorted(k for k in keys if k.startswith("logs/")) and pages == 3

    res = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix="logs/", delimiter="/",
                                                          fetch_owner=True))
    assert [p.prefix for p in res.common_prefixes] == ["logs/2024/", "logs/2025/"]
    assert [o.key for o in res.contents] == ["logs/ space", "logs/top+level"]
    assert res.contents[0].owner is not None and res.contents[0].size == 1
    assert res.contents[0].etag and res.contents[0].last_modified is not None

    # a delimiter page boundary inside CommonPrefixes, then start-after
    first = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, delimiter="/", max_keys=1))
    assert first.is_truncated and [p.prefix for p in first.common_prefixes] == ["logs/"]
    second = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, delimiter="/", max_keys=5,
                                                             continuation_token=first.next_continuation_token))
    assert [p.prefix for p in second.common_prefixes] == ["other/"] and [o.key for o in second.contents] == [
        "root.txt"]
    after = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, start_after="logs/top+level"))
    assert [o.key for o in after.contents] == ["other/z", "root.txt"]
    # ListObjects (v1) with marker
    v1 = client.list_objects(oss.ListObjectsRequest(bucket=BUCKET, prefix="logs/2024/", max_keys=1))
    assert v1.is_truncated and [o.key for o in v1.contents] == ["logs/2024/a b.txt"]


# -- multipart --------------------------------------------------------------------------------
def test_uploader_downloader_multipart(client, tmp_path):
    data = os.urandom(350 * 1024 + 17)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    uploader = client.uploader(part_size=100 * 1024)
    res = uploader.upload_file(oss.PutObjectRequest(bucket=BUCKET, key="up/file.bin"), str(src))
    assert res.hash_crc64 == str(_crc64(data)) and res.etag.endswith('-4"')
    res2 = uploader.upload_from(oss.PutObjectRequest(bucket=BUCKET, key="up/stream.bin"), io.BytesIO(data))
    assert res2.hash_crc64 == str(_crc64(data))

    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="up/file.bin"))
    assert head.object_type == "Multipart" and head.content_length == len(data)

    dst = tmp_path / "dst.bin"
    client.downloader(part_size=64 * 1024).download_file(
        oss.GetObjectRequest(bucket=BUCKET, key="up/file.bin"), str(dst))
    assert dst.read_bytes() == data
    client.get_object_to_file(oss.GetObjectRequest(bucket=BUCKET, key="up/stream.bin"), str(tmp_path / "g.bin"))
    assert (tmp_path / "g.bin").read_bytes() == data


def test_copier_multipart_copy(client):
    data = os.urandom(300 * 1024 + 5)
    _put(client, "copy/src", data, metadata={"m": "v"})
    copier = client.copier(part_size=100 * 1024, multipart_copy_threshold=100 * 1024, disable_shallow_copy=True)
    res = copier.copy(oss.CopyObjectRequest(bucket=BUCKET, key="copy/dst", source_bucket=BUCKET,
                                            source_key="copy/src"))
    assert res.hash_crc64 == str(_crc64(data))
    got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="copy/dst"))
    assert got.body.read() == data and got.metadata == {"m": "v"}


def test_multipart_abort_list_parts_and_uploads(client):
    init = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key="mp/obj"))
    other = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key="mp/other"))
    part_data = [os.urandom(100 * 1024), b"tail"]
    etags = []
    for n, body in enumerate(part_data, 1):
        r = client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key="mp/obj", upload_id=init.upload_id,
                                                     part_number=n, body=body))
        assert r.hash_crc64 == str(_crc64(body))
        etags.append(r.etag)
    parts = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key="mp/obj", upload_id=init.upload_id))
    assert [(p.part_number, p.size, p.etag) for p in parts.parts] == [(1, 100 * 1024, etags[0]), (2, 4, etags[1])]
    uploads = client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=BUCKET, prefix="mp/"))
    assert sorted(u.key for u in uploads.uploads) == ["mp/obj", "mp/other"]

    with pytest.raises(oss.exceptions.OperationError) as exc:  # parts out of order
        client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
            bucket=BUCKET, key="mp/obj", upload_id=init.upload_id,
            complete_multipart_upload=oss.CompleteMultipartUpload(parts=[
                oss.UploadPart(part_number=2, etag=etags[1]), oss.UploadPart(part_number=1, etag=etags[0])])))
    assert service_error(exc).code == "InvalidPartOrder"
    with pytest.raises(oss.exceptions.OperationError) as exc:  # wrong ETag
        client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
            bucket=BUCKET, key="mp/obj", upload_id=init.upload_id,
            complete_multipart_upload=oss.CompleteMultipartUpload(parts=[
                oss.UploadPart(part_number=1, etag='"00000000000000000000000000000000"')])))
    assert service_error(exc).code == "InvalidPart"

    done = client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=BUCKET, key="mp/obj", upload_id=init.upload_id,
        complete_multipart_upload=oss.CompleteMultipartUpload(parts=[
            oss.UploadPart(part_number=n, etag=e) for n, e in enumerate(etags, 1)])))
    md5s = b"".join(hashlib.md5(b).digest() for b in part_data)
    assert done.etag == '"' + hashlib.md5(md5s).hexdigest().upper() + '-2"'
    assert done.hash_crc64 == str(_crc64(b"".join(part_data)))

    assert client.abort_multipart_upload(oss.AbortMultipartUploadRequest(
        bucket=BUCKET, key="mp/other", upload_id=other.upload_id)).status_code == 204
    with pytest.raises(oss.exceptions.OperationError) as exc:
        client.abort_multipart_upload(oss.AbortMultipartUploadRequest(
            bucket=BUCKET, key="mp/other", upload_id=other.upload_id))
    assert service_error(exc).code == "NoSuchUpload" and service_error(exc).status_code == 404
    uploads = client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=BUCKET))
    assert not uploads.uploads


# -- bucket lifecycle -------------------------------------------------------------------------
def _lifecycle(client, *rules, bucket: str = BUCKET):
    return client.put_bucket_lifecycle(oss.PutBucketLifecycleRequest(
        bucket=bucket, lifecycle_configuration=oss.LifecycleConfiguration(rules=list(rules))))


def _rules(client):
    return client.get_bucket_lifecycle(oss.GetBucketLifecycleRequest(bucket=BUCKET)).lifecycle_configuration.rules


def _archive_rule(**kw):
    fields = {"id": "archive", "prefix": "rds/", "status": "Enabled",
              "transitions": [oss.LifecycleRuleTransition(days=30, storage_class="IA"),
                              oss.LifecycleRuleTransition(days=180, storage_class="ColdArchive")],
              "expiration": oss.LifecycleRuleExpiration(days=3650)}
    return oss.LifecycleRule(**{**fields, **kw})


def test_bucket_lifecycle_put_get_delete_round_trip(emulator, client):
    with pytest.raises(oss.exceptions.OperationError) as exc:
        _rules(client)
    err = service_error(exc)
    assert (err.code, err.status_code) == ("NoSuchLifecycle", 404)
    assert err.message == "The lifecycle configuration does not exist."

    assert _lifecycle(client, _archive_rule(), oss.LifecycleRule(
        status="Disabled", tags=[oss.Tag(key="tier", value="cold")],
        transitions=[oss.LifecycleRuleTransition(
            created_before_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), storage_class="DeepColdArchive")],
        abort_multipart_upload=oss.LifecycleRuleAbortMultipartUpload(days=7))).status_code == 200
    first, second = _rules(client)
    assert (first.id, first.prefix, first.status) == ("archive", "rds/", "Enabled")
    assert [(t.days, t.storage_class) for t in first.transitions] == [(30, "IA"), (180, "ColdArchive")]
    assert first.expiration.days == 3650 and first.abort_multipart_upload is None
    assert second.id and second.prefix is None and second.status == "Disabled"  # OSS names a rule without ID
    assert [(t.key, t.value) for t in second.tags] == [("tier", "cold")]
    (transition,) = second.transitions
    assert transition.created_before_date == datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    assert transition.storage_class == "DeepColdArchive" and transition.days is None
    assert second.abort_multipart_upload.days == 7
    # kept on the bucket record, so it persists like the rest of the bucket's state
    stored = emulator.admin.table("oss.buckets")[BUCKET]["lifecycle"]
    assert stored[0] == {"ID": "archive", "Prefix": "rds/", "Status": "Enabled",
                         "Transition": [{"Days": 30, "StorageClass": "IA"}, {"Days": 180, "StorageClass": "ColdArchive"}],
                         "Expiration": {"Days": 3650}}

    _lifecycle(client, _archive_rule(expiration=None, id="only"))  # a put replaces the whole configuration
    assert [(r.id, r.expiration) for r in _rules(client)] == [("only", None)]
    assert client.delete_bucket_lifecycle(oss.DeleteBucketLifecycleRequest(bucket=BUCKET)).status_code == 204
    with pytest.raises(oss.exceptions.OperationError) as exc:
        _rules(client)
    assert service_error(exc).code == "NoSuchLifecycle"
    assert client.delete_bucket_lifecycle(oss.DeleteBucketLifecycleRequest(bucket=BUCKET)).status_code == 204
    with pytest.raises(oss.exceptions.OperationError) as exc:
        _lifecycle(client, _archive_rule(), bucket="no-such-bucket")
    assert service_error(exc).code == "NoSuchBucket"
    counters = emulator.admin.calls()["counters"]
    assert {"oss:PutBucketLifecycle", "oss:GetBucketLifecycle", "oss:DeleteBucketLifecycle"} <= set(counters)


def test_bucket_lifecycle_survives_a_restart(tmp_path):
    def make(emu):
        cfg = oss.config.load_default()
        cfg.region, cfg.endpoint, cfg.use_path_style = "cn-hangzhou", emu.base_url, True
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(emu.access_key_id,
                                                                             emu.access_key_secret)
        return oss.Client(cfg)

    with EmulatorProcess(time_scale=1000, data_dir=tmp_path / "emu") as emu:
        c = make(emu)
        c.put_bucket(oss.PutBucketRequest(bucket=BUCKET))
        _lifecycle(c, _archive_rule())
    with EmulatorProcess(time_scale=1000, data_dir=tmp_path / "emu") as emu:
        (rule,) = _rules(make(emu))
        assert rule.id == "archive" and [t.storage_class for t in rule.transitions] == ["IA", "ColdArchive"]


INVALID_LIFECYCLES = [
    ("status", [_archive_rule(status="On")], "Status"),
    ("zero-days", [_archive_rule(expiration=oss.LifecycleRuleExpiration(days=0))], "Days"),
    ("negative-days", [_archive_rule(transitions=[oss.LifecycleRuleTransition(days=-5, storage_class="IA")])],
     "Days"),
    ("storage-class", [_archive_rule(transitions=[oss.LifecycleRuleTransition(days=5, storage_class="Standard")])],
     "StorageClass"),
    ("duplicate-ids", [_archive_rule(), _archive_rule(prefix="other/")], "archive"),
    ("too-many", [_archive_rule(id=f"r{n}", prefix=f"p{n}/") for n in range(1001)], "1000"),
    ("no-action", [oss.LifecycleRule(id="idle", status="Enabled")], "action"),
    ("days-and-date", [_archive_rule(expiration=oss.LifecycleRuleExpiration(
        days=1, created_before_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)))], "CreatedBeforeDate"),
    ("transition-without-class", [_archive_rule(transitions=[oss.LifecycleRuleTransition(days=5)])],
     "StorageClass"),
]


@pytest.mark.parametrize(("rules", "mentions"), [c[1:] for c in INVALID_LIFECYCLES],
                         ids=[c[0] for c in INVALID_LIFECYCLES])
def test_bucket_lifecycle_invalid_config_is_refused(client, rules, mentions):
    _lifecycle(client, _archive_rule(id="keep"))
    with pytest.raises(oss.exceptions.OperationError) as exc:
        _lifecycle(client, *rules)
    err = service_error(exc)
    assert (err.code, err.status_code) == ("InvalidArgument", 400)
    assert mentions in err.message
    assert [r.id for r in _rules(client)] == ["keep"]  # the previous configuration stays


@pytest.mark.parametrize("body", [b"<LifecycleConfiguration><Rule>", b"", b"<Lifecycle></Lifecycle>",
                                  b"<LifecycleConfiguration><Unknown/></LifecycleConfiguration>",
                                  b"<LifecycleConfiguration><Rule><Status>Enabled</Status><Bogus>1</Bogus>"
                                  b"</Rule></LifecycleConfiguration>",
                                  b"<LifecycleConfiguration></LifecycleConfiguration>"],
                         ids=["unclosed", "empty", "root", "not-rule", "unknown-node", "no-rule"])
def test_bucket_lifecycle_malformed_xml(client, body):
    with pytest.raises(oss.exceptions.OperationError) as exc:
        client.invoke_operation(oss.OperationInput(
            op_name="PutBucketLifecycle", method="PUT", bucket=BUCKET, parameters={"lifecycle": ""}, body=body,
            headers={"Content-Type": "application/xml"}))
    err = service_error(exc)
    assert (err.code, err.status_code) == ("MalformedXML", 400)


# -- errors -----------------------------------------------------------------------------------
def test_error_codes(client, oss_client):
    with pytest.raises(oss.exceptions.OperationError) as exc:
        client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="missing"))
    err = service_error(exc)
    assert err.code == "NoSuchKey" and err.status_code == 404 and err.request_id and err.ec
    with pytest.raises(oss.exceptions.OperationError) as exc:  # HEAD: error travels in x-oss-err
        client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="missing"))
    assert service_error(exc).code == "NoSuchKey"
    with pytest.raises(oss.exceptions.OperationError) as exc:
        client.get_object(oss.GetObjectRequest(bucket="no-such-bucket", key="k"))
    assert service_error(exc).code == "NoSuchBucket"
    with pytest.raises(oss.exceptions.OperationError) as exc:
        client.list_objects_v2(oss.ListObjectsV2Request(bucket="no-such-bucket"))
    assert service_error(exc).code == "NoSuchBucket"

    bad_secret = oss_client(access_key_secret="wrong-secret")
    with pytest.raises(oss.exceptions.OperationError) as exc:
        bad_secret.put_object(oss.PutObjectRequest(bucket=BUCKET, key="k", body=b"1"))
    assert service_error(exc).code == "SignatureDoesNotMatch" and service_error(exc).status_code == 403
    unknown = oss_client(access_key_id="LTAI_UNKNOWN", access_key_secret="x")
    with pytest.raises(oss.exceptions.OperationError) as exc:
        unknown.list_buckets(oss.ListBucketsRequest())
    assert service_error(exc).code == "InvalidAccessKeyId" and service_error(exc).status_code == 403


def test_faults_and_call_log(emulator, client):
    emulator.admin.clear_calls()
    emulator.admin.set_faults({"rules": [{"action": "oss:GetObject", "kind": "error", "status": 503, "count": 5}]})
    _put(client, "f", b"1")
    with pytest.raises(oss.exceptions.OperationError) as exc:
        client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="f"))
    assert service_error(exc).status_code == 503
    emulator.admin.set_faults({})
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="f")).body.read() == b"1"
    counters = emulator.admin.calls()["counters"]
    assert counters["oss:PutObject"]["calls"] == 1
    assert counters["oss:GetObject"]["errors"] >= 1


def test_reset_forgets_objects(emulator, client):
    _put(client, "keep", b"data")
    emulator.admin.reset()
    fresh = client
    with pytest.raises(oss.exceptions.OperationError) as exc:
        fresh.get_object(oss.GetObjectRequest(bucket=BUCKET, key="keep"))
    assert service_error(exc).code == "NoSuchBucket"


def test_sts_token_and_session_policy(emulator, client):
    import json

    from alibabacloud_sts20150401 import models as sts_models
    from alibabacloud_sts20150401.client import Client as StsClient
    from alibabacloud_tea_openapi.models import Config

    _put(client, "sts/obj", b"secret")
    sts = StsClient(Config(access_key_id=emulator.access_key_id, access_key_secret=emulator.access_key_secret,
                           region_id="cn-hangzhou", endpoint=emulator.endpoint, protocol="http"))
    policy = {"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["oss:GetObject"], "Resource": "*"}]}
    creds = sts.assume_role(sts_models.AssumeRoleRequest(
        role_arn="acs:ram::1234567890123456:role/oss-reader", role_session_name="conf",
        policy=json.dumps(policy))).body.credentials

    def make(token):
        cfg = oss.config.load_default()
        cfg.region, cfg.endpoint, cfg.use_path_style = "cn-hangzhou", emulator.base_url, True
        cfg.credentials_provider = oss.credentials.CredentialsProviderFunc(
            lambda: oss.credentials.Credentials(creds.access_key_id, creds.access_key_secret, token))
        return oss.Client(cfg)

    reader = make(creds.security_token)
    assert reader.get_object(oss.GetObjectRequest(bucket=BUCKET, key="sts/obj")).body.read() == b"secret"
    with pytest.raises(oss.exceptions.OperationError) as exc:
        reader.put_object(oss.PutObjectRequest(bucket=BUCKET, key="sts/new", body=b"1"))
    assert service_error(exc).code == "AccessDenied" and service_error(exc).status_code == 403
    with pytest.raises(oss.exceptions.OperationError) as exc:
        make("wrong-token").get_object(oss.GetObjectRequest(bucket=BUCKET, key="sts/obj"))
    assert service_error(exc).code == "InvalidSecurityToken"
