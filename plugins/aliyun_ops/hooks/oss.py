"""OSS hook: an ``alibabacloud_oss_v2`` client wired to the ``aliyun`` connection, plus a few helpers.

The OSS SDK retries on its own (``retry_max_attempts`` = the connection's ``max_attempts``); the
helpers add one log line with the RequestId and turn errors into ``AliyunApiError``. Uploads go
through the SDK's uploader, so a multi-GB stream or file is sent in parts with constant memory.

Example::

    hook = OssHook()
    with open("/tmp/dump.sql.gz", "rb") as f:
        hook.put_object_from_stream("backups", "rds/2024-01-01/dump.sql.gz", f)
    keys = [o["Key"] for o in hook.list_objects("backups", prefix="rds/")]
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import IO, TYPE_CHECKING, Any

from aliyun_ops.exceptions import AliyunApiError
from aliyun_ops.hooks.base import AliyunBaseHook

if TYPE_CHECKING:
    import alibabacloud_oss_v2 as oss

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MIB
STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")


def read_full(source: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes from ``source``: fewer only at the end of the stream (a socket answers in pieces)."""
    chunks, missing = [], size
    while missing > 0:
        chunk = source.read(missing)
        if not chunk:
            break
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def crc64_of(data: bytes) -> int:
    """CRC-64/ECMA as OSS computes it (``x-oss-hash-crc64ecma``)."""
    from alibabacloud_oss_v2.crc import Crc64

    crc = Crc64(0)
    crc.update(data)
    return crc.sum64()


def combine_crc64(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-64 of ``a + b`` from ``crc(a)``, ``crc(b)`` and ``len(b)``: a stream is hashed once, part by part."""
    from alibabacloud_oss_v2.crc import Crc64

    return Crc64.combine(crc1, crc2, len2)


class CrcMismatch(RuntimeError):
    """What OSS stored is not what was sent (CRC-64 or size differ)."""


class OssHook(AliyunBaseHook):
    """OSS calls. ``region`` defaults to the hook's / connection's region (OSS signs with it).

    Example::

        hook = OssHook(region="cn-shanghai")
        with open("backup.tar", "rb") as fh:
            hook.put_object_from_stream("ops-archive", "rds/backup.tar", fh)
    """

    service_name = "OSS"

    def __init__(self, aliyun_conn_id: str = AliyunBaseHook.default_conn_name, region: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(aliyun_conn_id=aliyun_conn_id, region=region, **kwargs)

    def oss_config(self, region: str | None = None) -> oss.config.Config:
        """OSS v2 config: region, credentials bridge, endpoint override (path style) and timeouts."""
        import alibabacloud_oss_v2 as oss

        s = self.settings
        cfg = oss.config.load_default()
        cfg.region = self.resolve_region(region)
        cfg.credentials_provider = self.oss_credentials_provider()
        if s.endpoint:
            cfg.endpoint = s.endpoint_url
            cfg.use_path_style = True
        cfg.connect_timeout = s.connect_timeout
        cfg.readwrite_timeout = s.read_timeout
        cfg.retry_max_attempts = s.max_attempts
        return cfg

    def new_client(self, region: str) -> oss.Client:
        import alibabacloud_oss_v2 as oss

        return oss.Client(self.oss_config(region))

    def get_conn(self) -> oss.Client:
        return self.get_client()

    def _call(self, action: str, fn, request: Any = None, region: str | None = None):
        # The SDK already retried; we log, and convert errors.
        return self.call(action, fn, request, region=self.resolve_region(region), max_attempts=1)

    def bucket_region(self, bucket: str) -> str:
        """The bucket's region (GetBucketLocation, answered from any region's endpoint), cached by this hook (one
        call per task: a bucket deleted and made again elsewhere is found again by the next task). Users should not
        have to know where a bucket lives."""
        import alibabacloud_oss_v2 as oss

        cache = self.__dict__.setdefault("_bucket_regions", {})
        if bucket not in cache:
            client = self.get_client()
            try:
                result = self._call("GetBucketLocation",
                                    lambda: client.get_bucket_location(oss.GetBucketLocationRequest(bucket=bucket)))
            except AliyunApiError as err:
                if err.code == "NoSuchBucket":
                    raise ValueError(f"OSS bucket {bucket!r} does not exist (create it, or check the name)") from None
                raise
            location = str(getattr(result, "location", "") or "")
            if not location:
                raise ValueError(f"OSS did not say where bucket {bucket!r} is; pass its region explicitly")
            cache[bucket] = location.removeprefix("oss-")
            self.log.info("bucket %s is in %s", bucket, cache[bucket])
        return cache[bucket]

    def object_exists(self, bucket: str, key: str, *, region: str | None = None) -> bool:
        client = self.get_client(region)
        return bool(self._call("HeadObject", lambda: client.is_object_exist(bucket, key), region=region))

    def head_object(self, bucket: str, key: str, *, region: str | None = None) -> dict | None:
        """``{"ContentLength", "ETag", "LastModified", "HashCrc64", "Metadata", ...}``, or None if missing."""
        import alibabacloud_oss_v2 as oss

        from aliyun_ops.exceptions import AliyunApiError

        client = self.get_client(region)
        try:
            res = self._call("HeadObject", client.head_object, oss.HeadObjectRequest(bucket=bucket, key=key),
                             region=region)
        except AliyunApiError as err:
            if err.is_not_found:
                return None
            raise
        return {"ContentLength": res.content_length, "ETag": res.etag, "LastModified": res.last_modified,
                "HashCrc64": res.hash_crc64, "ContentType": res.content_type,
                "StorageClass": res.storage_class, "Metadata": dict(res.metadata or {}),
                "RequestId": res.request_id}

    def put_object_from_stream(self, bucket: str, key: str, source: IO[bytes] | str | os.PathLike, *,
                               region: str | None = None, metadata: Mapping[str, str] | None = None,
                               content_type: str | None = None, tagging: str | None = None,
                               part_size: int | None = None, parallel_num: int | None = None,
                               forbid_overwrite: bool | None = None) -> dict:
        """Upload a binary stream or a local file path with the SDK uploader (multipart above ``part_size``).

        :return: ``{"ETag", "VersionId", "HashCrc64", "RequestId"}``
        """
        import alibabacloud_oss_v2 as oss

        client = self.get_client(region)
        request = oss.PutObjectRequest(bucket=bucket, key=key, metadata=dict(metadata) if metadata else None,
                                       content_type=content_type, tagging=tagging,
                                       forbid_overwrite=forbid_overwrite)
        options = {k: v for k, v in {"part_size": part_size, "parallel_num": parallel_num}.items() if v}
        uploader = client.uploader(**options)
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            result = self._call("PutObject", lambda: uploader.upload_file(request, filepath=path), region=region)
        else:
            result = self._call("PutObject", lambda: uploader.upload_from(request, source), region=region)
        return {"ETag": result.etag, "VersionId": result.version_id, "HashCrc64": result.hash_crc64,
                "RequestId": result.request_id}

    def upload_stream(self, bucket: str, key: str, source: IO[bytes], *, region: str | None = None,
                      part_size: int = DEFAULT_PART_SIZE, parallel_num: int = 2,
                      metadata: Mapping[str, str] | None = None, storage_class: str | None = None,
                      content_type: str | None = None) -> dict:
        """Stream ``source`` into ``oss://bucket/key`` in bounded memory, CRC-64 checked end to end.

        At most ``parallel_num`` parts (``part_size`` bytes each) are held at once: the next part is read from
        the source only when an upload slot is free, so a slow OSS slows the download instead of filling memory.
        A source shorter than one part is sent with one PutObject. Every part's and the whole object's
        ``x-oss-hash-crc64ecma`` must equal the CRC-64 computed here while reading; on any error or mismatch the
        source is no longer read, the multipart upload is aborted (nothing is left open) and a completed but
        mismatching object is deleted (:class:`CrcMismatch`).

        :return: ``{"size", "crc64", "etag", "parts", "request_id"}`` (``crc64`` as OSS writes it: a decimal string)

        Example::

            with urllib.request.urlopen(url) as response:
                OssHook(region="cn-shanghai").upload_stream("ops-archive", "rds/1.tar", response,
                                                            storage_class="IA", metadata={"source": "rm-1"})
        """
        import alibabacloud_oss_v2 as oss

        if not 100 * 1024 <= part_size <= 5 * 1024**3:
            raise ValueError(f"part_size must be 100 KiB - 5 GiB, got {part_size}")
        if parallel_num < 1:
            raise ValueError(f"parallel_num must be at least 1, got {parallel_num}")
        if storage_class is not None and storage_class not in STORAGE_CLASSES:
            raise ValueError(f"storage_class must be one of {list(STORAGE_CLASSES)}, got {storage_class!r}")
        region = self.resolve_region(region)
        client = self._streaming_client(region)
        meta = dict(metadata) if metadata else None
        first = read_full(source, part_size)
        if len(first) < part_size:  # the whole stream fits in one request
            crc = crc64_of(first)
            result = self._send_checked("PutObject", lambda: client.put_object(oss.PutObjectRequest(
                bucket=bucket, key=key, body=first, metadata=meta, storage_class=storage_class,
                content_type=content_type)), crc, f"oss://{bucket}/{key}", region)
            return {"size": len(first), "crc64": str(crc), "etag": result.etag, "parts": 0,
                    "request_id": result.request_id}
        upload_id = self._call("InitiateMultipartUpload", client.initiate_multipart_upload,
                               oss.InitiateMultipartUploadRequest(bucket=bucket, key=key, metadata=meta,
                                                                  storage_class=storage_class,
                                                                  content_type=content_type),
                               region=region).upload_id
        try:
            pending, first = [first], b""  # only the upload keeps the first part alive
            parts, size, crc = self._send_parts(client, bucket, key, upload_id, pending, source, part_size,
                                                parallel_num, region)
            etag, remote_crc, request_id = self._complete(client, bucket, key, upload_id, parts, size, region)
        except BaseException:
            self.abort_upload(bucket, key, upload_id, region=region)
            raise
        self._check_crc(bucket, key, str(crc), remote_crc, region)
        return {"size": size, "crc64": str(crc), "etag": etag, "parts": len(parts), "request_id": request_id}

    def _streaming_client(self, region: str) -> oss.Client:
        """A client without the SDK's own upload CRC pass: :meth:`upload_stream` computes each part's CRC-64 once,
        checks it against OSS's answer and resends a part that arrived damaged (the SDK would hash it again)."""
        import alibabacloud_oss_v2 as oss

        cfg = self.oss_config(region)
        cfg.disable_upload_crc64_check = True
        return oss.Client(cfg)

    def _send_checked(self, action: str, send: Any, crc: int, what: str, region: str) -> Any:
        """``send()`` until OSS's CRC-64 of what it stored equals ``crc`` (a damaged body is sent again, as the
        SDK's own check would, up to the connection's ``max_attempts``); :class:`CrcMismatch` after that."""
        attempts = max(1, int(self.settings.max_attempts))
        for attempt in range(1, attempts + 1):
            result = self._call(action, send, region=region)
            remote = getattr(result, "hash_crc64", None)
            if remote is None or str(remote) == str(crc):
                return result
            self.log.warning("%s %s: OSS stored CRC-64 %s, sent %s (attempt %d/%d)", action, what, remote, crc,
                             attempt, attempts)
        raise CrcMismatch(f"{what}: OSS stored CRC-64 {remote}, sent {crc} ({attempts} attempts)")

    def _send_parts(self, client: oss.Client, bucket: str, key: str, upload_id: str, first: list[bytes],
                    source: IO[bytes], part_size: int, parallel_num: int, region: str) -> tuple[list, int, int]:
        """Upload ``first[0]`` and the rest of ``source`` as parts, never more than ``parallel_num`` in memory;
        stops reading at the first failed part. ``first`` is emptied so that nothing keeps a sent part alive.
        Returns the parts, the size and the whole stream's CRC-64 (each part hashed once, then combined)."""
        import alibabacloud_oss_v2 as oss

        slots = threading.BoundedSemaphore(parallel_num)
        crcs: dict[int, tuple[int, int]] = {}

        def send(number: int, data: bytes) -> oss.UploadPart:
            try:
                crc = crc64_of(data)
                crcs[number] = (crc, len(data))
                res = self._send_checked("UploadPart", lambda: client.upload_part(oss.UploadPartRequest(
                    bucket=bucket, key=key, upload_id=upload_id, part_number=number, body=data)), crc,
                    f"part {number} of oss://{bucket}/{key}", region)
                return oss.UploadPart(part_number=number, etag=res.etag)
            finally:
                slots.release()

        futures: list[Future] = []
        data, number = first.pop(), 1
        size = len(data)
        with ThreadPoolExecutor(max_workers=parallel_num, thread_name_prefix=f"oss-{key[-24:]}") as pool:
            slots.acquire()
            while True:
                futures.append(pool.submit(send, number, data))
                data = b""
                slots.acquire()  # wait for a free slot before reading more of the source
                if any(f.done() and f.exception() is not None for f in futures):
                    slots.release()
                    break
                data = read_full(source, part_size)
                if not data:
                    slots.release()
                    break
                size += len(data)
                number += 1
            wait(futures, return_when=FIRST_EXCEPTION)
            parts = [f.result() for f in futures]  # raises the first failure
        total = crcs[1][0]
        for n in range(2, len(parts) + 1):
            total = combine_crc64(total, *crcs[n])
        return parts, size, total

    def _complete(self, client: oss.Client, bucket: str, key: str, upload_id: str, parts: list, size: int,
                  region: str) -> tuple[str, Any, str]:
        """CompleteMultipartUpload -> ``(etag, crc64, request id)``; an answer lost after it completed is found by
        looking the object up (the SDK's retry of a completed upload answers NoSuchUpload)."""
        import alibabacloud_oss_v2 as oss

        try:
            result = self._call("CompleteMultipartUpload", client.complete_multipart_upload,
                                oss.CompleteMultipartUploadRequest(
                                    bucket=bucket, key=key, upload_id=upload_id,
                                    complete_multipart_upload=oss.CompleteMultipartUpload(parts=parts)),
                                region=region)
            return result.etag, result.hash_crc64, result.request_id
        except AliyunApiError as err:
            head = self.head_object(bucket, key, region=region) if err.code == "NoSuchUpload" else None
            if head is None or head["ContentLength"] != size:
                raise
            self.log.info("CompleteMultipartUpload of oss://%s/%s answered NoSuchUpload, but the object is there "
                          "(an answer lost after it completed): checking it", bucket, key)
            return head["ETag"], head["HashCrc64"], head["RequestId"]

    def _check_crc(self, bucket: str, key: str, local: str, remote: Any, region: str) -> None:
        if remote is None or str(remote) == local:
            return
        try:
            self.delete_object(bucket, key, region=region)
            what = "deleted"
        except Exception as err:  # noqa: BLE001 - the mismatch is the error to raise; the log names the leftover
            self.log.error("could not delete the corrupt object oss://%s/%s: %s", bucket, key, err)
            what = "NOT deleted"
        raise CrcMismatch(f"oss://{bucket}/{key}: OSS stored CRC-64 {remote}, streamed {local} (object {what})")

    def abort_upload(self, bucket: str, key: str, upload_id: str, *, region: str | None = None) -> bool:
        """AbortMultipartUpload; False (logged) when it fails: the caller is already handling an error."""
        import alibabacloud_oss_v2 as oss

        client = self.get_client(region)
        try:
            self._call("AbortMultipartUpload", client.abort_multipart_upload, oss.AbortMultipartUploadRequest(
                bucket=bucket, key=key, upload_id=upload_id), region=region)
            self.log.info("aborted multipart upload %s of oss://%s/%s", upload_id, bucket, key)
            return True
        except AliyunApiError as err:
            if err.is_not_found:
                return True
            self.log.error("could not abort multipart upload %s of oss://%s/%s: %s (a lifecycle rule or the next run "
                           "cleans it up)", upload_id, bucket, key, err)
            return False

    def list_multipart_uploads(self, bucket: str, prefix: str | None = None, *,
                               region: str | None = None) -> list[dict]:
        """Open multipart uploads under ``prefix`` (all pages): ``[{"Key", "UploadId", "Initiated"}]``."""
        import alibabacloud_oss_v2 as oss

        region = self.resolve_region(region)
        client = self.get_client(region)
        out: list[dict] = []
        key_marker = upload_marker = None
        while True:
            page = self._call("ListMultipartUploads", client.list_multipart_uploads, oss.ListMultipartUploadsRequest(
                bucket=bucket, prefix=prefix, key_marker=key_marker, upload_id_marker=upload_marker,
                max_uploads=1000), region=region)
            out += [{"Key": u.key, "UploadId": u.upload_id, "Initiated": u.initiated} for u in page.uploads or []]
            if not page.is_truncated:
                return out
            key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker

    def put_lifecycle_rule(self, bucket: str, rule_id: str, prefix: str, *, transition_days: int,
                           storage_class: str = "Archive", region: str | None = None) -> bool:
        """Install (or update) one transition rule, keeping every other rule of the bucket; False if already so."""
        import alibabacloud_oss_v2 as oss

        if not prefix:
            raise ValueError("a lifecycle rule needs a prefix: an empty one would move the whole bucket")
        if storage_class not in STORAGE_CLASSES[1:]:
            raise ValueError(f"transition storage class must be one of {list(STORAGE_CLASSES[1:])}")
        client = self.get_client(region)
        try:
            current = self._call("GetBucketLifecycle", client.get_bucket_lifecycle,
                                 oss.GetBucketLifecycleRequest(bucket=bucket), region=region)
            rules = list((current.lifecycle_configuration and current.lifecycle_configuration.rules) or [])
        except AliyunApiError as err:
            if err.code != "NoSuchLifecycle":
                raise
            rules = []
        mine = next((r for r in rules if r.id == rule_id), None)
        if (mine is not None and mine.prefix == prefix and mine.status == "Enabled" and len(mine.transitions or []) == 1
                and mine.transitions[0].days == transition_days
                and str(mine.transitions[0].storage_class) == storage_class):
            return False
        rule = oss.LifecycleRule(id=rule_id, prefix=prefix, status="Enabled", transitions=[
            oss.LifecycleRuleTransition(days=transition_days, storage_class=storage_class)])
        rules = [r for r in rules if r.id != rule_id] + [rule]
        self._call("PutBucketLifecycle", client.put_bucket_lifecycle, oss.PutBucketLifecycleRequest(
            bucket=bucket, lifecycle_configuration=oss.LifecycleConfiguration(rules=rules)), region=region)
        self.log.info("lifecycle rule %s on oss://%s/%s: to %s after %d days", rule_id, bucket, prefix, storage_class,
                      transition_days)
        return True

    def get_json(self, bucket: str, key: str, *, region: str | None = None) -> Any:
        """A small JSON object's content, or None when the key does not exist."""
        import json

        import alibabacloud_oss_v2 as oss

        client = self.get_client(region)
        try:
            result = self._call("GetObject", client.get_object, oss.GetObjectRequest(bucket=bucket, key=key),
                                region=region)
        except AliyunApiError as err:
            if err.is_not_found:
                return None
            raise
        with result.body as body:
            return json.loads(body.read())

    def put_json(self, bucket: str, key: str, value: Any, *, region: str | None = None) -> str:
        """Write ``value`` as JSON (``application/json``); returns the ETag."""
        import json

        import alibabacloud_oss_v2 as oss

        client = self.get_client(region)
        body = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
        result = self._call("PutObject", client.put_object, oss.PutObjectRequest(
            bucket=bucket, key=key, body=body, content_type="application/json"), region=region)
        return result.etag

    def list_objects(self, bucket: str, prefix: str | None = None, *, region: str | None = None,
                     delimiter: str | None = None, page_size: int = 1000) -> list[dict]:
        """Every object under ``prefix`` (all pages): ``[{"Key", "Size", "ETag", "LastModified",
        "StorageClass", "Type"}]``; with ``delimiter``, common prefixes come as ``{"Prefix": ...}`` entries."""
        import alibabacloud_oss_v2 as oss

        region = self.resolve_region(region)
        client = self.get_client(region)
        out: list[dict] = []
        token: str | None = None
        while True:
            request = oss.ListObjectsV2Request(bucket=bucket, prefix=prefix, delimiter=delimiter,
                                               continuation_token=token, max_keys=page_size)
            page = self._call("ListObjectsV2", client.list_objects_v2, request, region=region)
            for obj in page.contents or []:
                out.append({"Key": obj.key, "Size": obj.size, "ETag": obj.etag, "LastModified": obj.last_modified,
                            "StorageClass": obj.storage_class, "Type": obj.object_type})
            for cp in page.common_prefixes or []:
                out.append({"Prefix": cp.prefix})
            token = page.next_continuation_token
            if not page.is_truncated or not token:
                return out

    def delete_object(self, bucket: str, key: str, *, region: str | None = None) -> None:
        import alibabacloud_oss_v2 as oss

        client = self.get_client(region)
        self._call("DeleteObject", client.delete_object, oss.DeleteObjectRequest(bucket=bucket, key=key),
                   region=region)
