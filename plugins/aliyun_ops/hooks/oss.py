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
import queue
import threading
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import IO, TYPE_CHECKING, Any

from aliyun_ops.exceptions import AliyunApiError
from aliyun_ops.hooks.base import AliyunBaseHook
from aliyun_ops.logic.crc64 import crc64, crc64_combine

if TYPE_CHECKING:
    import alibabacloud_oss_v2 as oss

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MIB
STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")
MAX_PARTS = 10_000  # OSS: parts per multipart upload
MIN_PART_SIZE = 100 * 1024  # OSS: every part but the last
MAX_PART_SIZE = 5 * 1024**3


def read_into(source: IO[bytes], buffer: bytearray) -> int:
    """Fill ``buffer`` from ``source``; returns how many bytes came (fewer only at the end of the stream: a socket
    answers in pieces). A source with ``readinto`` (an HTTP response, a file) writes straight into the buffer, so
    a part's bytes are never copied."""
    view, filled = memoryview(buffer), 0
    readinto = getattr(source, "readinto", None)
    while filled < len(buffer):
        if readinto is not None:
            got = readinto(view[filled:]) or 0
        else:
            chunk = source.read(len(buffer) - filled)
            got = len(chunk)
            view[filled:filled + got] = chunk
        if not got:
            break
        filled += got
    return filled


def part_size_for(size: int, memory_budget: int, buffers: int, largest: int = DEFAULT_PART_SIZE) -> int:
    """The part size that keeps ``buffers`` part buffers (streams x ``parallel_num``) within ``memory_budget``
    bytes, at most ``largest``, rounded down to 64 KiB; but never so small that a ``size``-byte object needs more
    than 10,000 parts (then the budget is exceeded), nor under OSS's 100 KiB minimum.

    >>> [part_size_for(5 * 1024**3, 24 * MIB, b) // 1024 for b in (2, 8)], part_size_for(100 * 1024**3, 24 * MIB, 8)
    ([8192, 3072], 10747904)
    """
    step = 64 * 1024
    fits = min(largest, memory_budget // max(1, buffers)) // step * step
    needed = -(-size // MAX_PARTS)  # ceil
    return min(MAX_PART_SIZE, max(MIN_PART_SIZE, fits, -(-needed // step) * step))


class PartBuffers:
    """At most ``count`` reusable buffers of ``size`` bytes, one per part in flight: a part is read into one,
    hashed and sent from it, then the buffer is given back for a later part. Waiting for a free buffer is what
    bounds the reading; reusing them means no allocation and no copy per part (allocating a fresh ``bytes`` per
    part left the worker's RSS ~25 MiB above the parts it held: bench/README.md)."""

    def __init__(self, size: int, count: int) -> None:
        self.size, self.count = size, count
        self._unallocated = count
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()

    def take(self) -> bytearray:
        """A free buffer, allocated on first need; blocks while all ``count`` are in use (one thread takes)."""
        if self._unallocated:
            self._unallocated -= 1
            return bytearray(self.size)
        return self._free.get()

    def give(self, buffer: bytearray) -> None:
        self._free.put(buffer)


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

        At most ``parallel_num`` parts (``part_size`` bytes each) are held at once, in buffers reused from part to
        part (read into straight from the source, sent from, never copied): the next part is read only when an
        upload slot is free, so a slow OSS slows the download instead of filling memory.
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

        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be 100 KiB - 5 GiB, got {part_size}")
        if parallel_num < 1:
            raise ValueError(f"parallel_num must be at least 1, got {parallel_num}")
        if storage_class is not None and storage_class not in STORAGE_CLASSES:
            raise ValueError(f"storage_class must be one of {list(STORAGE_CLASSES)}, got {storage_class!r}")
        region = self.resolve_region(region)
        client = self._streaming_client(region)
        meta = dict(metadata) if metadata else None
        buffers = PartBuffers(part_size, parallel_num)
        first = buffers.take()
        length = read_into(source, first)
        if length < part_size:  # the whole stream fits in one request
            body = memoryview(first)[:length]
            crc = crc64(body)
            result = self._send_checked("PutObject", lambda: client.put_object(oss.PutObjectRequest(
                bucket=bucket, key=key, body=body, metadata=meta, storage_class=storage_class,
                content_type=content_type)), crc, f"oss://{bucket}/{key}", region)
            return {"size": length, "crc64": str(crc), "etag": result.etag, "parts": 0,
                    "request_id": result.request_id}
        upload_id = self._call("InitiateMultipartUpload", client.initiate_multipart_upload,
                               oss.InitiateMultipartUploadRequest(bucket=bucket, key=key, metadata=meta,
                                                                  storage_class=storage_class,
                                                                  content_type=content_type),
                               region=region).upload_id
        try:
            parts, size, crc = self._send_parts(client, bucket, key, upload_id, source, buffers, first, region)
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

    def _send_parts(self, client: oss.Client, bucket: str, key: str, upload_id: str, source: IO[bytes],
                    buffers: PartBuffers, first: bytearray, region: str) -> tuple[list, int, int]:
        """Upload ``first`` (a full part) and the rest of ``source`` as parts, each read into a free buffer of
        ``buffers`` (so never more parts in memory than it has); stops reading at the first failed part. Returns
        the parts, the size and the whole stream's CRC-64 (each part hashed once, then combined)."""
        import alibabacloud_oss_v2 as oss

        crcs: list[tuple[int, int, int]] = []
        parts: list[oss.UploadPart] = []
        failed = threading.Event()

        def send(number: int, buffer: bytearray, length: int) -> None:
            try:
                body = memoryview(buffer)[:length]
                crc = crc64(body)
                crcs.append((number, crc, length))
                res = self._send_checked("UploadPart", lambda: client.upload_part(oss.UploadPartRequest(
                    bucket=bucket, key=key, upload_id=upload_id, part_number=number, body=body)), crc,
                    f"part {number} of oss://{bucket}/{key}", region)
                parts.append(oss.UploadPart(part_number=number, etag=res.etag))
            except BaseException:
                failed.set()
                raise
            finally:
                buffers.give(buffer)

        running: list[Future] = []  # in flight or failed only: a finished Future holds ~1.6 KB (5 MiB at 4 x 5 GiB)
        buffer, length, number, size = first, buffers.size, 1, buffers.size
        with ThreadPoolExecutor(max_workers=buffers.count, thread_name_prefix=f"oss-{key[-24:]}") as pool:
            while True:
                running = [f for f in running if not f.done() or f.exception() is not None]
                running.append(pool.submit(send, number, buffer, length))
                buffer = buffers.take()  # wait for a free buffer (an upload slot) before reading more of the source
                length = 0 if failed.is_set() else read_into(source, buffer)
                if not length:
                    break
                size += length
                number += 1
            wait(running, return_when=FIRST_EXCEPTION)
            for future in running:
                future.result()  # raises the first failure
        parts.sort(key=lambda part: part.part_number)
        total = 0
        for _, crc, length in sorted(crcs):
            total = crc64_combine(total, crc, length)
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
